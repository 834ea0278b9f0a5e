#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
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

// The interleaved layouts (core/quant.h) at known byte positions, and exact
// round trips through them.
TEST(Quant, InterleavedLayoutsPlaceBlocksAsDocumentedAndRoundTrip) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  const int64_t rows = 48, cols = 96, nb = 3;  // an odd block count: the last block is stored alone
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = dist(rng);
  const Tensor f = Tensor::from_vector<float>({rows, cols}, x);
  const Tensor q8 = f.to(DType::Q8_0), q4 = f.to(DType::Q4_0);
  const Tensor i8 = q8.to(DType::Q8_0x16), i4 = q4.to(DType::Q4_0x16);
  ASSERT_EQ(i8.nbytes(), q8.nbytes());
  const auto* rm8 = static_cast<const BlockQ8_0*>(q8.raw());
  const auto* il8 = static_cast<const uint8_t*>(i8.raw());
  // Row 17 = panel 1, lane 1. Block 1 is the second of the pair (blocks 0, 1):
  // its scales after block 0's, its codes after both scale rows and block 0's codes.
  const int64_t panel1 = nb * 16 * 34;
  uint16_t scale;
  std::memcpy(&scale, il8 + panel1 + 32 + 2 * 1, 2);
  EXPECT_EQ(scale, rm8[17 * nb + 1].scale);
  EXPECT_EQ(il8[panel1 + 64 + 512 + 64 * (5 / 4) + 4 * 1 + 5 % 4],
            static_cast<uint8_t>(rm8[17 * nb + 1].q[5] ^ 0x80));  // code 5, stored + 128
  // Block 2 stands alone: [scales][codes] after the pair's 2 x (32 + 512) bytes.
  std::memcpy(&scale, il8 + panel1 + 1088 + 2 * 1, 2);
  EXPECT_EQ(scale, rm8[17 * nb + 2].scale);
  EXPECT_EQ(il8[panel1 + 1088 + 32 + 64 * 7 + 4 * 1 + 3], static_cast<uint8_t>(rm8[17 * nb + 2].q[31] ^ 0x80));
  // q4_0 keeps the stored bytes (two codes each), 4 groups of 64 per block.
  const auto* rm4 = static_cast<const BlockQ4_0*>(q4.raw());
  const auto* il4 = static_cast<const uint8_t*>(i4.raw());
  EXPECT_EQ(il4[nb * 16 * 18 + 64 + 256 + 64 * 3 + 4 * 1 + 2], rm4[17 * nb + 1].q[14]);

  // Back to rows: the same bytes; single rows and panel slices read the same values.
  for (const auto& [rowwise, interleaved] : {std::pair{q8, i8}, std::pair{q4, i4}}) {
    const Tensor back = interleaved.to(rowwise.dtype());
    ASSERT_EQ(std::memcmp(back.raw(), rowwise.raw(), rowwise.nbytes()), 0) << dtype_name(interleaved.dtype());
    EXPECT_EQ(interleaved.to_f32_vector(), rowwise.to_f32_vector());
    const std::vector<float> all = rowwise.to_f32_vector();
    std::vector<float> row(cols);
    for (int64_t r : {int64_t{0}, int64_t{17}, int64_t{47}}) {
      interleaved.row_to_f32(r, row.data());
      EXPECT_TRUE(std::equal(row.begin(), row.end(), all.begin() + r * cols)) << r;
    }
    EXPECT_EQ(interleaved.rows(16, 32).to_f32_vector(),
              std::vector<float>(all.begin() + 16 * cols, all.begin() + 32 * cols));
    EXPECT_THROW(interleaved.row_to_f32(rows, row.data()), Error);
    EXPECT_THROW(interleaved.rows(1, 2), Error);
    EXPECT_THROW(interleaved.row(3), Error);
  }
  // f32 straight to an interleaved type quantises first.
  EXPECT_EQ(f.to(DType::Q4_0x16).to_f32_vector(), q4.to_f32_vector());
  // Rows that do not fill whole panels (or whole blocks) are refused, naming the layout.
  EXPECT_THROW(Tensor::zeros(DType::F32, {64, 16}).to(DType::Q8_0x16), Error);
  const Tensor odd = Tensor::zeros(DType::Q8_0, {17, 32});
  try {
    odd.to(DType::Q8_0x16);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rows % 16"), std::string::npos) << e.what();
  }
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
