#include "data/linear_probe.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/matmul.h"
#include "models/projector/model.h"
#include "core/rng.h"

namespace tinyemo::data {

namespace {

struct Problem {
  const float* x = nullptr;  // [n, d] normalised inputs
  const int64_t* y = nullptr;
  int64_t n = 0, d = 0, c = 0;
  double l2 = 0.0;
};

// Mean cross-entropy + (l2 / 2) |W|^2 and its gradient, w = [c, d + 1] (the
// last column is the bias). The two products (logits, weight gradient) run as
// f32 matrix products; softmax, loss and the optimiser's vectors are double.
double objective(const Problem& p, const std::vector<double>& w, std::vector<double>& grad) {
  const int64_t stride = p.d + 1;
  std::vector<float> wf(static_cast<size_t>(p.c * p.d)), logits(static_cast<size_t>(p.n * p.c));
  for (int64_t k = 0; k < p.c; ++k) {
    for (int64_t j = 0; j < p.d; ++j) wf[k * p.d + j] = static_cast<float>(w[k * stride + j]);
  }
  gemm(false, true, p.n, p.c, p.d, 1.0f, p.x, p.d, wf.data(), p.d, 0.0f, logits.data(), p.c);
  const double inv_n = 1.0 / static_cast<double>(p.n);
  std::vector<float> residual(logits.size());  // (softmax - one-hot) / n
  std::vector<double> z(static_cast<size_t>(p.c));
  std::fill(grad.begin(), grad.end(), 0.0);
  double loss = 0.0;
  for (int64_t i = 0; i < p.n; ++i) {
    double max_logit = -INFINITY;
    for (int64_t k = 0; k < p.c; ++k) {
      z[k] = static_cast<double>(logits[i * p.c + k]) + w[k * stride + p.d];
      max_logit = std::max(max_logit, z[k]);
    }
    double sum = 0.0;
    for (double v : z) sum += std::exp(v - max_logit);
    const double log_sum = max_logit + std::log(sum);
    loss += log_sum - z[p.y[i]];
    for (int64_t k = 0; k < p.c; ++k) {
      const double r = (std::exp(z[k] - log_sum) - (k == p.y[i] ? 1.0 : 0.0)) * inv_n;
      residual[i * p.c + k] = static_cast<float>(r);
      grad[k * stride + p.d] += r;
    }
  }
  std::vector<float> gw(static_cast<size_t>(p.c * p.d));
  gemm(true, false, p.c, p.d, p.n, 1.0f, residual.data(), p.c, p.x, p.d, 0.0f, gw.data(), p.d);
  loss *= inv_n;
  for (int64_t k = 0; k < p.c; ++k) {
    for (int64_t j = 0; j < p.d; ++j) {
      const double v = w[k * stride + j];
      loss += 0.5 * p.l2 * v * v;
      grad[k * stride + j] = static_cast<double>(gw[k * p.d + j]) + p.l2 * v;
    }
  }
  return loss;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// L-BFGS (memory 10) with a backtracking Armijo line search, from zero weights.
std::vector<double> fit(const Problem& p, const LinearProbeOptions& o) {
  const size_t size = static_cast<size_t>(p.c * (p.d + 1));
  std::vector<double> w(size, 0.0), g(size), w_new(size), g_new(size), dir(size);
  double f = objective(p, w, g);
  std::deque<std::vector<double>> s_hist, y_hist;
  std::deque<double> rho_hist;
  for (int it = 0; it < o.max_iterations; ++it) {
    double g_max = 0.0;
    for (double v : g) g_max = std::max(g_max, std::fabs(v));
    if (g_max < o.gradient_tolerance) break;
    // Two-loop recursion: dir = -H g.
    dir = g;
    std::vector<double> alpha(s_hist.size());
    for (size_t k = s_hist.size(); k-- > 0;) {
      alpha[k] = rho_hist[k] * dot(s_hist[k], dir);
      for (size_t i = 0; i < size; ++i) dir[i] -= alpha[k] * y_hist[k][i];
    }
    if (!s_hist.empty()) {
      const double gamma = dot(s_hist.back(), y_hist.back()) / dot(y_hist.back(), y_hist.back());
      for (double& v : dir) v *= gamma;
    }
    for (size_t k = 0; k < s_hist.size(); ++k) {
      const double beta = rho_hist[k] * dot(y_hist[k], dir);
      for (size_t i = 0; i < size; ++i) dir[i] += (alpha[k] - beta) * s_hist[k][i];
    }
    for (double& v : dir) v = -v;
    double slope = dot(g, dir);
    if (slope >= 0.0) {  // not a descent direction: restart from steepest descent
      s_hist.clear(), y_hist.clear(), rho_hist.clear();
      for (size_t i = 0; i < size; ++i) dir[i] = -g[i];
      slope = dot(g, dir);
    }
    double step = 1.0, f_new = f;
    bool accepted = false;
    for (int ls = 0; ls < 40; ++ls) {
      for (size_t i = 0; i < size; ++i) w_new[i] = w[i] + step * dir[i];
      f_new = objective(p, w_new, g_new);
      if (f_new <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;  // no decrease possible at double precision: converged
    std::vector<double> s(size), y(size);
    for (size_t i = 0; i < size; ++i) s[i] = w_new[i] - w[i], y[i] = g_new[i] - g[i];
    const double sy = dot(s, y);
    if (sy > 1e-12) {
      s_hist.push_back(std::move(s));
      y_hist.push_back(std::move(y));
      rho_hist.push_back(1.0 / sy);
      if (s_hist.size() > 10) s_hist.pop_front(), y_hist.pop_front(), rho_hist.pop_front();
    }
    w.swap(w_new);
    g.swap(g_new);
    f = f_new;
  }
  return w;
}

std::vector<int64_t> argmax_rows(const float* x, int64_t n, int64_t d, const std::vector<double>& w, int64_t c,
                                 const std::vector<int64_t>& allowed) {
  std::vector<int64_t> candidates = allowed;
  if (candidates.empty()) {
    candidates.resize(static_cast<size_t>(c));
    std::iota(candidates.begin(), candidates.end(), 0);
  }
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double best = -INFINITY;
    for (int64_t k : candidates) {
      const double* wk = w.data() + k * (d + 1);
      double z = wk[d];
      for (int64_t j = 0; j < d; ++j) z += wk[j] * x[i * d + j];
      if (z > best) best = z, out[i] = k;
    }
  }
  return out;
}

}  // namespace

std::vector<int64_t> LinearProbe::predict(const float* x, int64_t n, const std::vector<int64_t>& allowed) const {
  std::vector<float> normalized(static_cast<size_t>(n * dim));
  projector::normalize_inputs(projector::InputNorm::L2, x, n, dim, normalized.data());
  for (int64_t k : allowed) TE_CHECK(k >= 0 && k < static_cast<int64_t>(labels.size()), "linear probe: label {} out of range", k);
  return argmax_rows(normalized.data(), n, dim, weights, static_cast<int64_t>(labels.size()), allowed);
}

LinearProbe train_linear_probe(const projector::FeatureSet& train, const LinearProbeOptions& o) {
  const int64_t n = train.size(), d = train.dim();
  TE_CHECK(n >= 2 && d > 0, "{}: the linear probe needs at least 2 training features", train.source);
  TE_CHECK(!o.l2_grid.empty(), "linear probe: no L2 penalty to try");
  for (double l2 : o.l2_grid) TE_CHECK(l2 >= 0.0 && std::isfinite(l2), "linear probe: L2 penalty {} is not >= 0", l2);
  LinearProbe probe;
  probe.labels = train.labels;
  probe.dim = d;
  const auto c = static_cast<int64_t>(train.labels.size());
  std::vector<float> x(static_cast<size_t>(n * d));
  projector::normalize_inputs(projector::InputNorm::L2, train.features.data<float>(), n, d, x.data());
  for (int64_t i = 0; i < n; ++i) {
    TE_CHECK(train.label_ids[i] >= 0 && train.label_ids[i] < c, "{}: {} has no label", train.source, train.files[i]);
  }

  probe.l2 = o.l2_grid.front();
  if (o.l2_grid.size() > 1) {
    TE_CHECK(o.folds >= 2, "linear probe: {} folds cannot cross-validate", o.folds);
    // Stratified folds: each label's samples shuffled, dealt round-robin.
    std::vector<int> fold(static_cast<size_t>(n));
    std::map<int64_t, std::vector<int64_t>> by_label;
    for (int64_t i = 0; i < n; ++i) by_label[train.label_ids[i]].push_back(i);
    Rng rng(o.fold_seed ^ 0xf01d5eedull);
    for (auto& [label, idx] : by_label) {
      rng.shuffle(idx);
      for (size_t k = 0; k < idx.size(); ++k) fold[idx[k]] = static_cast<int>(k % static_cast<size_t>(o.folds));
    }
    double best = -1.0;
    for (double l2 : o.l2_grid) {
      int64_t correct = 0;
      for (int f = 0; f < o.folds; ++f) {
        std::vector<float> fx;
        std::vector<int64_t> fy, held;
        for (int64_t i = 0; i < n; ++i) {
          if (fold[i] == f) {
            held.push_back(i);
          } else {
            fx.insert(fx.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
            fy.push_back(train.label_ids[i]);
          }
        }
        const Problem p{fx.data(), fy.data(), static_cast<int64_t>(fy.size()), d, c, l2};
        const std::vector<double> w = fit(p, o);
        std::vector<float> hx;
        for (int64_t i : held) hx.insert(hx.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
        const auto pred = argmax_rows(hx.data(), static_cast<int64_t>(held.size()), d, w, c, {});
        for (size_t k = 0; k < held.size(); ++k) correct += pred[k] == train.label_ids[held[k]];
      }
      const double acc = static_cast<double>(correct) / static_cast<double>(n);
      probe.cv_accuracy.push_back(acc);
      if (acc > best) best = acc, probe.l2 = l2;  // the first (smallest penalty listed first) on ties
    }
  }
  const Problem p{x.data(), train.label_ids.data(), n, d, c, probe.l2};
  probe.weights = fit(p, o);
  return probe;
}

}  // namespace tinyemo::data
