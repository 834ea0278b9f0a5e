// Rotary position embeddings in the rotate-half convention of Hugging Face's
// LLaMA / Phi / OpenELM code: within the first `rotary_dim` dims of a head,
// dim i pairs with dim i + rotary_dim/2; dims past rotary_dim are left alone
// (Phi's partial rotary). Frequencies and angles are computed in f32 as the
// reference does, so long positions round the same way.
#pragma once

#include <cstdint>
#include <vector>

#include "models/lm/config.h"

namespace tinyemo::lm {

class Rope {
 public:
  Rope(int64_t rotary_dim, double theta, const RopeScaling& scaling = {});

  int64_t rotary_dim() const { return rotary_dim_; }
  // cos and sin of the angles for positions [pos0, pos0 + n): [n, rotary_dim/2] each.
  void tables(int64_t pos0, int64_t n, std::vector<float>* cos, std::vector<float>* sin) const;
  // Rotates rows of heads in place: row r (at x + r * row_stride) holds n_heads
  // heads of head_dim floats and uses row r of the tables.
  void apply(const std::vector<float>& cos, const std::vector<float>& sin, float* x, int64_t rows,
             int64_t row_stride, int64_t n_heads, int64_t head_dim) const;

 private:
  int64_t rotary_dim_;
  std::vector<float> inv_freq_;
};

}  // namespace tinyemo::lm
