// Images to emotions, the pipeline behind `tinyemo classify`, the C API's
// te_classify_* and the server: CLIP image embeddings -> Metric Projector ->
// the nearest label anchor, with every label's scores; or CLIP zero-shot
// (cosine to the text tower's label prompts) in the projector's place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/zero_shot.h"
#include "io/image.h"
#include "models/clip/vision_model.h"
#include "models/projector/classify.h"
#include "models/projector/model.h"

namespace tinyemo::pipeline {

// Refuses a tower and a projector that cannot work together (the embedding
// width the projector was trained on), naming both.
void check_clip_fits_projector(const clip::VisionModel& clip, const std::string& clip_name,
                               const projector::ProjectorModel& projector, const std::string& projector_name);

// Called once per image in input order: `scores` holds the image at `row` on
// success; else `scores` is null and `error` names the file. Return false to stop.
using ClassifyCallback =
    std::function<bool(size_t index, const projector::Scores* scores, int64_t row, const std::string& error)>;

// What turns a batch of image embeddings [n, dim] into scores over labels.
struct EmbeddingScorer {
  int64_t dim = 0;
  std::function<projector::Scores(const float* embeddings, int64_t n)> score;
};
EmbeddingScorer projector_scorer(const projector::ProjectorModel& projector);  // keeps a reference
EmbeddingScorer zero_shot_scorer(const data::ZeroShotClassifier& zero_shot);   // keeps a reference
// Refuses a tower whose embeddings are not the zero-shot text tower's width.
void check_clip_fits_zero_shot(const clip::VisionModel& clip, const std::string& clip_name,
                               const data::ZeroShotClassifier& zero_shot);

// Embeds in batches of `batch` and classifies each batch as it comes; false
// when the callback stopped the run.
bool classify_files(const clip::VisionModel& clip, const EmbeddingScorer& scorer,
                    const std::vector<std::filesystem::path>& files, int64_t batch, const ImageLimits& limits,
                    const ClassifyCallback& on_result);
bool classify_files(const clip::VisionModel& clip, const projector::ProjectorModel& projector,
                    const std::vector<std::filesystem::path>& files, int64_t batch, const ImageLimits& limits,
                    const ClassifyCallback& on_result);
bool classify_images(const clip::VisionModel& clip, const projector::ProjectorModel& projector,
                     const std::vector<const Image*>& images, int64_t batch, const ClassifyCallback& on_result);

// One image's result as `tinyemo classify --json` and the server print it:
// {"predicted": L, "scores": {L: p, ...}, "top": [{label, probability, cosine, distance}, ...]}
// (top_k best, best first).
nlohmann::json classification_json(const projector::Scores& scores, int64_t row, const std::vector<std::string>& labels,
                                   int64_t top_k);

// The images named by a command line: files are kept as given (in order; one
// that cannot be read is reported when it is decoded, and the run goes on),
// folders are walked recursively by io/walk.h's rules (image extensions,
// sorted), what a walk passes over listed as "path: why".
struct ImageList {
  std::vector<std::filesystem::path> files;
  std::vector<std::string> skipped;  // entries of the folders passed over (FIFOs, dangling links, loops)
  int64_t ignored = 0;               // files in the folders without an image extension
};
ImageList collect_images(const std::vector<std::filesystem::path>& inputs);

// One result as a CSV line (RFC 4180 quoting, "\n" ended) under
// classification_csv_header's columns: image, predicted, one probability
// per label (in `labels` order), error. A failed image has only image and error.
std::string classification_csv_header(const std::vector<std::string>& labels);
std::string classification_csv_row(const std::string& image, const projector::Scores* scores, int64_t row,
                                   const std::vector<std::string>& labels, const std::string& error);

// Comma-separated label names (empty items dropped), as --labels takes them.
std::vector<std::string> split_label_list(const std::string& list);

}  // namespace tinyemo::pipeline
