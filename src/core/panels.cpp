#include "core/panels.h"

#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"

namespace tinyemo {

void pack_gemm_panels(DType panels, const void* src, int64_t rows, int64_t cols, void* dst) {
  TE_CHECK(dtype_is_gemm_panels(panels), "pack_gemm_panels: {} is not a panel layout", dtype_name(panels));
  TE_CHECK(rows % 32 == 0 && (panels != DType::BF16x32 || cols % 2 == 0),
           "{} needs rows % 32 == 0{}, got [{}, {}]", dtype_name(panels),
           panels == DType::BF16x32 ? " and cols % 2 == 0" : "", rows, cols);
  // Both layouts move whole 32-bit words: an f32, or a pair of bf16 along cols.
  const int64_t words_per_row = panels == DType::F32x32 ? cols : cols / 2;
  const uint32_t* in = static_cast<const uint32_t*>(src);
  uint32_t* out = static_cast<uint32_t*>(dst);
  parallel_for(rows / 32, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      uint32_t* panel = out + p * 32 * words_per_row;
      for (int64_t j = 0; j < 32; ++j) {
        const uint32_t* row = in + (p * 32 + j) * words_per_row;
        for (int64_t w = 0; w < words_per_row; ++w) panel[w * 32 + j] = row[w];
      }
    }
  });
}

void gemm_panel_row_to_f32(DType panels, const void* data, int64_t cols, int64_t r, float* out) {
  TE_CHECK(dtype_is_gemm_panels(panels), "gemm_panel_row_to_f32: {} is not a panel layout", dtype_name(panels));
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t i = panel_element_index(panels, cols, r, c);
    out[c] = panels == DType::F32x32 ? static_cast<const float*>(data)[i]
                                     : bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
  }
}

}  // namespace tinyemo
