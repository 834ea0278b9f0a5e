// Precomputed image features with labels, as the projector (and the bias
// analysis) consume them. Two on-disk forms:
//  - TinyEmo's folder layout `<label>/<name>.pt`, one torch.save'd [D] tensor
//    per file (fp16 in TinyEmo's data), label = folder name;
//  - a feature shard: one safetensors file with `features` [N, D] (F16/F32),
//    `label_ids` I64 [N] (-1 = unknown) and metadata `labels` (JSON array of
//    names), `files` (JSON array of `<label>/<stem>`), `source` (free text).
// Order is deterministic: label folders sorted by name (byte order, hidden
// entries skipped), files sorted by name within each folder, as TinyEmo's
// dataloader (sorted(os.listdir), sorted(glob)) lists them. Folders are
// walked by io/walk.h (symbolic links followed; what is passed over is listed
// in FeatureSet::skipped).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tinyemo::projector {

struct FeatureSet {
  Tensor features;                 // F32 [N, D]
  std::vector<int64_t> label_ids;  // [N], index into `labels`, -1 when unknown
  std::vector<std::string> labels; // label names
  std::vector<std::string> files;  // [N] `<label>/<stem>` (what a split records)
  std::string source;              // where it came from (path)
  // Entries of a feature folder passed over, each "path: why" (io/walk.h's
  // rules: dangling links, loops, FIFOs named *.pt, nested folders); callers report them.
  std::vector<std::string> skipped;

  int64_t size() const { return static_cast<int64_t>(label_ids.size()); }
  int64_t dim() const { return features.defined() && features.ndim() == 2 ? features.dim(1) : 0; }
  // The rows `indices`, in that order (labels kept).
  FeatureSet subset(const std::vector<int64_t>& indices) const;
};

// `path` is a folder (TinyEmo layout) or a safetensors feature shard.
// expected_dim > 0 checks every feature's size. Errors name the file: empty
// label folders, wrong dimensions, unreadable or malformed files.
FeatureSet load_features(const std::filesystem::path& path, int64_t expected_dim = 0);
FeatureSet load_feature_folder(const std::filesystem::path& dir, int64_t expected_dim = 0);
FeatureSet load_feature_shard(const std::filesystem::path& file, int64_t expected_dim = 0);
// One feature file (`.pt` holding a [D] or [1, D] tensor, any float dtype) as F32 [D].
std::vector<float> load_feature_file(const std::filesystem::path& file, int64_t expected_dim = 0);

// Writes a feature shard (F32 features).
void save_feature_shard(const std::filesystem::path& file, const FeatureSet& set);

// Re-expresses label_ids against `labels` (by name); labels the set has that
// `labels` lacks are an error naming them (the model cannot score them).
void remap_labels(FeatureSet& set, const std::vector<std::string>& labels);

}  // namespace tinyemo::projector
