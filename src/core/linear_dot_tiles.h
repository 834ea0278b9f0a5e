// Internal to src/core: how the decode mat-vec kernels (linear_dot*.cpp) split
// their work: weight rows into thread tasks and register tiles, activation rows
// into groups of at most kMaxDotRows. Shared by the Q8_0/Q4_0/16-bit kernels
// and the k-quant kernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/matmul_internal.h"
#include "core/thread_pool.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace detail {

inline constexpr int64_t kMaxDotRows = 4;  // activation rows per inner kernel call (more: another pass over L2)

// Weight rows per inner kernel call for S activation rows. The rows of a tile
// are read side by side, so the tile's height is the number of memory streams
// (and prefetches) a core keeps in flight: on the Zen 5 VM 8 rows decode
// 1.1-1.4x faster than 4, 16 no faster than 8 (docs/perf/kernels.md). With more
// activation rows, 8 x S accumulators would not fit in the 32 registers.
template <int S>
constexpr int64_t tile_rows() {
  return S == 1 ? 8 : 4;
}
inline constexpr int64_t kRowsPerTask = 8;  // task boundaries: a multiple of every tile_rows

// Weight rows [n0, n1) for each thread task: enough tasks to balance a shared
// machine, few enough that the per-task overhead stays small, and at least
// kMinTaskBytes of weights each, so that small matrices (the test models'
// 48-wide layers) run on the calling thread without forking the pool.
inline constexpr int64_t kMinTaskBytes = 64 << 10;

inline int64_t task_rows(int64_t N, int64_t row_bytes) {
  const int64_t want_tasks = 4 * num_threads();
  const int64_t min_rows = std::max<int64_t>(32, kMinTaskBytes / std::max<int64_t>(1, row_bytes));
  return std::max<int64_t>(min_rows, (N + want_tasks - 1) / want_tasks + kRowsPerTask - 1) / kRowsPerTask *
         kRowsPerTask;
}

template <class Body>
void for_row_tasks(int64_t N, int64_t row_bytes, Body&& body) {
  const int64_t rows = task_rows(N, row_bytes);
  thread_pool().run((N + rows - 1) / rows, [&](int64_t t, int) { body(t * rows, std::min(N, (t + 1) * rows)); });
}

inline const char* row_ptr(const BOperand& w, int64_t n) { return static_cast<const char*>(w.data) + n * w.ld; }

// Weight rows [n0, n1) against S activation rows: tile.operator()<R, S>(n, out)
// computes rows n..n+R-1 into out[s * R + r] (R = tile_rows<S>(), or 1 at the
// ragged end); y[s][n + r] = out + bias.
template <int S, class Tile>
void dot_rows(int64_t n0, int64_t n1, float* y, int64_t ldy, const float* bias, Tile&& tile) {
  constexpr int64_t kRowsPerTile = tile_rows<S>();
  float out[S * kRowsPerTile];
  auto store = [&](int64_t n, int64_t rows) {
    for (int s = 0; s < S; ++s)
      for (int64_t r = 0; r < rows; ++r) y[s * ldy + n + r] = out[s * rows + r] + (bias ? bias[n + r] : 0.0f);
  };
  for (int64_t n = n0; n < n1;) {
    if (n1 - n >= kRowsPerTile) {
      tile.template operator()<kRowsPerTile, S>(n, out);
      store(n, kRowsPerTile);
      n += kRowsPerTile;
    } else {
      tile.template operator()<1, S>(n, out);
      store(n, 1);
      n += 1;
    }
  }
}

// body.operator()<S>(m) for the activation rows m..m+S-1, S <= kMaxDotRows.
template <class Body>
void for_activation_groups(int64_t M, Body&& body) {
  for (int64_t m = 0; m < M; m += kMaxDotRows) {
    switch (std::min(kMaxDotRows, M - m)) {
      case 1: body.template operator()<1>(m); break;
      case 2: body.template operator()<2>(m); break;
      case 3: body.template operator()<3>(m); break;
      default: body.template operator()<4>(m); break;
    }
  }
}

}  // namespace detail
TINYEMO_ISA_END
}  // namespace tinyemo
