#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/ops.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Largest |fast - ref| / max(|ref|, floor) over every element, each divided by
// `conditioning[i]` when given (how much an f32 rounding of the argument is amplified).
double max_rel_error(const std::vector<float>& fast, const std::vector<float>& ref, double floor,
                     const std::vector<double>& conditioning = {}) {
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double e = std::fabs(static_cast<double>(fast[i]) - ref[i]) / std::max<double>(std::fabs(ref[i]), floor);
    if (!conditioning.empty()) e /= conditioning[i];
    worst = std::max(worst, e);
  }
  return worst;
}

using Activation = void (*)(float*, int64_t);

struct ActivationCase {
  const char* name;
  Activation fast, ref;
  double tolerance;               // per element, relative, per unit of conditioning
  double (*exp_argument)(double);  // the argument the kernel rounds to f32 before exp()
};

// Every activation on a dense sweep of [-30, 30] (all branches of each kernel)
// plus lengths that leave a masked tail. The f32 kernels compute the exponent's
// argument in f32, so far from 0 their error grows with it (as PyTorch's does);
// the tolerance is relative to max(1, |argument|).
TEST(Ops, ActivationsMatchDoublePrecisionReferences) {
  const ActivationCase cases[] = {
      // gelu_erf's kernel restores the rounding error of x^2 (conditioning 1).
      {"gelu_erf", gelu_erf, reference::gelu_erf, 5e-7, [](double) { return 0.0; }},
      {"gelu_tanh", gelu_tanh, reference::gelu_tanh, 2e-7,
       [](double x) { return 2 * 0.7978845608 * (x + 0.044715 * x * x * x); }},
      {"quick_gelu", quick_gelu, reference::quick_gelu, 2e-7, [](double x) { return 1.702 * x; }},
      {"silu", silu, reference::silu, 2e-7, [](double x) { return x; }},
  };
  std::vector<float> sweep;
  for (float v = -30.0f; v <= 30.0f; v += 0.00173f) sweep.push_back(v);
  sweep.push_back(0.0f);
  sweep.push_back(-0.0f);
  for (const auto& c : cases) {
    for (size_t n : {size_t{1}, size_t{15}, size_t{17}, sweep.size()}) {
      std::vector<float> fast(sweep.begin(), sweep.begin() + static_cast<std::ptrdiff_t>(n)), ref = fast;
      c.fast(fast.data(), static_cast<int64_t>(n));
      c.ref(ref.data(), static_cast<int64_t>(n));
      std::vector<double> conditioning(n);
      for (size_t i = 0; i < n; ++i)
        conditioning[i] = std::max(1.0, std::fabs(c.exp_argument(sweep[i])));
      // Relative to the value, except where it underflows towards 0 (floor 1e-30).
      EXPECT_LT(max_rel_error(fast, ref, 1e-30, conditioning), c.tolerance) << c.name << " n=" << n;
    }
  }
}

TEST(Ops, GeluErfIsExactInTheRangeActivationsLive) {
  // PyTorch's nn.GELU() uses the exact erf: hold a few ulp (measured worst 4.1e-7) for |x| < 6.
  std::vector<float> x;
  for (float v = -6.0f; v <= 6.0f; v += 1e-4f) x.push_back(v);
  std::vector<float> ref = x;
  reference::gelu_erf(ref.data(), static_cast<int64_t>(ref.size()));
  gelu_erf(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_LT(max_rel_error(x, ref, 1e-30), 5e-7);
}

TEST(Ops, NormsAndSoftmaxMatchReferences) {
  for (int64_t cols : {int64_t{1}, int64_t{17}, int64_t{768}, int64_t{1030}}) {
    const int64_t rows = 3;
    const auto x = randn(rows * cols, 1, 3.0f), gamma = randn(cols, 2), beta = randn(cols, 3);
    std::vector<float> y(rows * cols), yref(rows * cols);
    layer_norm(x.data(), rows, cols, gamma.data(), beta.data(), 1e-5f, y.data());
    reference::layer_norm(x.data(), rows, cols, gamma.data(), beta.data(), 1e-5f, yref.data());
    EXPECT_LT(testing::rel_error(y, yref), 1e-6) << "layer_norm cols=" << cols;
    layer_norm(x.data(), rows, cols, nullptr, nullptr, 1e-5f, y.data());
    reference::layer_norm(x.data(), rows, cols, nullptr, nullptr, 1e-5f, yref.data());
    EXPECT_LT(testing::rel_error(y, yref), 1e-6) << "layer_norm (no affine) cols=" << cols;
    rms_norm(x.data(), rows, cols, gamma.data(), 1e-6f, y.data());
    reference::rms_norm(x.data(), rows, cols, gamma.data(), 1e-6f, yref.data());
    EXPECT_LT(testing::rel_error(y, yref), 1e-6) << "rms_norm cols=" << cols;
    y = x;
    yref = x;
    y[1] = yref[1] = -INFINITY;  // a masked score
    softmax_rows(y.data(), rows, cols);
    reference::softmax_rows(yref.data(), rows, cols);
    // exp's argument x - max reaches ~20 here; its f32 rounding costs ~20 ulp.
    EXPECT_LT(max_rel_error(y, yref, 1e-30), 3e-6) << "softmax cols=" << cols;
  }
}

TEST(Ops, SoftmaxOfAFullyMaskedRowIsZero) {
  std::vector<float> x(20, -INFINITY);
  softmax_rows(x.data(), 1, 20);
  for (float v : x) EXPECT_EQ(v, 0.0f);
}

TEST(Ops, DotAndAdd) {
  for (int64_t n : {int64_t{0}, int64_t{5}, int64_t{33}, int64_t{1000}}) {
    const auto a = randn(n, 4), b = randn(n, 5);
    double ref = 0.0;
    for (int64_t i = 0; i < n; ++i) ref += static_cast<double>(a[i]) * b[i];
    EXPECT_NEAR(dot(a.data(), b.data(), n), ref, 1e-4 * (1.0 + std::sqrt(static_cast<double>(n))));
    auto y = a;
    add_inplace(y.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], a[i] + b[i]);
  }
}

}  // namespace
}  // namespace tinyemo
