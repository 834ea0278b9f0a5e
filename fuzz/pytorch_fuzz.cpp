// fuzz-link: tinyemo_io
// Whole PyTorch archives: zip parsing, inflating, the pickle, storages and tensors.
// A mutated pickle inside an archive mostly fails its CRC-32 check, so inputs
// that are not zip files ("PK...") are taken as a pickle and wrapped in an
// archive with storages "0".."9" of 1536 bytes each (a TinyEmo feature's size):
// that reaches the storage lookup and tensor checks with fuzzed pickles.
#include <unistd.h>

#include <cstring>

#include "fuzz_input.h"
#include "io/pytorch.h"
#include "io/zip.h"

namespace {

std::filesystem::path wrap_pickle(const uint8_t* data, size_t size) {
  static const std::filesystem::path path = "/dev/shm/tinyemo-pytorch-fuzz-" + std::to_string(::getpid()) + ".pt";
  static const std::string storage(1536, '\x01');
  tinyemo::ZipWriter zip(path);
  zip.add("archive/data.pkl", data, size);
  for (int key = 0; key < 10; ++key) zip.add("archive/data/" + std::to_string(key), storage);
  zip.commit();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool is_zip = size >= 2 && std::memcmp(data, "PK", 2) == 0;
  try {
    const auto path = is_zip ? tinyemo::fuzz::input_file(data, size) : wrap_pickle(data, size);
    for (const auto& [name, t] : tinyemo::load_pytorch_tensors(path)) {
      tinyemo::fuzz::consume(tinyemo::fuzz::touch(t) + name.size());
    }
  } catch (const tinyemo::Error&) {
    // refused cleanly
  }
  return 0;
}
