// Image folders to CLIP image embeddings on disk, the pipeline behind
// `tinyemo features` and te_features_extract: TinyEmo's layout
// (<label>/<stem>.pt, fp16 [D]) or one safetensors feature shard. Resumable
// (finished outputs are skipped), every write atomic; unreadable images are
// reported by name and counted, and the job goes on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "io/image.h"
#include "models/clip/vision_model.h"

namespace tinyemo::pipeline {

enum class FeaturesFormat {
  Auto,    // a shard when the output ends in .safetensors, else a folder
  Folder,  // <out>/<label>/<stem>.pt, each a torch.save'd fp16 [D] tensor
  Shard,   // one safetensors file: features F16 [N, D], label_ids I64 [N], metadata labels / files / source
};
// "tinyemo-pt" / "folder", "safetensors" / "shard", "auto"; errors name `option`.
FeaturesFormat parse_features_format(const std::string& name, const std::string& option);

struct FeaturesOptions {
  std::filesystem::path images;  // <label>/<image> files at any depth
  std::filesystem::path out;     // a folder, or the shard file (a folder gets features.safetensors inside)
  FeaturesFormat format = FeaturesFormat::Auto;
  int64_t batch = 8;
  ImageLimits limits;
};

struct FeaturesProgress {
  int64_t total = 0;     // images to embed in this run (found, less those already done)
  int64_t existing = 0;  // already in the output
  int64_t written = 0;
  int64_t failed = 0;    // unreadable, or two images with one output name
  int64_t ignored = 0;   // files without an image extension
  int64_t skipped = 0;   // entries the folder walk passed over (io/walk.h: FIFOs, dangling links, loops)
};

// Called once before the first image (error empty), once for every entry the
// folder walk passed over (`skipped` counts up, error says "path: why"), then
// after every image (error set when it failed). Return false to stop: what is written is kept.
using FeaturesCallback = std::function<bool(const FeaturesProgress& progress, const std::string& error)>;

// Returns the final counts.
FeaturesProgress extract_features(const clip::VisionModel& model, const FeaturesOptions& options,
                                  const FeaturesCallback& on_progress);

}  // namespace tinyemo::pipeline
