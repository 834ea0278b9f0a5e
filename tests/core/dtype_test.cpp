#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

TEST(DType, BulkConversionsAreBitIdenticalToTheScalarOnes) {
  // Every f16/bf16 bit pattern widened in bulk, and f32 values around every
  // rounding case (ties, subnormals, overflow, infinities, NaN) narrowed in bulk.
  std::vector<uint16_t> halves(0x10000);
  for (uint32_t h = 0; h < 0x10000; ++h) halves[h] = static_cast<uint16_t>(h);
  std::vector<float> wide(halves.size());
  for (DType t : {DType::F16, DType::BF16}) {
    convert(t, halves.data(), DType::F32, wide.data(), static_cast<int64_t>(halves.size()));
    for (uint32_t h = 0; h < 0x10000; ++h) {
      const float ref = t == DType::F16 ? f16_to_f32(halves[h]) : bf16_to_f32(halves[h]);
      if (std::isnan(ref)) {  // the hardware conversion quiets signalling NaNs
        ASSERT_TRUE(std::isnan(wide[h])) << std::hex << h;
        continue;
      }
      uint32_t a, b;
      std::memcpy(&a, &wide[h], 4);
      std::memcpy(&b, &ref, 4);
      ASSERT_EQ(a, b) << dtype_name(t) << " " << std::hex << h;
    }
  }
  std::mt19937 rng(3);
  std::vector<float> f;
  for (uint32_t h = 0; h < 0x10000; ++h) {  // each f16/bf16 value and its neighbourhood in f32
    for (const float base : {f16_to_f32(static_cast<uint16_t>(h)), bf16_to_f32(static_cast<uint16_t>(h))}) {
      uint32_t bits;
      std::memcpy(&bits, &base, 4);
      for (const uint32_t delta : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x7fffu, 0x8000u, 0x8001u}) {
        const uint32_t b2 = bits + delta;
        float v;
        std::memcpy(&v, &b2, 4);
        f.push_back(v);
      }
    }
  }
  for (int i = 0; i < 1000; ++i) f.push_back(std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng), i % 300 - 150));
  std::vector<uint16_t> narrow(f.size());
  for (DType t : {DType::F16, DType::BF16}) {
    convert(DType::F32, f.data(), t, narrow.data(), static_cast<int64_t>(f.size()));
    for (size_t i = 0; i < f.size(); ++i) {
      const uint16_t ref = t == DType::F16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
      if (std::isnan(f[i])) {
        const float back = t == DType::F16 ? f16_to_f32(narrow[i]) : bf16_to_f32(narrow[i]);
        EXPECT_TRUE(std::isnan(back));
        continue;
      }
      ASSERT_EQ(narrow[i], ref) << dtype_name(t) << " value " << f[i];
    }
  }
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
