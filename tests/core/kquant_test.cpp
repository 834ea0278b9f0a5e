// llama.cpp's k-quants (Q4_K, Q5_K, Q6_K): dequantisation bit for bit against
// llama.cpp's own on its own blocks, quantisation against its reference
// quantiser, and linear() (decode kernel and packed GEMM) against the
// dequantised matrix. Reference data: tests/data/core/kquants.safetensors
// (tools/make_kquant_reference.sh, llama.cpp's prebuilt libggml-base).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/matmul.h"
#include "core/matmul_internal.h"
#include "core/quant.h"
#include "io/safetensors.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

const SafetensorsFile& reference() {
  static const SafetensorsFile f = SafetensorsFile::open(testing::source_dir() / "tests/data/core/kquants.safetensors");
  return f;
}

std::vector<float> floats(const std::string& name) { return reference().get(name).to_f32_vector(); }

std::string bytes(const std::string& name) {
  const Tensor t = reference().get(name);
  return std::string(static_cast<const char*>(t.raw()), t.nbytes());
}

constexpr DType kTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> dequantized(DType t, const std::string& blocks) {
  const int64_t n = static_cast<int64_t>(blocks.size() / dtype_size(t)) * kKQuantBlock;
  std::vector<float> out(static_cast<size_t>(n));
  convert(t, blocks.data(), DType::F32, out.data(), n);
  return out;
}

std::string quantized(DType t, const std::vector<float>& x) {
  std::string out(dtype_bytes(t, static_cast<int64_t>(x.size())), '\0');
  convert(DType::F32, x.data(), t, out.data(), static_cast<int64_t>(x.size()));
  return out;
}

TEST(KQuants, LayoutsAndSizes) {
  EXPECT_EQ(dtype_size(DType::Q4_K), 144u);
  EXPECT_EQ(dtype_size(DType::Q5_K), 176u);
  EXPECT_EQ(dtype_size(DType::Q6_K), 210u);
  for (DType t : kTypes) {
    EXPECT_TRUE(dtype_is_quantized(t) && dtype_is_kquant(t));
    EXPECT_EQ(dtype_block_elems(t), 256);
    EXPECT_EQ(dtype_bytes(t, 512), 2 * dtype_size(t));
    EXPECT_THROW(dtype_bytes(t, 288), Error);  // not whole super-blocks
    DType parsed;
    ASSERT_TRUE(parse_dtype(dtype_name(t), &parsed));
    EXPECT_EQ(parsed, t);
  }
  EXPECT_FALSE(dtype_is_kquant(DType::Q4_0));
  EXPECT_EQ(dtype_block_elems(DType::Q4_0), 32);
  EXPECT_EQ(dtype_block_elems(DType::F16), 1);
}

// Our dequantisation of llama.cpp's blocks gives llama.cpp's floats exactly.
TEST(KQuants, DequantisationMatchesLlamaCppBitForBit) {
  for (DType t : kTypes) {
    const std::string name(dtype_name(t));
    const auto got = dequantized(t, bytes(name + ".blocks"));
    const auto want = floats(name + ".dequantized");
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(std::memcmp(&got[i], &want[i], 4), 0) << name << " element " << i << ": " << got[i] << " vs " << want[i];
  }
}

// Our quantiser makes llama.cpp's reference blocks: byte for byte on the
// branch-covering rows (zero, constant, one-signed, outliers, tiny, huge), and
// on a Gaussian set the same or smaller error.
TEST(KQuants, QuantisationMatchesLlamaCppsReferenceQuantiser) {
  const auto x = floats("input");
  const auto e = floats("error_input");
  for (DType t : kTypes) {
    const std::string name(dtype_name(t));
    const std::string ours = quantized(t, x), theirs = bytes(name + ".blocks");
    ASSERT_EQ(ours.size(), theirs.size());
    const size_t block = dtype_size(t);
    for (size_t b = 0; b < ours.size() / block; ++b)
      EXPECT_EQ(ours.substr(b * block, block), theirs.substr(b * block, block)) << name << " super-block " << b;

    const std::string ours_e = quantized(t, e), theirs_e = bytes(name + ".error_blocks");
    int identical = 0;
    for (size_t b = 0; b < ours_e.size() / block; ++b) identical += ours_e.substr(b * block, block) == theirs_e.substr(b * block, block);
    const double err_ours = testing::rel_error(dequantized(t, ours_e), e);
    const double err_theirs = testing::rel_error(dequantized(t, theirs_e), e);
    std::printf("[ %s ] %d / %zu super-blocks identical to llama.cpp's; relative error %.6f (llama.cpp %.6f)\n",
                name.c_str(), identical, ours_e.size() / block, err_ours, err_theirs);
    EXPECT_EQ(identical, static_cast<int>(ours_e.size() / block)) << name;
    EXPECT_LE(err_ours, err_theirs * 1.0001) << name;
    // The bits per weight bound the error: about 2^-bits of the range.
    EXPECT_LT(err_ours, t == DType::Q4_K ? 0.12 : t == DType::Q5_K ? 0.06 : 0.03) << name;
  }
}

TEST(KQuants, TensorConversionsAndRowsRoundTrip) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  std::vector<float> v(4 * 512);
  for (float& f : v) f = dist(rng);
  const Tensor f32 = Tensor::from_vector<float>({4, 512}, v);
  for (DType t : kTypes) {
    const Tensor q = f32.to(t);
    EXPECT_EQ(q.nbytes(), 8 * dtype_size(t));
    const auto back = q.to_f32_vector();
    std::vector<float> row(512);
    q.row_to_f32(2, row.data());
    EXPECT_EQ(row, std::vector<float>(back.begin() + 1024, back.begin() + 1536));
    EXPECT_EQ(q.rows(1, 3).to_f32_vector(), std::vector<float>(back.begin() + 512, back.begin() + 1536));
    // Quantising the dequantised values again is (nearly) a fixed point.
    EXPECT_LT(testing::rel_error(Tensor::from_vector<float>({4, 512}, back).to(t).to_f32_vector(), back), 1e-2);
    EXPECT_THROW(Tensor::from_vector<float>({2, 100}, std::vector<float>(200)).to(t), Error);
  }
}

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// x rounded as the k-quant decode kernel quantises activations: 8 bits per
// super-block of 256, scale max|x| / 127.
std::vector<float> round_activations_q8k(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t b = 0; b < x.size(); b += 256) {
    float amax = 0.0f;
    for (size_t j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t j = 0; j < 256; ++j) r[b + j] = std::nearbyint(x[b + j] * id) * d;
  }
  return r;
}

// linear() with k-quant weights: the decode kernel (M < 8) exactly against the
// reference fed the same 8-bit activations, the packed GEMM (M >= 8) against
// the dequantised matrix; odd N, K of one and of three super-blocks (the
// GEMM's depth blocks split at 512), outliers in the activations.
TEST(KQuants, LinearMatchesTheDequantisedMatrix) {
  for (const int64_t K : {int64_t{256}, int64_t{768}, int64_t{1280}}) {
    for (const int64_t N : {int64_t{1}, int64_t{37}, int64_t{291}}) {
      const Tensor w32 = Tensor::from_vector<float>({N, K}, randn(N * K, 5));
      const auto bias = randn(N, 6);
      for (DType t : kTypes) {
        const Tensor w = w32.to(t);
        for (const int64_t M : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{7}, int64_t{8}, int64_t{33}}) {
          auto x = randn(M * K, 4);
          x[3] = 40.0f;  // an outlier sets one super-block's activation scale
          std::vector<float> y(M * N), yref(M * N), yexact(M * N);
          linear(x.data(), M, w, bias.data(), y.data());
          reference::linear(x.data(), M, w, bias.data(), yexact.data());
          if (M < detail::dot_path_max_rows(t)) {
            const auto xq = round_activations_q8k(x);
            reference::linear(xq.data(), M, w, bias.data(), yref.data());
            EXPECT_LT(testing::rel_error(y, yref), 1e-5) << dtype_name(t) << " M=" << M << " N=" << N << " K=" << K;
            // One 8-bit scale per 256 activations (llama.cpp's too) and the
            // outlier: coarser than the 32-blocks of Q8_0/Q4_0.
            EXPECT_LT(testing::rel_error(y, yexact), 5e-2) << dtype_name(t) << " M=" << M << " N=" << N;
          } else {
            EXPECT_LT(testing::rel_error(y, yexact), 1e-5) << dtype_name(t) << " M=" << M << " N=" << N << " K=" << K;
          }
        }
      }
    }
  }
}

TEST(KQuants, DecodeKernelIsPresentWhereAvx512Is) {
#if defined(__AVX512BW__)
  EXPECT_TRUE(detail::has_kquant_dot());
  EXPECT_EQ(detail::dot_path_max_rows(DType::Q4_K), 8);
#else
  EXPECT_EQ(detail::dot_path_max_rows(DType::Q4_K), detail::has_kquant_dot() ? 8 : 0);
#endif
}

}  // namespace
}  // namespace tinyemo
