#include "core/memory.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tinyemo {

void* allocate_buffer(size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (bytes < kHugePageBytes) return std::aligned_alloc(64, bytes);
  // posix_memalign: no multiple-of-alignment size (a 4 MiB + 64 B tensor
  // takes 4 MiB + 64 B, not 6 MiB); the tail past the last whole 2 MiB stays 4 KiB pages.
  void* p = nullptr;
  if (posix_memalign(&p, kHugePageBytes, bytes) != 0) return nullptr;
#if defined(__linux__)
  madvise(p, bytes / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE);  // a hint: without THP the pages stay 4 KiB
#endif
  return p;
}

}  // namespace tinyemo
