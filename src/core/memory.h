// Memory for large buffers. Buffers of 2 MiB and more are aligned to 2 MiB and
// advised to use transparent huge pages (Linux madvise): streaming a weight
// matrix then crosses one page-table entry per 2 MiB instead of per 4 KiB
// (decode mat-vecs read 1.2x faster on the Zen 5 VM, docs/perf/kernels.md), and a
// fresh buffer takes one page fault per 2 MiB on first touch instead of one
// per 4 KiB (about 10 us each in a VM: 22k faults, ~0.2 s, per 5-epoch
// projector training run without it).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace tinyemo {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` of memory aligned to 64 bytes (2 MiB from 2 MiB on, with the huge
// page hint), released with std::free. Null when out of memory.
void* allocate_buffer(size_t bytes);

// std::allocator for large vectors (the projector trainer's parameters and
// AdamW moments): allocate_buffer from 2 MiB on, operator new below.
template <class T>
struct LargePageAllocator {
  using value_type = T;

  LargePageAllocator() = default;
  template <class U>
  LargePageAllocator(const LargePageAllocator<U>&) {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return static_cast<T*>(::operator new(bytes));
    void* p = allocate_buffer(bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePageBytes) {
      ::operator delete(p);
    } else {
      std::free(p);
    }
  }
  template <class U>
  bool operator==(const LargePageAllocator<U>&) const {
    return true;
  }
};

template <class T>
using LargeVector = std::vector<T, LargePageAllocator<T>>;

}  // namespace tinyemo
