// first_non_finite: every float dtype by its exponent bits, block scales of
// quantised types, the first index even when the scan is split over threads.
#include "core/finite.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <limits>

#include "core/quant.h"
#include "core/thread_pool.h"

namespace tinyemo {
namespace {

TEST(Finite, EveryFloatDtypeFindsTheFirstNonFiniteValue) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const int64_t n : {int64_t{1}, int64_t{100}, int64_t{4096}, int64_t{300001}}) {
    std::vector<float> v(static_cast<size_t>(n), 1.5f);
    for (const DType d : {DType::F32, DType::F16, DType::BF16, DType::F64}) {
      EXPECT_EQ(first_non_finite(Tensor::from_vector<float>({n}, v).to(d)), -1) << dtype_name(d) << " " << n;
    }
    for (const float bad : {nan, inf, -inf}) {
      for (const int64_t at : {int64_t{0}, n / 2, n - 1}) {
        std::vector<float> w = v;
        w[at] = bad;
        if (at + 1 < n) w[n - 1] = nan;  // a later one must not be reported first
        for (const DType d : {DType::F32, DType::F16, DType::BF16, DType::F64}) {
          EXPECT_EQ(first_non_finite(Tensor::from_vector<float>({n}, w).to(d)), at) << dtype_name(d) << " " << n;
        }
        EXPECT_EQ(first_non_finite(w.data(), n), at);
      }
    }
  }
  // The largest finite values are finite; f32 values past f16's range become f16 infinities.
  const Tensor big = Tensor::from_vector<float>({2}, {std::numeric_limits<float>::max(), -65504.0f});
  EXPECT_EQ(first_non_finite(big), -1);
  EXPECT_EQ(first_non_finite(big.to(DType::F16)), 0);
  EXPECT_EQ(first_non_finite(Tensor::from_vector<int64_t>({2}, {1, 2})), -1);
}

TEST(Finite, QuantisedBlocksAreJudgedByTheirScales) {
  std::vector<float> v(128, 0.25f);
  Tensor q = Tensor::from_vector<float>({2, 64}, v).to(DType::Q8_0);
  EXPECT_EQ(first_non_finite(q), -1);
  auto* blocks = static_cast<BlockQ8_0*>(q.raw_mut());
  blocks[2].scale = 0x7e00;  // f16 NaN in the third block
  EXPECT_EQ(first_non_finite(q), 64);
  Tensor q4 = Tensor::from_vector<float>({2, 64}, v).to(DType::Q4_0);
  static_cast<BlockQ4_0*>(q4.raw_mut())[1].scale = 0x7c00;  // +inf
  EXPECT_EQ(first_non_finite(q4), 32);
}

// k-quants carry two f16 scales (Q4_K, Q5_K: d and dmin, leading) or one
// (Q6_K: d, trailing); any of them non-finite makes its 256 weights so.
TEST(Finite, KQuantBlocksAreJudgedByEveryScale) {
  std::vector<float> v(3 * 256);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
  for (const DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    Tensor q = Tensor::from_vector<float>({3, 256}, v).to(t);
    EXPECT_EQ(first_non_finite(q), -1) << dtype_name(t);
    auto* bytes = static_cast<uint8_t*>(q.raw_mut());
    const size_t block = t == DType::Q4_K ? sizeof(BlockQ4_K) : t == DType::Q5_K ? sizeof(BlockQ5_K) : sizeof(BlockQ6_K);
    const size_t at = t == DType::Q6_K ? offsetof(BlockQ6_K, d) : offsetof(BlockQ4_K, dmin);
    const uint16_t nan = 0x7e00;
    std::memcpy(bytes + 2 * block + at, &nan, 2);  // the third super-block
    EXPECT_EQ(first_non_finite(q), 512) << dtype_name(t);
  }
}

TEST(Finite, SameAnswerOnAnyThreadCount) {
  std::vector<float> v(1 << 20, 2.0f);
  v[777777] = std::numeric_limits<float>::quiet_NaN();
  v[900000] = std::numeric_limits<float>::infinity();
  const Tensor t = Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v);
  const int threads = num_threads();
  for (int n : {1, 2, 3}) {
    set_num_threads(n);
    EXPECT_EQ(first_non_finite(t), 777777) << n;
  }
  set_num_threads(threads);
}

}  // namespace
}  // namespace tinyemo
