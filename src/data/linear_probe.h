// The linear-probe baseline of the evaluation: multinomial logistic
// regression (softmax over labels, bias, L2 penalty on the weights) on the
// same image features as the projector, inputs L2-normalised as the `best`
// projector recipe normalises them (x / |x| * sqrt(D)). The penalty is
// chosen by stratified k-fold cross-validation on the training set only; the
// fit is L-BFGS to a gradient-norm tolerance, so the result does not depend
// on a seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/projector/dataset.h"

namespace tinyemo::data {

struct LinearProbeOptions {
  std::vector<double> l2_grid = {1e-4, 1e-3, 1e-2, 1e-1, 1.0};  // penalty (lambda / 2) |W|^2 candidates
  int folds = 3;                // cross-validation folds for choosing the penalty (1 candidate: none)
  uint64_t fold_seed = 0;       // which samples fall in which fold
  int max_iterations = 500;
  double gradient_tolerance = 1e-5;  // stop when |grad|_inf falls below this (f32 products: not much lower)
};

struct LinearProbe {
  std::vector<std::string> labels;
  int64_t dim = 0;
  double l2 = 0.0;                   // the chosen penalty
  std::vector<double> cv_accuracy;   // per l2_grid entry (empty when not cross-validated)
  std::vector<double> weights;       // [labels, dim + 1]: the last column is the bias

  // Predicted label index per row of x [n, dim], among `allowed` label indices (all when empty).
  std::vector<int64_t> predict(const float* x, int64_t n, const std::vector<int64_t>& allowed = {}) const;
};

LinearProbe train_linear_probe(const projector::FeatureSet& train, const LinearProbeOptions& options = {});

}  // namespace tinyemo::data
