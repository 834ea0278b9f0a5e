#include "models/projector/optim.h"

#include <cmath>

#include "core/error.h"
#include "core/fast_math.h"

namespace tinyemo::projector {

OneCycleSchedule::OneCycleSchedule(const OneCycleConfig& config, int64_t total_steps)
    : config_(config), total_steps_(total_steps) {
  TE_CHECK(total_steps > 0, "one-cycle schedule: total steps must be positive, got {}", total_steps);
  TE_CHECK(config.pct_start >= 0.0 && config.pct_start <= 1.0, "one-cycle schedule: pct_start {} not in [0, 1]",
           config.pct_start);
  TE_CHECK(config.max_lr > 0.0 && config.div_factor > 0.0 && config.final_div_factor > 0.0,
           "one-cycle schedule: max_lr, div_factor and final_div_factor must be positive");
}

double OneCycleSchedule::at(int64_t step, bool want_lr) const {
  TE_CHECK(step >= 0 && step <= total_steps_, "one-cycle schedule: step {} beyond the {} scheduled", step,
           total_steps_);
  const double initial_lr = config_.max_lr / config_.div_factor;
  const double min_lr = initial_lr / config_.final_div_factor;
  struct Phase {
    double end_step, start_lr, end_lr, start_momentum, end_momentum;
  };
  const Phase phases[2] = {
      {config_.pct_start * static_cast<double>(total_steps_) - 1.0, initial_lr, config_.max_lr, config_.max_momentum,
       config_.base_momentum},
      {static_cast<double>(total_steps_ - 1), config_.max_lr, min_lr, config_.base_momentum, config_.max_momentum},
  };
  // Cosine annealing from start to end as pct goes 0 -> 1.
  auto anneal = [](double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(M_PI * pct) + 1.0);
  };
  double start_step = 0.0;
  const double s = static_cast<double>(step);
  for (int i = 0; i < 2; ++i) {
    const Phase& ph = phases[i];
    if (s <= ph.end_step || i == 1) {
      // PyTorch divides by zero when a phase is empty; such a phase has reached its end.
      const double span = ph.end_step - start_step;
      const double pct = span == 0.0 ? 1.0 : (s - start_step) / span;
      if (want_lr) return anneal(ph.start_lr, ph.end_lr, pct);
      return config_.cycle_momentum ? anneal(ph.start_momentum, ph.end_momentum, pct) : 0.0;
    }
    start_step = ph.end_step;
  }
  return 0.0;
}

AdamW::AdamW(int64_t size, const AdamWConfig& config)
    : config_(config), m_(static_cast<size_t>(size), 0.0f), v_(static_cast<size_t>(size), 0.0f) {}

void AdamW::begin_step(double lr, double beta1) {
  ++step_;
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  decay_ = static_cast<float>(1.0 - lr * config_.weight_decay);
  b1_ = static_cast<float>(beta1);
  a1_ = static_cast<float>(1.0 - beta1);
  b2_ = static_cast<float>(config_.beta2);
  a2_ = static_cast<float>(1.0 - config_.beta2);
  bc2_sqrt_ = static_cast<float>(std::sqrt(bc2));
  step_size_ = static_cast<float>(-lr / bc1);
  eps_ = static_cast<float>(config_.eps);
}

void AdamW::update(float* params, const float* grad, int64_t offset, int64_t count) {
  float* __restrict p = params + offset;
  float* __restrict m = m_.data() + offset;
  float* __restrict v = v_.data() + offset;
  const float* __restrict grads = grad;
  const float decay = decay_, b1 = b1_, a1 = a1_, b2 = b2_, a2 = a2_, bc2s = bc2_sqrt_, step = step_size_,
              eps = eps_;
  for (int64_t i = 0; i < count; ++i) {
    const float g = grads[i];
    m[i] = m[i] * b1 + g * a1;
    v[i] = v[i] * b2 + g * g * a2;
    const float denom = fast::sqrt(v[i]) / bc2s + eps;  // (std::sqrt would keep this loop scalar)
    p[i] = p[i] * decay + step * (m[i] / denom);
  }
}

}  // namespace tinyemo::projector
