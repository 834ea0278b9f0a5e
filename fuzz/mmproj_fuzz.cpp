// fuzz-link: tinyemo_mm
// llama.cpp's mmproj reader (models/mm/mmproj.h): keys, tensor names, shapes,
// dtypes and values of a vision tower + LLaVA projector. The paired LM path
// does not exist, so an mmproj that passes every check ends in that clean error.
#include "fuzz_input.h"
#include "models/mm/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = tinyemo::fuzz::input_file(data, size);
  try {
    tinyemo::mm::MmLoadOptions options;
    options.mmproj = path;
    tinyemo::mm::TinyLlavaModel::load("/nonexistent/lm.gguf", options);
  } catch (const tinyemo::Error&) {
    // refused cleanly: what the reader must do with bad input
  }
  return 0;
}
