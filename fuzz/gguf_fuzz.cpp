// fuzz-link: tinyemo_lm
// GGUF reader (header, metadata, tensor infos, offsets) and the LM loader on
// top of it (embedded config.json, hyperparameter cross-checks, weight binding).
#include "fuzz_input.h"
#include "io/gguf.h"
#include "models/lm/gguf_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = tinyemo::fuzz::input_file(data, size);
  try {
    const auto file = tinyemo::GgufFile::open(path);
    for (const auto& t : file.tensors()) tinyemo::fuzz::consume(tinyemo::fuzz::touch(file.get(t.name)));
    for (const auto& [key, value] : file.metadata()) {
      if (value.type == tinyemo::GgufType::Array && value.array_type != tinyemo::GgufType::String) {
        tinyemo::fuzz::consume(value.s.size());
      }
    }
    const tinyemo::lm::LmModel model = tinyemo::lm::load_lm_gguf(path);
    tinyemo::fuzz::consume(static_cast<uint64_t>(model.weight_bytes_per_token()));
  } catch (const tinyemo::Error&) {
    // refused cleanly: what the reader must do with bad input
  }
  return 0;
}
