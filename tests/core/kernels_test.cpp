#include <gtest/gtest.h>

#include <random>

#include "core/attention.h"
#include "core/matmul.h"
#include "core/thread_pool.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(ThreadPool, RunsEveryTaskOnceAndPropagatesErrors) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.run(1000, [&](int64_t t, int) { hits[t]++; });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_THROW(pool.run(10, [](int64_t t, int) {
                 if (t == 5) fail("boom");
               }),
               Error);
  // Still usable afterwards.
  std::atomic<int> n{0};
  pool.run(7, [&](int64_t, int) { n++; });
  EXPECT_EQ(n.load(), 7);
}

TEST(Gemm, MatchesReferenceForAllTransposes) {
  const int64_t M = 17, N = 23, K = 31;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const auto A = randn(M * K, 1), B = randn(K * N, 2);
      auto C = randn(M * N, 3), Cref = C;
      const int64_t lda = ta ? M : K, ldb = tb ? K : N;
      gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.0f, C.data(), N);
      reference::gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.0f, Cref.data(), N);
      EXPECT_LT(testing::rel_error(C, Cref), 1e-6);
    }
  }
}

TEST(Linear, AllWeightTypesMatchTheReference) {
  const int64_t M = 5, N = 40, K = 64;
  const auto x = randn(M * K, 4), b = randn(N, 6);
  Tensor w32 = Tensor::from_vector<float>({N, K}, randn(N * K, 5));
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
    Tensor w = w32.to(t);
    std::vector<float> y(M * N), yref(M * N);
    linear(x.data(), M, w, b.data(), y.data());
    reference::linear(x.data(), M, w, b.data(), yref.data());
    EXPECT_LT(testing::rel_error(y, yref), 1e-5) << dtype_name(t);
  }
}

TEST(Attention, MatchesReferenceCausalAndGrouped) {
  AttentionShape s;
  s.q_len = 7;
  s.kv_len = 12;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 8;
  s.causal = true;
  s.q_pos0 = 5;
  const auto q = randn(s.q_len * 32, 7), k = randn(s.kv_len * 16, 8), v = randn(s.kv_len * 16, 9);
  std::vector<float> out(s.q_len * 32), ref(s.q_len * 32);
  attention(s, 0.3f, q.data(), 32, k.data(), 16, v.data(), 16, out.data(), 32);
  reference::attention(s, 0.3f, q.data(), 32, k.data(), 16, v.data(), 16, ref.data(), 32);
  EXPECT_LT(testing::rel_error(out, ref), 1e-6);
}

}  // namespace
}  // namespace tinyemo
