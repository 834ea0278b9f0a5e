// Classification with a Metric Projector (TinyEmo's compute_top_accuracy):
// project, L2-normalise, and take the nearest label anchor by L2 distance
// between normalised vectors (= the highest cosine). Scores: the distance,
// the cosine and softmax(cosine / temperature) probabilities for every label.
// Any set of labels works at inference (open taxonomy): swap the anchors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/projector/model.h"

namespace tinyemo::projector {

struct Scores {
  int64_t n = 0, labels = 0;
  std::vector<float> projected;      // [n, H] eval-mode output before normalisation
  std::vector<float> distances;      // [n, L] |u - a| with u, a normalised
  std::vector<float> cosines;        // [n, L]
  std::vector<float> probabilities;  // [n, L]
  std::vector<int64_t> predicted;    // [n] nearest anchor (first on ties)

  // The k best labels of sample i, best first.
  std::vector<int64_t> top_k(int64_t i, int64_t k) const;
};

Scores classify(const ProjectorModel& model, const float* x, int64_t n);

// Keeps only the named labels (in the order given); errors name unknown ones.
void restrict_labels(ProjectorModel& model, const std::vector<std::string>& names);

// Top-1 metrics of predictions against true labels (both indices into `labels`).
struct Evaluation {
  std::vector<std::string> labels;
  int64_t n = 0;
  double accuracy = 0.0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  std::vector<double> precision, recall, f1;
  std::vector<int64_t> support;                 // true samples per label
  // Mean F1 over the labels that occur in the truth or the predictions
  // (scikit-learn's f1_score(average="macro") convention).
  double macro_f1 = 0.0;
};
Evaluation evaluate(const std::vector<int64_t>& truth, const std::vector<int64_t>& predicted,
                    const std::vector<std::string>& labels);
// {accuracy, n, labels, confusion (rows = true), per_class {label: {precision,
// recall, f1, n}}, macro_f1}
nlohmann::json evaluation_json(const Evaluation& e);

}  // namespace tinyemo::projector
