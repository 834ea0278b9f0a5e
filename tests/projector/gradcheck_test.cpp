// Finite-difference checks (in double precision) of every hand-written
// backward pass of the projector: GELU, row normalisation, the MLP (both
// Linears, BatchNorm in training mode, dropout) and every loss, alone and
// chained through the normalised embeddings and (learned) anchors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "models/projector/losses.h"
#include "models/projector/mlp.h"
#include "core/rng.h"

namespace tinyemo::projector {
namespace {

std::vector<double> randn(Rng& rng, size_t n, double scale = 1.0) {
  std::vector<double> v(n);
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

// Central differences of f over every entry of `x`, against `analytic`:
// the relative error ||fd - analytic|| / ||analytic||.
double fd_rel_error(std::vector<double>& x, const std::vector<double>& analytic, const std::function<double()>& f,
                    double h = 1e-6) {
  EXPECT_EQ(x.size(), analytic.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double fp = f();
    x[i] = keep - h;
    const double fm = f();
    x[i] = keep;
    const double fd = (fp - fm) / (2 * h);
    num += (fd - analytic[i]) * (fd - analytic[i]);
    den += analytic[i] * analytic[i];
  }
  EXPECT_GT(den, 0.0) << "zero analytic gradient: the check would be vacuous";
  return std::sqrt(num / den);
}

constexpr double kTol = 1e-7;

TEST(ProjectorGradcheck, GeluDerivative) {
  for (double x : {-4.0, -1.3, -0.2, 0.0, 0.4, 1.7, 3.5}) {
    const double h = 1e-6;
    const double fd = (gelu(x + h) - gelu(x - h)) / (2 * h);
    EXPECT_NEAR(gelu_grad(x), fd, 1e-8) << x;
  }
  // PyTorch's nn.GELU() values.
  EXPECT_NEAR(gelu(1.0), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(gelu(-0.5), -0.15426876936299344, 1e-15);
}

TEST(ProjectorGradcheck, NormalizeRows) {
  Rng rng(1);
  const int64_t R = 3, C = 5;
  std::vector<double> x = randn(rng, R * C), w = randn(rng, R * C), u(R * C), dx(R * C);
  auto f = [&] {
    normalize_rows<double>(x.data(), R, C, u.data());
    double s = 0;
    for (size_t i = 0; i < u.size(); ++i) s += u[i] * w[i];
    return s;
  };
  f();
  normalize_rows_backward<double>(x.data(), u.data(), w.data(), R, C, dx.data());
  EXPECT_LT(fd_rel_error(x, dx, f), kTol);
}

struct MlpCase {
  MlpDims dims{7, 6};
  int64_t B = 5;
  MlpLayout layout{dims};
  std::vector<double> params, x, keep, weights;  // objective = sum(out * weights)
  MlpCache<double> cache;

  explicit MlpCase(bool dropout) {
    Rng rng(7);
    params.resize(layout.size);
    mlp_init<double>(layout, params.data(), rng);
    // Non-trivial BN affine parameters.
    for (int64_t h = 0; h < dims.hidden; ++h) {
      params[layout.gamma + h] = 0.5 + rng.uniform();
      params[layout.beta + h] = rng.normal() * 0.3;
    }
    x = randn(rng, B * dims.input, 2.0);
    weights = randn(rng, B * dims.hidden);
    keep.assign(B * dims.hidden, 1.0);
    if (dropout) {
      for (auto& k : keep) k = rng.uniform() < 0.2 ? 0.0 : 1.25;
    }
  }
  double objective() {
    std::vector<double> out(B * dims.hidden);
    mlp_forward_train<double>(layout, params.data(), x.data(), B, keep.data(), 1e-5, cache, out.data());
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * weights[i];
    return s;
  }
};

TEST(ProjectorGradcheck, MlpTrainingModeAllParametersAndInput) {
  for (bool dropout : {false, true}) {
    MlpCase c(dropout);
    c.objective();
    std::vector<double> grads(c.layout.size), dx(c.x.size());
    mlp_backward<double>(c.layout, c.params.data(), c.x.data(), c.cache, c.weights.data(), grads.data(), dx.data());
    // Each parameter block separately, so a wrong block cannot hide behind the others.
    const struct {
      const char* name;
      int64_t offset, size;
    } blocks[] = {{"model.0.weight", c.layout.w1, c.dims.hidden * c.dims.input},
                  {"model.0.bias", c.layout.b1, c.dims.hidden},
                  {"model.1.weight", c.layout.gamma, c.dims.hidden},
                  {"model.1.bias", c.layout.beta, c.dims.hidden},
                  {"model.4.weight", c.layout.w2, c.dims.hidden * c.dims.hidden},
                  {"model.4.bias", c.layout.b2, c.dims.hidden}};
    for (const auto& blk : blocks) {
      std::vector<double> view(c.params.begin() + blk.offset, c.params.begin() + blk.offset + blk.size);
      const std::vector<double> analytic(grads.begin() + blk.offset, grads.begin() + blk.offset + blk.size);
      auto f = [&] {
        std::copy(view.begin(), view.end(), c.params.begin() + blk.offset);
        return c.objective();
      };
      const double err = fd_rel_error(view, analytic, f);
      std::copy(view.begin(), view.end(), c.params.begin() + blk.offset);
      if (blk.offset == c.layout.b1) {
        // BatchNorm removes the batch mean: the first bias has no effect on the output.
        double mx = 0;
        for (double g : analytic) mx = std::max(mx, std::fabs(g));
        EXPECT_LT(mx, 1e-10) << blk.name;
        continue;
      }
      EXPECT_LT(err, kTol) << blk.name << (dropout ? " (dropout)" : "");
    }
    EXPECT_LT(fd_rel_error(c.x, dx, [&] { return c.objective(); }), kTol) << "input";
  }
}

TEST(ProjectorGradcheck, MlpEvalModeMatchesTrainingWithRunningStats) {
  // Eval mode = BN with running statistics; with the running statistics set
  // to this batch's statistics (variance biased), it must equal training mode
  // without dropout.
  MlpCase c(false);
  std::vector<double> out_train(c.B * c.dims.hidden), out_eval(out_train.size());
  mlp_forward_train<double>(c.layout, c.params.data(), c.x.data(), c.B, nullptr, 1e-5, c.cache, out_train.data());
  mlp_forward_eval<double>(c.layout, c.params.data(), c.cache.mean.data(), c.cache.var.data(), 1e-5, c.x.data(), c.B,
                           out_eval.data());
  for (size_t i = 0; i < out_train.size(); ++i) EXPECT_NEAR(out_eval[i], out_train[i], 1e-12);
}

struct LossCase {
  int64_t B, L;
  std::vector<int64_t> labels;
};

TEST(ProjectorGradcheck, LossesFromCosines) {
  const LossCase cases[] = {
      {8, 4, {0, 1, 0, 2, 1, 0, 3, 1}},
      {6, 3, {2, 2, 0, 0, 1, 2}},  // a label with one sample (skipped by InfoNCE/NT-Xent)
      {5, 5, {0, 1, 2, 3, 4}},     // no positives: InfoNCE/NT-Xent give 0
  };
  for (LossKind kind : {LossKind::InfoNCE, LossKind::Cosine, LossKind::NTXent, LossKind::SoftmaxCE}) {
    for (const auto& lc : cases) {
      Rng rng(11);
      std::vector<double> cos(lc.B * lc.L), dcos(cos.size());
      for (auto& v : cos) v = 2.0 * rng.uniform() - 1.0;
      LossSpec spec{kind, default_temperature(kind), kind == LossKind::SoftmaxCE ? 0.1 : 0.0};
      auto f = [&] { return loss_from_cosines<double>(spec, cos.data(), lc.labels.data(), lc.B, lc.L, nullptr); };
      const double loss = loss_from_cosines<double>(spec, cos.data(), lc.labels.data(), lc.B, lc.L, dcos.data());
      const bool undefined = (kind == LossKind::InfoNCE || kind == LossKind::NTXent) && lc.labels[4] == 4;
      if (undefined) {
        EXPECT_EQ(loss, 0.0);
        for (double g : dcos) EXPECT_EQ(g, 0.0);
        continue;
      }
      EXPECT_GT(loss, 0.0) << loss_name(kind);
      EXPECT_LT(fd_rel_error(cos, dcos, f), kTol) << loss_name(kind) << " B=" << lc.B;
    }
  }
}

TEST(ProjectorGradcheck, EmbeddingLossChainToOutputsAndAnchors) {
  const int64_t B = 8, L = 4, H = 6;
  const std::vector<int64_t> labels = {0, 1, 0, 2, 1, 0, 3, 1};
  for (LossKind kind : {LossKind::InfoNCE, LossKind::Cosine, LossKind::NTXent, LossKind::SoftmaxCE}) {
    Rng rng(5);
    std::vector<double> z = randn(rng, B * H), anchors = randn(rng, L * H), dz(z.size()), da(anchors.size());
    LossSpec spec{kind, default_temperature(kind), kind == LossKind::SoftmaxCE ? 0.1 : 0.0};
    EmbeddingLossBuffers<double> w;
    auto f = [&] {
      std::vector<double> gz(z.size());
      return embedding_loss<double>(spec, z.data(), anchors.data(), labels.data(), B, L, H, gz.data(), nullptr, w);
    };
    embedding_loss<double>(spec, z.data(), anchors.data(), labels.data(), B, L, H, dz.data(), da.data(), w);
    EXPECT_LT(fd_rel_error(z, dz, f), kTol) << loss_name(kind) << " outputs";
    EXPECT_LT(fd_rel_error(anchors, da, f), kTol) << loss_name(kind) << " anchors";
  }
}

}  // namespace
}  // namespace tinyemo::projector
