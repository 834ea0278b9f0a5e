// The projector's float training math against PyTorch 1.13 (numbers from
// tools/projector_reference.py in tests/data/projector/reference.safetensors):
// a training-mode forward/backward with each loss, BN running statistics, the
// eval-mode forward, and AdamW + OneCycleLR step by step.
#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "models/projector/losses.h"
#include "models/projector/mlp.h"
#include "models/projector/optim.h"
#include "testing/testing.h"

namespace tinyemo::projector {
namespace {

using testing::rel_error;

SafetensorsFile reference() {
  return SafetensorsFile::open(testing::source_dir() / "tests/data/projector/reference.safetensors");
}

std::vector<float> vec(const SafetensorsFile& f, const std::string& name) { return f.get(name).to_f32_vector(); }

struct Reference {
  SafetensorsFile f = reference();
  int64_t D = f.get("x").dim(1), B = f.get("x").dim(0), H = f.get("keep_scale").dim(1), L = f.get("anchors").dim(0);
  MlpLayout layout{MlpDims{D, H}};
  std::vector<float> params = std::vector<float>(layout.size);
  std::vector<float> running_mean = vec(f, "init.model.1.running_mean");
  std::vector<float> running_var = vec(f, "init.model.1.running_var");
  std::vector<float> x = vec(f, "x");
  std::vector<int64_t> labels;

  Reference() {
    const Tensor y = f.get("labels");
    labels.assign(y.data<int64_t>(), y.data<int64_t>() + y.numel());
    auto put = [&](const std::string& name, int64_t offset) {
      const auto v = vec(f, "init.model." + name);
      std::copy(v.begin(), v.end(), params.begin() + offset);
    };
    put("0.weight", layout.w1);
    put("0.bias", layout.b1);
    put("1.weight", layout.gamma);
    put("1.bias", layout.beta);
    put("4.weight", layout.w2);
    put("4.bias", layout.b2);
  }
  std::vector<float> block(const std::vector<float>& all, int64_t offset, int64_t n) const {
    return {all.begin() + offset, all.begin() + offset + n};
  }
};

TEST(ProjectorReference, EvalForward) {
  Reference r;
  std::vector<float> out(r.B * r.H);
  mlp_forward_eval<float>(r.layout, r.params.data(), r.running_mean.data(), r.running_var.data(), 1e-5f, r.x.data(),
                          r.B, out.data());
  EXPECT_LT(rel_error(out, vec(r.f, "eval_output")), 1e-5);
}

TEST(ProjectorReference, TrainingForwardBackwardEveryLoss) {
  for (LossKind kind : {LossKind::InfoNCE, LossKind::Cosine, LossKind::NTXent}) {
    const std::string name(loss_name(kind));
    Reference r;
    MlpCache<float> cache;
    std::vector<float> z(r.B * r.H), dz(z.size()), grads(r.layout.size);
    const std::vector<float> keep = vec(r.f, "keep_scale"), anchors = vec(r.f, "anchors");
    mlp_forward_train<float>(r.layout, r.params.data(), r.x.data(), r.B, keep.data(), 1e-5f, cache, z.data());
    EXPECT_LT(rel_error(z, vec(r.f, name + ".output")), 1e-5) << name;

    EmbeddingLossBuffers<float> w;
    const LossSpec spec{kind, default_temperature(kind), 0.0};
    const float loss =
        embedding_loss<float>(spec, z.data(), anchors.data(), r.labels.data(), r.B, r.L, r.H, dz.data(), nullptr, w);
    EXPECT_NEAR(loss, vec(r.f, name + ".loss")[0], 1e-5 * std::fabs(vec(r.f, name + ".loss")[0])) << name;

    mlp_backward<float>(r.layout, r.params.data(), r.x.data(), cache, dz.data(), grads.data(), nullptr);
    const struct {
      const char* torch_name;
      int64_t offset, size;
    } blocks[] = {{"0.weight", r.layout.w1, r.H * r.D}, {"1.weight", r.layout.gamma, r.H},
                  {"1.bias", r.layout.beta, r.H},      {"4.weight", r.layout.w2, r.H * r.H},
                  {"4.bias", r.layout.b2, r.H}};
    for (const auto& b : blocks) {
      EXPECT_LT(rel_error(r.block(grads, b.offset, b.size), vec(r.f, name + ".grad." + b.torch_name)), 1e-5)
          << name << " " << b.torch_name;
    }
    // model.0.bias: BatchNorm cancels it, so both gradients are rounding noise around 0.
    EXPECT_LT(testing::max_abs_diff(r.block(grads, r.layout.b1, r.H), vec(r.f, name + ".grad.0.bias")), 1e-6);

    bn_update_running<float>(cache, 0.1f, r.running_mean.data(), r.running_var.data());
    EXPECT_LT(rel_error(r.running_mean, vec(r.f, name + ".running_mean")), 1e-6) << name;
    EXPECT_LT(rel_error(r.running_var, vec(r.f, name + ".running_var")), 1e-6) << name;
  }
}

double bits_to_double(int64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

TEST(ProjectorReference, OneCycleScheduleAndAdamW) {
  const SafetensorsFile f = reference();
  const struct {
    const char* tag;
    double pct_start;
  } cases[] = {{"onecycle_tinyemo", 0.005}, {"onecycle_warmup", 0.3}};
  for (const auto& c : cases) {
    const std::string tag = c.tag;
    const Tensor lr_bits = f.get(tag + ".lr_f64_bits"), beta_bits = f.get(tag + ".beta1_f64_bits");
    const int64_t total = lr_bits.numel();
    OneCycleConfig sc;
    sc.pct_start = c.pct_start;
    const OneCycleSchedule schedule(sc, total);
    for (int64_t s = 0; s < total; ++s) {
      const double lr = bits_to_double(lr_bits.data<int64_t>()[s]);
      const double beta = bits_to_double(beta_bits.data<int64_t>()[s]);
      EXPECT_NEAR(schedule.lr(s), lr, 1e-12 * lr) << tag << " step " << s;
      EXPECT_NEAR(schedule.beta1(s), beta, 1e-12) << tag << " step " << s;
    }
    std::vector<float> p = vec(f, tag + ".init");
    const Tensor grads = f.get(tag + ".grads"), params = f.get(tag + ".params");
    const int64_t n = static_cast<int64_t>(p.size());
    AdamW adam(n, AdamWConfig{});
    for (int64_t s = 0; s < grads.dim(0); ++s) {
      adam.begin_step(schedule.lr(s), schedule.beta1(s));
      adam.update(p.data(), grads.data<float>() + s * n, 0, n);
      const std::vector<float> want(params.data<float>() + s * n, params.data<float>() + (s + 1) * n);
      EXPECT_LT(rel_error(p, want), 1e-6) << tag << " after step " << s;
    }
  }
}

}  // namespace
}  // namespace tinyemo::projector
