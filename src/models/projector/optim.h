// TinyEmo's optimiser: torch.optim.AdamW (PyTorch defaults: betas (0.9,
// 0.999), eps 1e-8, weight decay 0.01) driven by torch.optim.lr_scheduler.
// OneCycleLR (max_lr 5e-4, pct_start 0.005, cosine annealing, div_factor 25,
// final_div_factor 1e4, two phases, cycling beta1 between 0.85 and 0.95),
// reproduced step for step (PyTorch 1.13 semantics).
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"

namespace tinyemo::projector {

struct OneCycleConfig {
  double max_lr = 5e-4;
  double pct_start = 0.005;
  double div_factor = 25.0;
  double final_div_factor = 1e4;
  double base_momentum = 0.85;
  double max_momentum = 0.95;
  bool cycle_momentum = true;
};

class OneCycleSchedule {
 public:
  OneCycleSchedule(const OneCycleConfig& config, int64_t total_steps);
  // Learning rate and Adam beta1 for optimiser step `step` (0-based).
  double lr(int64_t step) const { return at(step, true); }
  double beta1(int64_t step) const { return at(step, false); }
  int64_t total_steps() const { return total_steps_; }

 private:
  double at(int64_t step, bool lr) const;
  OneCycleConfig config_;
  int64_t total_steps_;
};

struct AdamWConfig {
  double beta1 = 0.9;  // replaced every step when the schedule cycles momentum
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// AdamW over one flat parameter buffer. begin_step() fixes the step's
// scalars; update() applies them to any sub-range, so callers can update a
// slice as soon as its gradient is ready (and from several threads, for
// disjoint ranges).
class AdamW {
 public:
  AdamW(int64_t size, const AdamWConfig& config);
  void begin_step(double lr, double beta1);
  // params[offset, offset + count) with their gradient grad[0, count).
  void update(float* params, const float* grad, int64_t offset, int64_t count);
  int64_t steps() const { return step_; }
  const LargeVector<float>& exp_avg() const { return m_; }
  const LargeVector<float>& exp_avg_sq() const { return v_; }

 private:
  AdamWConfig config_;
  LargeVector<float> m_, v_;
  int64_t step_ = 0;
  // The step's scalars, rounded to float as PyTorch applies them to float tensors.
  float decay_ = 1, b1_ = 0, a1_ = 0, b2_ = 0, a2_ = 0, bc2_sqrt_ = 1, step_size_ = 0, eps_ = 0;
};

}  // namespace tinyemo::projector
