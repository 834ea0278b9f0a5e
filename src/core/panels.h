// The GEMM's packed weight layouts (DType::F32x32, DType::BF16x32): a [rows,
// cols] matrix stored as panels of 32 rows, each panel in the order the
// micro-kernel reads it, so that linear() multiplies it without re-packing.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tinyemo {

// Element (r, c) of a panel matrix with `cols` columns: its index among the
// matrix's 16- or 32-bit elements.
inline int64_t panel_element_index(DType panels, int64_t cols, int64_t r, int64_t c) {
  const int64_t panel = r / 32, j = r % 32;
  if (panels == DType::F32x32) return (panel * cols + c) * 32 + j;
  return (panel * (cols / 2) + c / 2) * 64 + j * 2 + c % 2;  // BF16x32
}

// rows x cols row-major elements of dtype_of_rows(panels) -> the panel layout
// (rows % 32 == 0; cols % 2 == 0 for BF16x32). Multi-threaded on the global pool.
void pack_gemm_panels(DType panels, const void* src, int64_t rows, int64_t cols, void* dst);
// Row `r` of a panel matrix as cols floats (exact).
void gemm_panel_row_to_f32(DType panels, const void* data, int64_t cols, int64_t r, float* out);

}  // namespace tinyemo
