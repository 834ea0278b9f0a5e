// The vectorisable float math of the training passes against libm in double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/fast_math.h"

namespace tinyemo {
namespace {

// Double-precision references: GELU x Phi(x) and its derivative Phi(x) + x phi(x).
double gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_grad(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

TEST(ProjectorFastMath, ExpRelativeError) {
  double worst = 0.0;
  for (double x = -87.0; x < 88.0; x += 1.37e-3) {
    const float xf = static_cast<float>(x);
    const double ref = std::exp(static_cast<double>(xf));
    worst = std::max(worst, std::fabs(fast::exp(xf) - ref) / ref);
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_EQ(fast::exp(-200.0f), std::exp(-87.3f));  // clamped (and finite) far below
}

// Non-finite inputs (a corrupt model file's weights, NaN features) stay defined
// behaviour (UBSan aborts on a NaN-to-int conversion) and NaN propagates.
TEST(ProjectorFastMath, NonFiniteInputs) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fast::exp(nan), fast::exp(-inf));
  EXPECT_EQ(fast::exp(-inf), std::exp(-87.3f));
  EXPECT_TRUE(std::isfinite(fast::exp(inf)));
  float value, grad;
  fast::gelu_with_grad(nan, value, grad);
  EXPECT_TRUE(std::isnan(value));
  EXPECT_TRUE(std::isnan(grad));
}

TEST(ProjectorFastMath, SqrtRelativeErrorAndZero) {
  double worst = 0.0;
  for (double x = 1e-30; x < 1e12; x *= 1.0007) {
    const float xf = static_cast<float>(x);
    const double ref = std::sqrt(static_cast<double>(xf));
    worst = std::max(worst, std::fabs(fast::sqrt(xf) - ref) / ref);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(fast::sqrt(0.0f), 0.0f);
}

TEST(ProjectorFastMath, GeluAndDerivative) {
  double worst_value = 0.0, worst_grad = 0.0;
  for (double x = -12.0; x <= 12.0; x += 1.1e-4) {
    const float xf = static_cast<float>(x);
    float value, grad;
    fast::gelu_with_grad(xf, value, grad);
    const double xd = xf;
    // Relative to max(1, |x|): the scale of the values next to this one.
    const double scale = std::max(1.0, std::fabs(xd));
    worst_value = std::max(worst_value, std::fabs(value - gelu(xd)) / scale);
    worst_grad = std::max(worst_grad, std::fabs(grad - gelu_grad(xd)));
  }
  EXPECT_LT(worst_value, 2e-7);  // float rounding of the result itself is 1.2e-7
  EXPECT_LT(worst_grad, 3e-7);
}

}  // namespace
}  // namespace tinyemo
