// Helpers shared by the libFuzzer targets: the input as a file (the readers
// under test open paths and memory-map them), and reading every byte of what
// they return, so that a view past the end of its data trips ASan or faults.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/tensor.h"

namespace tinyemo::fuzz {

// The input in an in-memory file (memfd), reached through /proc/self/fd.
inline std::filesystem::path input_file(const uint8_t* data, size_t size) {
  static const int fd = ::memfd_create("fuzz-input", MFD_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) __builtin_trap();
  return "/proc/self/fd/" + std::to_string(fd);
}

inline uint64_t touch(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.raw());
  uint64_t sum = 0;
  for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  return sum;
}

// Keeps the reads from being optimised away.
inline void consume(uint64_t v) {
  static volatile uint64_t sink;
  sink = sink + v;
}

}  // namespace tinyemo::fuzz
