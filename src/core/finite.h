// Finding NaN and infinity in weights and inputs before they are used: a
// non-finite value anywhere in a model turns every answer into NaN (or into
// whichever label compares first), with nothing to show for it. Loaders scan
// what they read with these and refuse the file by tensor name.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace tinyemo {

// Index of the first NaN or +-Inf among x[0, n), or -1.
int64_t first_non_finite(const float* x, int64_t n);

// The same for a tensor, read in its stored dtype (F32, F16, BF16, F64 by
// their exponent bits; Q8_0 / Q4_0 by their block scales, reporting the
// block's first element); integer and boolean tensors are always finite.
// Large tensors are scanned on the thread pool.
int64_t first_non_finite(const Tensor& t);

}  // namespace tinyemo
