#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/tensor.h"

namespace tinyemo {
namespace {

TEST(DType, F16RoundTripsEveryHalf) {
  // Every finite f16 converts to f32 and back unchanged.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = f16_to_f32(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), bits) << std::hex << h;
  }
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
}

TEST(DType, BF16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST(DType, ConvertIntegersAndFloats) {
  Tensor t = Tensor::from_vector<int64_t>({4}, {-3, 0, 7, 1 << 20});
  Tensor f = t.to(DType::F32);
  EXPECT_EQ(f.data<float>()[0], -3.0f);
  EXPECT_EQ(f.data<float>()[3], 1048576.0f);
  Tensor back = f.to(DType::I64);
  EXPECT_EQ(back.data<int64_t>()[2], 7);
}

TEST(Quant, Q8RoundTripErrorIsBoundedByHalfAStepPlusScaleRounding) {
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> x(256);
  for (auto& v : x) v = dist(rng);
  std::vector<BlockQ8_0> q(8);
  quantize_q8_0(x.data(), q.data(), 256);
  std::vector<float> y(256);
  dequantize_q8_0(q.data(), y.data(), 256);
  for (int b = 0; b < 8; ++b) {
    const float d = f16_to_f32(q[b].scale);
    for (int j = 0; j < 32; ++j) {
      // Codes are rounded against the f32 scale; the stored f16 scale adds up to 127 * d * 2^-11.
      EXPECT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), 0.5f * d + 127.0f * d * std::ldexp(1.0f, -11));
    }
  }
}

TEST(Quant, Q4MatchesGgmlLayout) {
  // Block whose largest-magnitude value is -8: d = 1, codes = x + 8.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j % 16) - 8);
  BlockQ4_0 b;
  quantize_q4_0(x.data(), &b, 32);
  EXPECT_EQ(f16_to_f32(b.scale), 1.0f);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.q[j], static_cast<uint8_t>(j | (j << 4)));
  std::vector<float> y(32);
  dequantize_q4_0(&b, y.data(), 32);
  EXPECT_EQ(x, y);
}

TEST(Tensor, ViewsShareStorageAndCheckBounds) {
  Tensor t = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor r = t.row(1);
  EXPECT_EQ(r.shape(), Shape({2}));
  EXPECT_EQ(r.data<float>()[0], 3.0f);
  EXPECT_THROW(t.rows(2, 4), Error);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_EQ(t.reshape({-1}).dim(0), 6);
  EXPECT_THROW(t.data<int64_t>(), Error);
}

}  // namespace
}  // namespace tinyemo
