#include "models/lm/rope.h"

#include <cmath>

#include "core/error.h"

namespace tinyemo::lm {

Rope::Rope(int64_t rotary_dim, double theta, const RopeScaling& scaling) : rotary_dim_(rotary_dim) {
  TE_CHECK(rotary_dim > 0 && rotary_dim % 2 == 0, "RoPE: rotary dimension {} must be even and positive", rotary_dim);
  // inv_freq = 1 / theta^(2i / d), each step in f32 like torch's
  // `1.0 / (base ** (arange(0, d, 2).float() / d))`; scalings as transformers'
  // rope_init functions apply them, in f32.
  const float base = static_cast<float>(theta);
  const float factor = static_cast<float>(scaling.factor);
  for (int64_t i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    float f = 1.0f / std::pow(base, exponent);
    if (scaling.kind == RopeScaling::Kind::Linear) f /= factor;
    if (scaling.kind == RopeScaling::Kind::Llama3) {
      const float old_context = static_cast<float>(scaling.original_max_position);
      const float low = static_cast<float>(scaling.low_freq_factor), high = static_cast<float>(scaling.high_freq_factor);
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > old_context / low) {
        f /= factor;  // long wavelengths: interpolated
      } else if (!(wavelen < old_context / high)) {
        const float smooth = (old_context / wavelen - low) / (high - low);
        f = (1.0f - smooth) * f / factor + smooth * f;
      }
    }
    inv_freq_.push_back(f);
  }
}

void Rope::tables(int64_t pos0, int64_t n, std::vector<float>* cos, std::vector<float>* sin) const {
  const int64_t half = rotary_dim_ / 2;
  cos->resize(static_cast<size_t>(n * half));
  sin->resize(static_cast<size_t>(n * half));
  for (int64_t r = 0; r < n; ++r) {
    const float pos = static_cast<float>(pos0 + r);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq_[i];  // an f32 product, as in the reference
      (*cos)[r * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      (*sin)[r * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

void Rope::apply(const std::vector<float>& cos, const std::vector<float>& sin, float* x, int64_t rows,
                 int64_t row_stride, int64_t n_heads, int64_t head_dim) const {
  const int64_t half = rotary_dim_ / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos.data() + r * half;
    const float* s = sin.data() + r * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + r * row_stride + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace tinyemo::lm
