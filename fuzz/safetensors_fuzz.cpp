// fuzz-link: tinyemo_io
// safetensors reader: header validation, then every tensor's bytes.
#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = tinyemo::SafetensorsFile::open(tinyemo::fuzz::input_file(data, size));
    for (const auto& e : file.entries()) tinyemo::fuzz::consume(tinyemo::fuzz::touch(file.get(e.name)));
  } catch (const tinyemo::Error&) {
    // refused cleanly: what the reader must do with bad input
  }
  return 0;
}
