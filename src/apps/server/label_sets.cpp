#include "label_sets.h"

#include <algorithm>

#include "http_error.h"

namespace tinyemo::server {

namespace {
// Bounds on what requests can make the server remember.
constexpr size_t kRecentSets = 64;
constexpr size_t kLmRows = 4096;

std::string key_of(const std::vector<std::string>& labels) {
  std::string key;
  for (const auto& l : labels) {
    key += std::to_string(l.size());
    key += ':';
    key += l;
  }
  return key;
}
}  // namespace

LabelSets::LabelSets(std::vector<std::string> labels, std::vector<float> anchors, size_t dim, const te_lm* anchors_lm,
                     std::string grounding)
    : dim_(dim), anchors_lm_(anchors_lm), grounding_(std::move(grounding)) {
  for (size_t i = 0; i < labels.size(); ++i) model_index_.emplace(labels[i], i);
  auto set = std::make_shared<LabelSet>();
  set->labels = std::move(labels);
  set->anchors = std::move(anchors);
  model_set_ = std::move(set);
}

std::shared_ptr<const LabelSet> LabelSets::resolve(const std::vector<std::string>& labels) {
  if (labels == model_set_->labels) return model_set_;
  const std::string key = key_of(labels);
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = recent_.begin(); it != recent_.end(); ++it) {
    if (it->first == key) {
      recent_.splice(recent_.begin(), recent_, it);
      return recent_.front().second;
    }
  }
  const bool all_known = std::all_of(labels.begin(), labels.end(), [&](const auto& l) { return model_index_.count(l) > 0; });
  auto set = std::make_shared<LabelSet>();
  set->labels = labels;
  set->anchors.reserve(labels.size() * dim_);
  if (all_known) {
    for (const auto& l : labels) {
      const float* row = model_set_->anchors.data() + model_index_.at(l) * dim_;
      set->anchors.insert(set->anchors.end(), row, row + dim_);
    }
  } else {
    // A new label: every label of the set is anchored by the LM (as `tinyemo
    // reason --labels` does), so that all anchors come from one space.
    if (anchors_lm_ == nullptr) {
      std::string known, unknown;
      for (const auto& l : model_set_->labels) known += (known.empty() ? "" : ", ") + l;
      for (const auto& l : labels) {
        if (model_index_.count(l) == 0 && unknown.empty()) unknown = l;
      }
      throw HttpError(400, "unknown_label",
                      "label \"" + unknown + "\" is not one of the projector's (" + known +
                          "); new labels need a server started with --anchors-lm");
    }
    if (lm_rows_.size() + labels.size() > kLmRows) lm_rows_.clear();  // bounded; recomputed on demand
    std::vector<const char*> missing;
    for (const auto& l : labels) {
      if (lm_rows_.count(l) == 0) missing.push_back(l.c_str());
    }
    if (!missing.empty()) {
      std::vector<float> rows(missing.size() * dim_);
      const te_status s = te_lm_label_anchors(anchors_lm_, missing.data(), missing.size(), grounding_.c_str(),
                                              rows.data(), rows.size());
      if (s != TE_OK) throw HttpError(400, "unknown_label", std::string("cannot anchor the labels: ") + te_last_error());
      for (size_t i = 0; i < missing.size(); ++i) {
        lm_rows_[missing[i]].assign(rows.begin() + i * dim_, rows.begin() + (i + 1) * dim_);
      }
    }
    for (const auto& l : labels) {
      const std::vector<float>& row = lm_rows_.at(l);
      set->anchors.insert(set->anchors.end(), row.begin(), row.end());
    }
  }
  recent_.emplace_front(key, set);
  if (recent_.size() > kRecentSets) recent_.pop_back();
  return set;
}

}  // namespace tinyemo::server
