#include "core/finite.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>

#include "core/quant.h"
#include "core/thread_pool.h"

namespace tinyemo {

namespace {

// A float is NaN or infinite when its exponent bits are all ones: with the
// sign cleared, its bits are at least the infinity's. Each chunk is reduced
// with an unsigned max (which the compiler vectorises) and only a chunk that
// holds a non-finite value is searched element by element.
template <class Bits>
int64_t scan_bits(const void* data, int64_t n, Bits magnitude_mask, Bits infinity) {
  constexpr int64_t kChunk = 4096;
  const auto* bits = static_cast<const uint8_t*>(data);
  const auto chunk_max = [&](int64_t begin, int64_t end) {
    Bits m = 0;
    for (int64_t i = begin; i < end; ++i) {
      Bits v;
      std::memcpy(&v, bits + i * static_cast<int64_t>(sizeof(Bits)), sizeof(Bits));
      m = std::max<Bits>(m, v & magnitude_mask);
    }
    return m;
  };
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::atomic<int64_t> first{n};
  const auto scan = [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
      if (begin >= first.load(std::memory_order_relaxed)) return;
      if (chunk_max(begin, end) < infinity) continue;
      for (int64_t i = begin; i < end; ++i) {
        if (chunk_max(i, i + 1) >= infinity) {
          int64_t seen = first.load();
          while (i < seen && !first.compare_exchange_weak(seen, i)) {
          }
          return;
        }
      }
    }
  };
  if (chunks <= 16) {
    scan(0, chunks);
  } else {
    parallel_for(chunks, 16, scan);
  }
  const int64_t at = first.load();
  return at < n ? at : -1;
}

// Block types: a block's values are finite when its f16 scales are (the codes
// are integers). `scales` f16 scales start at byte `offset` of each block of
// `block_bytes` holding `block_weights` weights.
int64_t scan_block_scales(const void* data, int64_t blocks, size_t block_bytes, int64_t block_weights = kQuantBlock,
                          size_t offset = 0, int scales = 1) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int s = 0; s < scales; ++s) {
      uint16_t scale;
      std::memcpy(&scale, p + static_cast<size_t>(b) * block_bytes + offset + 2 * static_cast<size_t>(s), 2);
      if ((scale & 0x7fffu) >= 0x7c00u) return b * block_weights;
    }
  }
  return -1;
}

// The row-major index of stored element `i` of an F32x32/BF16x32 matrix (-1 stays -1).
int64_t row_major_index(const Tensor& t, int64_t i) {
  if (i < 0) return -1;
  const int64_t cols = t.dim(1), per_panel = 32 * cols, panel = i / per_panel, in_panel = i % per_panel;
  if (t.dtype() == DType::F32x32) return (panel * 32 + in_panel % 32) * cols + in_panel / 32;
  const int64_t pair = in_panel / 64, j = in_panel % 64 / 2;  // BF16x32: [cols/2][32][2]
  return (panel * 32 + j) * cols + pair * 2 + in_panel % 2;
}

}  // namespace

int64_t first_non_finite(const float* x, int64_t n) { return scan_bits<uint32_t>(x, n, 0x7fffffffu, 0x7f800000u); }

int64_t first_non_finite(const Tensor& t) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32: return scan_bits<uint32_t>(t.raw(), n, 0x7fffffffu, 0x7f800000u);
    case DType::F16: return scan_bits<uint16_t>(t.raw(), n, 0x7fffu, 0x7c00u);
    case DType::BF16: return scan_bits<uint16_t>(t.raw(), n, 0x7fffu, 0x7f80u);
    case DType::F64: return scan_bits<uint64_t>(t.raw(), n, 0x7fffffffffffffffull, 0x7ff0000000000000ull);
    case DType::Q8_0: return scan_block_scales(t.raw(), n / kQuantBlock, sizeof(BlockQ8_0));
    case DType::Q4_0: return scan_block_scales(t.raw(), n / kQuantBlock, sizeof(BlockQ4_0));
    // k-quants: Q4_K / Q5_K lead with d and dmin, Q6_K ends with d.
    case DType::Q4_K: return scan_block_scales(t.raw(), n / kKQuantBlock, sizeof(BlockQ4_K), kKQuantBlock, 0, 2);
    case DType::Q5_K: return scan_block_scales(t.raw(), n / kKQuantBlock, sizeof(BlockQ5_K), kKQuantBlock, 0, 2);
    case DType::Q6_K:
      return scan_block_scales(t.raw(), n / kKQuantBlock, sizeof(BlockQ6_K), kKQuantBlock, offsetof(BlockQ6_K, d));
    // The panel layouts hold the same elements in another order.
    case DType::F32x32:
      return row_major_index(t, scan_bits<uint32_t>(t.raw(), n, 0x7fffffffu, 0x7f800000u));
    case DType::BF16x32: return row_major_index(t, scan_bits<uint16_t>(t.raw(), n, 0x7fffu, 0x7f80u));
    case DType::Q8_0x16:
    case DType::Q4_0x16: {
      // Every block's scale is among the panel's scale runs; dequantising is the simple, rare path.
      const std::vector<float> v = t.to_f32_vector();
      return first_non_finite(v.data(), static_cast<int64_t>(v.size()));
    }
    default: return -1;  // integers and booleans
  }
}

}  // namespace tinyemo
