// Image folders to CLIP image embeddings on disk, the pipeline behind
// `tinyemo features` and te_features_extract: TinyEmo's layout
// (<label>/<stem>.pt, fp16 [D]) or one safetensors feature shard; or one of
// the eight emotion datasets as it ships (data/datasets.h), one shard per
// split with labels mapped through its taxonomy. Resumable
// (finished outputs are skipped), every write atomic; unreadable images are
// reported by name and counted, and the job goes on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "io/image.h"
#include "models/clip/vision_model.h"

namespace tinyemo::pipeline {

enum class FeaturesFormat {
  Auto,    // a shard when the output ends in .safetensors, else a folder
  Folder,  // <out>/<label>/<stem>.pt, each a torch.save'd fp16 [D] tensor
  Shard,   // one safetensors file: features F16 [N, D], label_ids I64 [N], metadata labels / files / source
  Dataset,  // FeaturesOptions::dataset as it ships: <out>/<split>.safetensors, shards as above
};
// "tinyemo-pt" / "folder", "safetensors" / "shard", "auto", or a dataset
// format (emotion6, ..., webemo: Dataset); errors name `option`.
FeaturesFormat parse_features_format(const std::string& name, const std::string& option);

struct FeaturesOptions {
  std::filesystem::path images;  // <label>/<image> files at any depth
  std::filesystem::path out;     // a folder, or the shard file (a folder gets features.safetensors inside)
  FeaturesFormat format = FeaturesFormat::Auto;
  int64_t batch = 8;
  ImageLimits limits;
  // FeaturesFormat::Dataset: `images` is the dataset's root as it ships.
  std::string dataset;                               // emotion6, emotionroi, fi, ... (data::dataset_formats())
  std::optional<std::filesystem::path> taxonomies;   // a folder of <name>.json overriding the built-in taxonomies
  std::string level;                                 // a coarser level of the taxonomy (WEBEmo: "7", "2")
};

struct FeaturesProgress {
  int64_t total = 0;     // images to embed in this run (found, less those already done; a dataset: its splits so far)
  int64_t existing = 0;  // already in the output
  int64_t written = 0;
  int64_t failed = 0;    // unreadable, or two images with one output name
  int64_t ignored = 0;   // files without an image extension
  // Entries passed over, never counted above: those the folder walk skipped
  // (io/walk.h: FIFOs, dangling links, loops) and a dataset's entries that
  // name no usable image.
  int64_t skipped = 0;
  // Dataset runs: the split being embedded and its images to embed in this run.
  std::string split;
  int64_t split_total = 0;
  bool start = false;  // set on the call before a run's (a dataset split's) first image
};

// Called once before the first image (error empty, start set; for a dataset,
// before each split's first image), once for every skipped entry (`skipped`
// counts up, error says "path: why"; a dataset's come before everything
// else), then after every image (error set when it failed). Return false to
// stop: what is written is kept.
using FeaturesCallback = std::function<bool(const FeaturesProgress& progress, const std::string& error)>;

// Returns the final counts.
FeaturesProgress extract_features(const clip::VisionModel& model, const FeaturesOptions& options,
                                  const FeaturesCallback& on_progress);

}  // namespace tinyemo::pipeline
