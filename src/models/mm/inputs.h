// The tensors file `tinyemo mm logits / generate --inputs` read: pixel_values
// [B, 3, N, N] (or [3, N, N]) and input_ids ([T] or [1, T], integers, with the
// image placeholder where each image goes). Errors name the file and tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/tensor.h"

namespace tinyemo::mm {

struct MmInputs {
  std::vector<int32_t> input_ids;
  Tensor pixel_values;  // undefined when the file has none (a text-only prompt)
};

MmInputs read_mm_inputs(const std::filesystem::path& path, int32_t image_token_index);

// Rows of several [n_k, H] tensors stacked into F32 [sum n_k, H].
Tensor stack_rows(const std::vector<Tensor>& parts);

}  // namespace tinyemo::mm
