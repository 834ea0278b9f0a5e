#include "models/projector/classify.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/finite.h"
#include "core/ops.h"
#include "models/projector/metadata.h"

namespace tinyemo::projector {

std::vector<int64_t> Scores::top_k(int64_t i, int64_t k) const {
  std::vector<int64_t> order(static_cast<size_t>(labels));
  std::iota(order.begin(), order.end(), 0);
  const float* d = distances.data() + i * labels;
  std::stable_sort(order.begin(), order.end(), [d](int64_t a, int64_t b) { return d[a] < d[b]; });
  order.resize(static_cast<size_t>(std::clamp<int64_t>(k, 0, labels)));
  return order;
}

Scores classify(const ProjectorModel& model, const float* x, int64_t n) {
  const int64_t H = model.hidden_dim(), L = static_cast<int64_t>(model.labels().size());
  Scores s;
  s.n = n;
  s.labels = L;
  s.projected.resize(static_cast<size_t>(n * H));
  model.project(x, n, s.projected.data());
  // Finite weights (checked on load) and features can still overflow float
  // together; a NaN distance would compare false and pick the first label.
  const int64_t bad = first_non_finite(s.projected.data(), n * H);
  TE_CHECK(bad < 0, "the projector's output for input {} is not finite (its weights overflow float on this input)",
           bad / std::max<int64_t>(H, 1));
  std::vector<float> u(static_cast<size_t>(n * H)), a(static_cast<size_t>(L * H));
  normalize_rows<float>(s.projected.data(), n, H, u.data());
  normalize_rows<float>(model.anchors().data(), L, H, a.data());
  s.distances.resize(static_cast<size_t>(n * L));
  s.cosines.resize(static_cast<size_t>(n * L));
  s.predicted.resize(static_cast<size_t>(n));
  const float inv_t = static_cast<float>(1.0 / model.config().temperature);
  for (int64_t i = 0; i < n; ++i) {
    const float* ui = u.data() + i * H;
    int64_t best = 0;
    for (int64_t l = 0; l < L; ++l) {
      const float* al = a.data() + l * H;
      double dd = 0.0;  // direct |u - a|^2: no cancellation for near neighbours
      for (int64_t h = 0; h < H; ++h) {
        const double diff = static_cast<double>(ui[h]) - al[h];
        dd += diff * diff;
      }
      s.distances[i * L + l] = static_cast<float>(std::sqrt(dd));
      s.cosines[i * L + l] = dot(ui, al, H);
      if (s.distances[i * L + l] < s.distances[i * L + best]) best = l;
    }
    s.predicted[i] = best;
  }
  s.probabilities.resize(static_cast<size_t>(n * L));
  for (size_t k = 0; k < s.cosines.size(); ++k) s.probabilities[k] = s.cosines[k] * inv_t;
  softmax_rows(s.probabilities.data(), n, L);
  return s;
}

void restrict_labels(ProjectorModel& model, const std::vector<std::string>& names) {
  TE_CHECK(!names.empty(), "no labels selected");
  check_unique_names(names, "the selected labels");
  const int64_t H = model.hidden_dim();
  const auto& labels = model.labels();
  std::vector<float> rows;
  for (const auto& name : names) {
    const auto it = std::find(labels.begin(), labels.end(), name);
    TE_CHECK(it != labels.end(), "label \"{}\" is not one of the model's labels", name);
    const float* r = model.anchors().data() + (it - labels.begin()) * H;
    rows.insert(rows.end(), r, r + H);
  }
  model.set_anchors(names, std::move(rows));
}

Evaluation evaluate(const std::vector<int64_t>& truth, const std::vector<int64_t>& predicted,
                    const std::vector<std::string>& labels) {
  TE_CHECK(truth.size() == predicted.size(), "{} true labels for {} predictions", truth.size(), predicted.size());
  const size_t L = labels.size();
  Evaluation e;
  e.labels = labels;
  e.n = static_cast<int64_t>(truth.size());
  e.confusion.assign(L, std::vector<int64_t>(L, 0));
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    TE_CHECK(truth[i] >= 0 && truth[i] < static_cast<int64_t>(L) && predicted[i] >= 0 &&
                 predicted[i] < static_cast<int64_t>(L),
             "label index out of range in evaluation");
    ++e.confusion[truth[i]][predicted[i]];
    correct += truth[i] == predicted[i];
  }
  e.accuracy = e.n ? static_cast<double>(correct) / static_cast<double>(e.n) : 0.0;
  e.precision.resize(L);
  e.recall.resize(L);
  e.f1.resize(L);
  e.support.resize(L);
  double f1_sum = 0.0;
  int64_t present = 0;
  for (size_t l = 0; l < L; ++l) {
    int64_t predicted_l = 0;
    for (size_t t = 0; t < L; ++t) predicted_l += e.confusion[t][l];
    const int64_t tp = e.confusion[l][l];
    e.support[l] = std::accumulate(e.confusion[l].begin(), e.confusion[l].end(), int64_t{0});
    e.precision[l] = predicted_l ? static_cast<double>(tp) / predicted_l : 0.0;
    e.recall[l] = e.support[l] ? static_cast<double>(tp) / e.support[l] : 0.0;
    const double pr = e.precision[l] + e.recall[l];
    e.f1[l] = pr > 0.0 ? 2.0 * e.precision[l] * e.recall[l] / pr : 0.0;
    if (e.support[l] > 0 || predicted_l > 0) {
      f1_sum += e.f1[l];
      ++present;
    }
  }
  e.macro_f1 = present ? f1_sum / static_cast<double>(present) : 0.0;
  return e;
}

nlohmann::json evaluation_json(const Evaluation& e) {
  nlohmann::json per_class = nlohmann::json::object();
  for (size_t l = 0; l < e.labels.size(); ++l) {
    per_class[e.labels[l]] = {
        {"precision", e.precision[l]}, {"recall", e.recall[l]}, {"f1", e.f1[l]}, {"n", e.support[l]}};
  }
  return {{"accuracy", e.accuracy}, {"n", e.n},          {"labels", e.labels},
          {"confusion", e.confusion}, {"per_class", per_class}, {"macro_f1", e.macro_f1}};
}

}  // namespace tinyemo::projector
