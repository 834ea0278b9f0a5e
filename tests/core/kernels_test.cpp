#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>
#include <thread>

#include "core/attention.h"
#include "core/finite.h"
#include "core/matmul.h"
#include "core/matmul_internal.h"
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

// Every item exactly once, in pieces of at most the owner's claim, for ragged
// sizes, a grain larger than n, and a thread that starts late (its range is
// then taken by the other from the back).
TEST(ThreadPool, StealingSplitCoversEveryItemOnce) {
  set_num_threads(2);
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{100}, int64_t{4097}}) {
    for (const int64_t grain : {int64_t{1}, int64_t{3}, int64_t{5000}}) {
      for (const bool late : {false, true}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> pieces{0};
        std::atomic<bool> first{true};
        parallel_for_stealing(n, grain, [&](int64_t begin, int64_t end) {
          if (late && first.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          ASSERT_LT(begin, end);
          for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
          pieces++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << grain << " " << i;
        if (grain >= n) {
          EXPECT_EQ(pieces.load(), 1);  // one grain: no split, the calling thread
        }
      }
    }
  }
}

// A team's barriers order its members' writes, and for_each_piece hands out
// every item exactly once per call, call after call (its range slots are
// reused every other call), with ragged sizes and a member that starts late.
TEST(Team, BarriersOrderWritesAndPiecesCoverEveryItemOnce) {
  for (const int threads : {1, 2, 3}) {
    set_num_threads(threads);
    const int64_t sizes[] = {1, 7, 100, 4097, 3, 64};
    std::vector<std::vector<std::atomic<int>>> hits;
    for (int round = 0; round < 50; ++round)
      for (const int64_t n : sizes) hits.emplace_back(static_cast<size_t>(n));
    std::vector<int64_t> slots(static_cast<size_t>(threads), -1);
    std::atomic<int> mismatches{0};
    run_team([&](Team& team) {
      EXPECT_EQ(team.size(), threads);
      EXPECT_TRUE(in_parallel_region());
      if (team.index() == threads - 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      size_t call = 0;
      for (int round = 0; round < 50; ++round) {
        for (const int64_t n : sizes) {
          team.for_each_piece(n, 1 + round % 5, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) hits[call][static_cast<size_t>(i)]++;
          });
          ++call;
          team.barrier();
          // Every member's write before the barrier is seen by all after it.
          slots[static_cast<size_t>(team.index())] = round;
          team.barrier();
          for (int64_t s : slots)
            if (s != round) mismatches++;
          team.barrier();
        }
      }
      const auto [begin, end] = team.share(1000, 16);
      EXPECT_EQ(begin % 16, 0);
      EXPECT_LE(end, 1000);
    });
    EXPECT_EQ(mismatches.load(), 0);
    for (size_t c = 0; c < hits.size(); ++c)
      for (size_t i = 0; i < hits[c].size(); ++i) ASSERT_EQ(hits[c][i].load(), 1) << threads << " call " << c << " item " << i;
  }
  set_num_threads(2);
}

// A member that throws ends the team: the others leave their barriers instead
// of waiting forever, and run_team rethrows the member's error. Inside a pool
// task a team is the calling thread alone.
TEST(Team, FailureReachesTheCallerAndNestedTeamsRunAlone) {
  set_num_threads(2);
  EXPECT_THROW(run_team([](Team& team) {
                 if (team.index() == 1) throw std::runtime_error("member failed");
                 for (int i = 0; i < 3; ++i) team.barrier();
               }),
               std::runtime_error);
  // A weight linear() refuses, in every member at once: the error, not a hang.
  const Tensor vector = Tensor::zeros(DType::F32, {64});
  std::vector<float> x(64), y(64);
  try {
    run_team([&](Team& team) { linear(team, x.data(), 1, vector, nullptr, y.data()); });
    ADD_FAILURE() << "a 1-D weight was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2-D"), std::string::npos) << e.what();
  }
  // More items than a split can index, and a team started from inside a pool task: refused by name.
  try {
    run_team([](Team& team) { team.for_each_piece(int64_t{1} << 32, 1, [](int64_t, int64_t) {}); });
    ADD_FAILURE() << "2^32 items were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("for_each_piece"), std::string::npos) << e.what();
  }
  ThreadPool pool(2);
  EXPECT_THROW(pool.run(2, [&](int64_t, int) { pool.run_on_every_thread([](int64_t, int) {}); }), Error);
  std::atomic<int> sizes{0};
  parallel_for(2, 1, [&](int64_t, int64_t) { run_team([&](Team& team) { sizes += team.size(); }); });
  EXPECT_EQ(sizes.load(), 2);
  int ok = 0;
  run_team([&](Team& team) { if (team.index() == 0) ok = 1; });  // the pool still works
  EXPECT_EQ(ok, 1);
}

TEST(ThreadPool, BackToBackJobsNestedLoopsAndFailuresKeepCountsExact) {
  // Thousands of short jobs in a row: a worker that wakes late must never run a
  // task of a job that has finished, nor one of the next job twice.
  ThreadPool pool(3);
  for (int round = 0; round < 3000; ++round) {
    const int64_t n = 1 + round % 7;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.run(n, [&](int64_t t, int) {
      hits[t]++;
      if (round % 100 == 0) {  // nested loops run serially inside a task
        std::atomic<int> inner{0};
        pool.run(4, [&](int64_t, int) { inner++; });
        EXPECT_EQ(inner.load(), 4);
        EXPECT_TRUE(in_parallel_region());
      }
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "round " << round;
  }
  EXPECT_FALSE(in_parallel_region());
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run(50, [&](int64_t t, int) {
                 ran++;
                 if (t == 0) fail("first task fails");
               }),
               Error);
  EXPECT_GE(ran.load(), 1);
}

TEST(Gemm, MatchesReferenceForAllTransposesAndBlockEdges) {
  // Shapes around the kernel's tile edges: 1..4 rows (dot path), 33 rows (tiles of
  // 11), N not a multiple of 16 or 32, K past one 512-deep block and not a multiple of 16.
  struct Shape3 {
    int64_t M, N, K;
  };
  for (const Shape3 sh : {Shape3{17, 23, 31}, Shape3{1, 37, 77}, Shape3{3, 300, 64}, Shape3{33, 70, 601},
                          Shape3{64, 33, 16}}) {
    const int64_t M = sh.M, N = sh.N, K = sh.K;
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (float beta : {0.0f, 2.0f}) {
          const auto A = randn(M * K, 1), B = randn(K * N, 2);
          auto C = randn(M * N, 3), Cref = C;
          const int64_t lda = ta ? M : K, ldb = tb ? K : N;
          const float alpha = beta == 0.0f ? 1.0f : 0.5f;
          gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), N);
          reference::gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, Cref.data(), N);
          EXPECT_LT(testing::rel_error(C, Cref), 1e-6) << M << "x" << N << "x" << K << " ta=" << ta << " tb=" << tb
                                                       << " beta=" << beta;
        }
      }
    }
  }
}

// x rounded the way linear() quantises activations for quantised weights on the
// dot-product path (8 bits per block of 32, scale max|x| / 127).
std::vector<float> round_activations_q8(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t j = 0; j < 32; ++j) r[b + j] = std::nearbyint(x[b + j] * id) * d;
  }
  return r;
}

TEST(Linear, EveryWeightTypeMatchesTheReferenceOnOddShapes) {
  // K = 96 is an odd number of 32-blocks (the pair-wise kernels' tail); 1056 spans
  // three 512-deep blocks; N = 37 and 291 are not multiples of 16.
  for (const int64_t K : {int64_t{96}, int64_t{1056}}) {
    for (const int64_t N : {int64_t{37}, int64_t{291}}) {
      Tensor w32 = Tensor::from_vector<float>({N, K}, randn(N * K, 5));
      const auto b = randn(N, 6);
      for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
        Tensor w = w32.to(t);
        for (const int64_t M : {int64_t{1}, int64_t{3}, int64_t{5}, int64_t{7}, int64_t{8}, int64_t{33}}) {
          const auto x = randn(M * K, 4);
          std::vector<float> y(M * N), yref(M * N), yexact(M * N);
          linear(x.data(), M, w, b.data(), y.data());
          reference::linear(x.data(), M, w, b.data(), yexact.data());
          const bool quantised_activations = dtype_is_quantized(t) && M < detail::dot_path_max_rows(t);
          if (quantised_activations) {
            // Exact against the reference fed the same 8-bit activations, and
            // close to the f32-activation result.
            const auto xq = round_activations_q8(x);
            reference::linear(xq.data(), M, w, b.data(), yref.data());
            EXPECT_LT(testing::rel_error(y, yref), 1e-5) << dtype_name(t) << " M=" << M << " N=" << N << " K=" << K;
            EXPECT_LT(testing::rel_error(y, yexact), 2e-2) << dtype_name(t) << " M=" << M;
          } else {
            EXPECT_LT(testing::rel_error(y, yexact), 1e-5) << dtype_name(t) << " M=" << M << " N=" << N << " K=" << K;
          }
        }
      }
    }
  }
}

// Interleaved Q8_0x16/Q4_0x16 weights (prepare_linear_weight's output) on the
// decode kernel (M < 8, odd and even block counts, several panels) and the
// packed GEMM (M >= 8): against the reference and against the row-major kernel.
TEST(Linear, InterleavedWeightsMatchTheReferenceAndTheRowMajorKernel) {
  for (const int64_t K : {int64_t{96}, int64_t{128}, int64_t{1056}}) {
    for (const int64_t N : {int64_t{16}, int64_t{48}, int64_t{304}}) {
      const Tensor w32 = Tensor::from_vector<float>({N, K}, randn(N * K, 7));
      const auto b = randn(N, 8);
      for (DType rowwise : {DType::Q8_0, DType::Q4_0}) {
        const Tensor w = w32.to(rowwise);
        const Tensor wi = w.to(rowwise == DType::Q8_0 ? DType::Q8_0x16 : DType::Q4_0x16);
        for (const int64_t M : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{7}, int64_t{8}, int64_t{33}}) {
          const auto x = randn(M * K, 9);
          std::vector<float> y(M * N), y_rows(M * N), yref(M * N);
          linear(x.data(), M, wi, b.data(), y.data());
          linear(x.data(), M, w, b.data(), y_rows.data());
          const bool quantised_activations = M < detail::dot_path_max_rows(wi.dtype());
          const auto xr = quantised_activations ? round_activations_q8(x) : x;
          reference::linear(xr.data(), M, wi, b.data(), yref.data());
          EXPECT_LT(testing::rel_error(y, yref), 1e-5) << dtype_name(wi.dtype()) << " M=" << M << " N=" << N
                                                       << " K=" << K;
          EXPECT_LT(testing::rel_error(y, y_rows), 1e-6) << dtype_name(wi.dtype()) << " M=" << M << " N=" << N
                                                         << " K=" << K;
        }
      }
    }
  }
  // prepare_linear_weight interleaves whole panels only.
  EXPECT_EQ(dtype_of_rows(prepare_linear_weight(Tensor::zeros(DType::Q8_0, {32, 64})).dtype()), DType::Q8_0);
  EXPECT_EQ(prepare_linear_weight(Tensor::zeros(DType::Q8_0, {33, 64})).dtype(), DType::Q8_0);
  EXPECT_EQ(prepare_linear_weight(Tensor::zeros(DType::F32, {32, 64})).dtype(), DType::F32);
}

// Several weights on one input in one pass: the same numbers as linear() for
// each, for interleaved weights (the joint path), mixed dtypes and many rows.
TEST(Linear, SharedInputMatchesOneLinearPerWeight) {
  const int64_t K = 96;
  const Tensor wq = Tensor::from_vector<float>({64, K}, randn(64 * K, 21)).to(DType::Q8_0x16);
  const Tensor wk = Tensor::from_vector<float>({16, K}, randn(16 * K, 22)).to(DType::Q8_0x16);
  const Tensor wv = Tensor::from_vector<float>({32, K}, randn(32 * K, 23)).to(DType::Q8_0x16);
  const Tensor w4 = Tensor::from_vector<float>({32, K}, randn(32 * K, 24)).to(DType::Q4_0x16);
  const auto bias = randn(64, 25);
  for (const int64_t M : {int64_t{1}, int64_t{3}, int64_t{9}}) {
    const auto x = randn(M * K, 26);
    for (const Tensor* third : {&wv, &w4}) {
      std::vector<float> q(M * 64), k(M * 16), v(M * third->dim(0));
      const LinearTarget targets[] = {{&wq, bias.data(), q.data()}, {&wk, nullptr, k.data()}, {third, bias.data(), v.data()}};
      linear_shared_input(x.data(), M, targets);
      for (const LinearTarget& t : targets) {
        std::vector<float> want(M * t.weight->dim(0));
        linear(x.data(), M, *t.weight, t.bias, want.data());
        EXPECT_EQ(std::vector<float>(t.y, t.y + want.size()), want)
            << dtype_name(t.weight->dtype()) << " M=" << M << " third " << dtype_name(third->dtype());
      }
    }
  }
}

// A team's linear() gives the same numbers as linear() for every weight kind
// (balanced pieces for interleaved weights, row shares otherwise), also with
// several targets on one input, teams of 1-3 threads and rows not a multiple of 16.
TEST(Linear, TeamMatchesLinear) {
  const int64_t K = 96;
  const auto x = randn(3 * K, 31);
  const auto bias = randn(80, 32);
  std::vector<Tensor> weights;
  for (const DType d : {DType::Q8_0x16, DType::Q4_0x16, DType::F32, DType::BF16, DType::Q8_0})
    weights.push_back(Tensor::from_vector<float>({80, K}, randn(80 * K, 33)).to(d));
  weights.push_back(Tensor::from_vector<float>({37, K}, randn(37 * K, 34)));
  for (const int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (const int64_t M : {int64_t{1}, int64_t{3}}) {
      for (const Tensor& w : weights) {
        const int64_t N = w.dim(0);
        std::vector<float> want(M * N), got(M * N, -1.0f), second(M * 16, -1.0f), second_want(M * 16);
        linear(x.data(), M, w, bias.data(), want.data());
        const Tensor w2 = w.dtype() == DType::Q8_0x16 ? weights[0].rows(0, 16) : w.rows(0, 16);
        linear(x.data(), M, w2, nullptr, second_want.data());
        run_team([&](Team& team) {
          linear(team, x.data(), M, w, bias.data(), got.data());
          const LinearTarget targets[] = {{&w, bias.data(), got.data()}, {&w2, nullptr, second.data()}};
          linear_shared_input(team, x.data(), M, targets);
        });
        EXPECT_EQ(got, want) << dtype_name(w.dtype()) << " N=" << N << " M=" << M << " threads " << threads;
        EXPECT_EQ(second, second_want) << dtype_name(w.dtype()) << " M=" << M << " threads " << threads;
      }
    }
  }
  set_num_threads(2);
}

// Weights packed once for the GEMM (pack_linear_weight). F32x32: the very
// numbers of the row-major weight (same kernel, same sums). BF16x32: against
// the reference fed bf16-rounded activations (vdpbf16ps sums pairs in f32),
// and close to the f32 product. M covers one row, one tile (14), a tile edge
// (15), several tiles split between tasks; K = 1056 spans three k blocks, 588
// is CLIP's patch matrix (not a multiple of 32); N = 1056 is 33 panels.
TEST(Linear, PackedWeightsMatchTheRowMajorKernelAndTheReference) {
  for (const int64_t K : {int64_t{2}, int64_t{96}, int64_t{588}, int64_t{1056}}) {
    for (const int64_t N : {int64_t{32}, int64_t{96}, int64_t{1056}}) {
      const Tensor w32 = Tensor::from_vector<float>({N, K}, randn(N * K, 41));
      const auto b = randn(N, 42);
      for (const DType stored : {DType::F32, DType::BF16, DType::F16}) {
        const Tensor w = w32.to(stored);
        const Tensor wf = pack_linear_weight(w, LinearCompute::F32);
        const Tensor wb = pack_linear_weight(w, LinearCompute::BF16);
        ASSERT_EQ(wf.dtype(), DType::F32x32);
        ASSERT_EQ(wb.dtype(), DType::BF16x32);
        for (const int64_t M : {int64_t{1}, int64_t{14}, int64_t{15}, int64_t{57}}) {
          const auto x = randn(M * K, 43);
          std::vector<float> y_rows(M * N), y_f32(M * N), y_bf16(M * N), y_ref(M * N);
          linear(x.data(), M, w, b.data(), y_rows.data());
          linear(x.data(), M, wf, b.data(), y_f32.data());
          linear(x.data(), M, wb, b.data(), y_bf16.data());
          const std::string where = std::string(dtype_name(stored)) + " M=" + std::to_string(M) +
                                    " N=" + std::to_string(N) + " K=" + std::to_string(K);
          // Row-major weights take the dot path below 5 rows (other sums).
          EXPECT_LT(testing::rel_error(y_f32, y_rows), M < detail::dot_path_max_rows(stored) ? 1e-5 : 1e-7) << where;
          reference::linear(x.data(), M, wb, b.data(), y_ref.data());
          EXPECT_LT(testing::rel_error(y_bf16, y_ref), 1e-5) << where;
          EXPECT_LT(testing::rel_error(y_bf16, y_rows), 1e-2) << where;
        }
      }
    }
  }
}

// LinearCompute::BF16 on weights as stored (packed per call as bf16 pairs):
// the reference fed x and the dequantised weights rounded to bf16 (products
// exact in f32, sums in another order), for every stored dtype, rows not a
// multiple of 32 (f32/16-bit), several k blocks and m tiles. Below the dot
// path's row count, and on F32x32 weights, the request changes nothing.
TEST(Linear, Bf16ComputeOnStoredWeightsMatchesTheReference) {
  const auto round_bf16 = [](const std::vector<float>& v) {
    return Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v).to(DType::BF16).to_f32_vector();
  };
  for (const DType stored : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q8_0x16, DType::Q4_0x16,
                             DType::Q4_K}) {
    const bool block = dtype_is_quantized(stored);
    for (const int64_t K : {int64_t{256}, int64_t{1280}}) {
      for (const int64_t N : {int64_t{48}, int64_t{96}, int64_t{40}}) {
        if (N == 40 && block) continue;
        const Tensor w = Tensor::from_vector<float>({N, K}, randn(N * K, 51)).to(stored);
        const Tensor w_bf16 = Tensor::from_vector<float>({N, K}, round_bf16(w.to_f32_vector())).to(DType::BF16);
        const auto b = randn(N, 52);
        for (const int64_t M : {int64_t{1}, int64_t{8}, int64_t{15}, int64_t{57}}) {
          const auto x = randn(M * K, 53);
          const auto x_bf16 = round_bf16(x);
          std::vector<float> y(M * N), y_f32(M * N), y_ref(M * N);
          linear(x.data(), M, w, b.data(), y.data(), 0, 0, LinearCompute::BF16);
          linear(x.data(), M, w, b.data(), y_f32.data());
          const std::string where = std::string(dtype_name(stored)) + " M=" + std::to_string(M) +
                                    " N=" + std::to_string(N) + " K=" + std::to_string(K);
          if (M < detail::dot_path_max_rows(stored)) {
            EXPECT_EQ(y, y_f32) << where;
            continue;
          }
          reference::linear(x_bf16.data(), M, w_bf16, b.data(), y_ref.data());
          EXPECT_LT(testing::rel_error(y, y_ref), 1e-5) << where;
          EXPECT_LT(testing::rel_error(y, y_f32), 1e-2) << where;
          EXPECT_NE(y, y_f32) << where << ": bf16 products were asked for";
        }
      }
    }
  }
  // Packed f32 panels keep f32 products whatever is asked.
  const Tensor w = pack_linear_weight(Tensor::from_vector<float>({64, 96}, randn(64 * 96, 54)), LinearCompute::F32);
  const auto x = randn(20 * 96, 55);
  std::vector<float> y(20 * 64), y_f32(20 * 64);
  linear(x.data(), 20, w, nullptr, y.data(), 0, 0, LinearCompute::BF16);
  linear(x.data(), 20, w, nullptr, y_f32.data());
  EXPECT_EQ(y, y_f32);
}

TEST(Linear, PackedLayoutsRoundTripAndKeepWhatTheyCannotPack) {
  const int64_t N = 64, K = 38;
  const Tensor w = Tensor::from_vector<float>({N, K}, randn(N * K, 44));
  const Tensor wf = pack_linear_weight(w, LinearCompute::F32), wb = pack_linear_weight(w, LinearCompute::BF16);
  EXPECT_EQ(wf.to(DType::F32).to_f32_vector(), w.to_f32_vector());
  EXPECT_EQ(wb.to(DType::F32).to_f32_vector(), w.to(DType::BF16).to_f32_vector());
  EXPECT_EQ(w.to(DType::F32x32).to_f32_vector(), w.to_f32_vector());
  std::vector<float> row(K);
  wb.row_to_f32(37, row.data());
  const std::vector<float> all = w.to(DType::BF16).to_f32_vector();
  EXPECT_EQ(row, std::vector<float>(all.begin() + 37 * K, all.begin() + 38 * K));
  // Whole panels slice; a panel's rows are not addressable one by one.
  EXPECT_EQ(wf.rows(32, 64).to(DType::F32).to_f32_vector(), w.rows(32, 64).to_f32_vector());
  EXPECT_THROW(wf.rows(0, 16), Error);
  EXPECT_THROW(Tensor::zeros(DType::F32, {48, 8}).to(DType::F32x32), Error);
  EXPECT_THROW(Tensor::zeros(DType::F32, {32, 7}).to(DType::BF16x32), Error);
  // A NaN is reported at its row-major index.
  std::vector<float> v = w.to_f32_vector();
  v[45 * K + 11] = NAN;
  const Tensor bad = Tensor::from_vector<float>({N, K}, v);
  EXPECT_EQ(first_non_finite(pack_linear_weight(bad, LinearCompute::F32)), 45 * K + 11);
  EXPECT_EQ(first_non_finite(pack_linear_weight(bad, LinearCompute::BF16)), 45 * K + 11);
  // Matrices the panels do not fit stay as they are.
  EXPECT_EQ(pack_linear_weight(Tensor::zeros(DType::F32, {33, 64}), LinearCompute::F32).dtype(), DType::F32);
  EXPECT_EQ(pack_linear_weight(Tensor::zeros(DType::F32, {32, 63}), LinearCompute::BF16).dtype(), DType::F32);
  EXPECT_EQ(pack_linear_weight(Tensor::zeros(DType::Q8_0, {32, 64}), LinearCompute::F32).dtype(), DType::Q8_0);
  // A team multiplies packed weights too (in whole panels).
  const auto x = randn(6 * K, 45);
  std::vector<float> want(6 * N), got(6 * N);
  for (const Tensor* p : {&wf, &wb}) {
    linear(x.data(), 6, *p, nullptr, want.data());
    run_team([&](Team& team) { linear(team, x.data(), 6, *p, nullptr, got.data()); });
    EXPECT_EQ(got, want) << dtype_name(p->dtype());
  }
}

TEST(Linear, StridedRowsAndNoBias) {
  const int64_t M = 5, N = 19, K = 64, ldx = 80, ldy = 24;
  Tensor w = Tensor::from_vector<float>({N, K}, randn(N * K, 11)).to(DType::BF16);
  const auto xs = randn(M * ldx, 12);
  std::vector<float> x(M * K);
  for (int64_t m = 0; m < M; ++m) std::copy(xs.begin() + m * ldx, xs.begin() + m * ldx + K, x.begin() + m * K);
  for (int64_t rows : {int64_t{1}, M}) {
    std::vector<float> y(rows * ldy, 7.0f), yref(rows * N);
    linear(xs.data(), rows, w, nullptr, y.data(), ldx, ldy);
    reference::linear(x.data(), rows, w, nullptr, yref.data());
    for (int64_t m = 0; m < rows; ++m) {
      for (int64_t n = 0; n < N; ++n) EXPECT_NEAR(y[m * ldy + n], yref[m * N + n], 1e-4f);
      for (int64_t n = N; n < ldy; ++n) EXPECT_EQ(y[m * ldy + n], 7.0f);  // padding untouched
    }
  }
}

TEST(Linear, RejectsBadWeights) {
  std::vector<float> x(64), y(64);
  EXPECT_THROW(linear(x.data(), 1, Tensor::zeros(DType::F32, {64}), nullptr, y.data()), Error);
  EXPECT_THROW(linear(x.data(), 1, Tensor::zeros(DType::I64, {2, 32}), nullptr, y.data()), Error);
}

struct AttentionCase {
  const char* what;
  int64_t q_len, kv_len, n_heads, n_kv_heads, head_dim;
  bool causal;
  int64_t q_pos0;
};

TEST(Attention, MatchesReferenceOnCLIPPrefillAndDecodeShapes) {
  const AttentionCase cases[] = {
      {"clip-like, fused qkv strides", 40, 40, 4, 4, 64, false, 0},
      {"causal prefill, GQA 3:1, head_dim 48", 37, 42, 6, 2, 48, true, 5},
      {"causal prefill longer than a query block", 300, 300, 2, 1, 32, true, 0},
      {"decode, GQA 4:1, long cache", 1, 300, 8, 2, 64, true, 299},
      {"decode seeing part of the cache", 1, 50, 4, 4, 16, true, 20},
      {"decode through the mat-vec path, head_dim 80, GQA 8:1", 1, 200, 16, 2, 80, true, 199},
      {"decode, tiled scores, head_dim 128, GQA 8:1, 37 keys", 1, 37, 16, 2, 128, true, 36},
      {"decode, tiled scores, head_dim 96, 1000 keys", 1, 1000, 5, 1, 96, true, 999},
      {"decode, head_dim 144 (generic scores, GEMM past 256 keys)", 1, 300, 2, 1, 144, true, 299},
      {"decode, head_dim 144, 100 keys", 1, 100, 3, 1, 144, true, 99},
      {"few query rows", 3, 20, 2, 1, 8, true, 17},
      {"head_dim not a multiple of 16", 5, 9, 3, 3, 7, false, 0},
  };
  for (const auto& c : cases) {
    AttentionShape s;
    s.q_len = c.q_len;
    s.kv_len = c.kv_len;
    s.n_heads = c.n_heads;
    s.n_kv_heads = c.n_kv_heads;
    s.head_dim = c.head_dim;
    s.causal = c.causal;
    s.q_pos0 = c.q_pos0;
    // q, k and v interleaved in one buffer per row, as a fused qkv projection writes them.
    const int64_t qw = s.n_heads * s.head_dim, kw = s.n_kv_heads * s.head_dim;
    const int64_t stride = qw + 2 * kw + 3;
    const int64_t rows = std::max(s.q_len, s.kv_len);
    const auto qkv = randn(rows * stride, 7);
    const float* q = qkv.data();
    const float* k = qkv.data() + qw;
    const float* v = qkv.data() + qw + kw;
    const int64_t out_stride = qw + 5;
    std::vector<float> out(s.q_len * out_stride, 0.0f), ref(s.q_len * out_stride, 0.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    attention(s, scale, q, stride, k, stride, v, stride, out.data(), out_stride);
    reference::attention(s, scale, q, stride, k, stride, v, stride, ref.data(), out_stride);
    EXPECT_LT(testing::rel_error(out, ref), 1e-5) << c.what;
    for (int64_t i = 0; i < s.q_len; ++i)
      for (int64_t j = qw; j < out_stride; ++j) EXPECT_EQ(out[i * out_stride + j], 0.0f) << c.what;
  }
}

TEST(Attention, RejectsInconsistentHeads) {
  AttentionShape s;
  s.q_len = s.kv_len = 1;
  s.n_heads = 3;
  s.n_kv_heads = 2;
  s.head_dim = 4;
  std::vector<float> buf(64);
  EXPECT_THROW(attention(s, 1.0f, buf.data(), 12, buf.data(), 8, buf.data(), 8, buf.data(), 12), Error);
}

}  // namespace
}  // namespace tinyemo
