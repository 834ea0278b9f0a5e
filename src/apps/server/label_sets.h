// The label sets a classify request may choose among: the projector's own,
// any subset of it, or new labels (open vocabulary) anchored in an LM's input
// embeddings (te_lm_label_anchors) when the server has one for that. Resolved
// sets are cached, so that a repeated set is one pointer the CLIP worker can
// compare with the anchors it holds.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tinyemo.h"

namespace tinyemo::server {

struct LabelSet {
  std::vector<std::string> labels;
  std::vector<float> anchors;  // labels.size() rows of the projector's output width
};

class LabelSets {
 public:
  // `labels`/`anchors`: the projector's own set. `anchors_lm` (may be null)
  // anchors labels the projector does not know; its hidden size must be `dim`.
  LabelSets(std::vector<std::string> labels, std::vector<float> anchors, size_t dim, const te_lm* anchors_lm,
            std::string grounding);

  std::shared_ptr<const LabelSet> model_set() const { return model_set_; }
  bool open_vocabulary() const { return anchors_lm_ != nullptr; }
  // The set for these labels (in this order); HttpError 400 "unknown_label"
  // naming the label when it is new and there is no LM to anchor it.
  std::shared_ptr<const LabelSet> resolve(const std::vector<std::string>& labels);

 private:
  std::shared_ptr<const LabelSet> model_set_;
  std::map<std::string, size_t> model_index_;  // label -> its row in model_set_
  size_t dim_;
  const te_lm* anchors_lm_;
  std::string grounding_;

  std::mutex mutex_;  // guards the caches and the LM (one thread at a time)
  std::map<std::string, std::vector<float>> lm_rows_;  // LM anchors computed so far (bounded)
  std::list<std::pair<std::string, std::shared_ptr<const LabelSet>>> recent_;  // resolved sets, newest first
};

}  // namespace tinyemo::server
