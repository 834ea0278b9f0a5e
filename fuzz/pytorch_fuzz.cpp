// fuzz-link: tinyemo_io
// Whole PyTorch archives: zip parsing, inflating, the pickle, storages and tensors.
#include "fuzz_input.h"
#include "io/pytorch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    for (const auto& [name, t] : tinyemo::load_pytorch_tensors(tinyemo::fuzz::input_file(data, size))) {
      tinyemo::fuzz::consume(tinyemo::fuzz::touch(t) + name.size());
    }
  } catch (const tinyemo::Error&) {
    // refused cleanly
  }
  return 0;
}
