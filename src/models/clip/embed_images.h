// Images to CLIP image embeddings: decode + preprocess in parallel, then the
// vision tower in batches. An image that cannot be read is reported through
// the callback and the rest go on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/image.h"
#include "models/clip/vision_model.h"

namespace tinyemo::clip {

// Called once per image, in input order: `embedding` (projection_dim floats)
// on success, else null and `error` (which names the file). Returning false
// stops the run after the current batch.
using EmbeddingCallback = std::function<bool(size_t index, const float* embedding, const std::string& error)>;

// Writes image `index`, preprocessed, into `pixels` (channels x size x size
// floats); throws tinyemo::Error when it cannot. Called from pool threads.
using PreprocessedSource = std::function<void(size_t index, float* pixels)>;

// `count` images from `source`, `batch` at a time (never more than `count`).
// Throws when the model has no visual projection; false when a callback stopped it.
bool embed_images(const VisionModel& model, size_t count, int64_t batch, const PreprocessedSource& source,
                  const EmbeddingCallback& on_result);
// Image files (decoded within `limits`).
bool embed_image_files(const VisionModel& model, const std::vector<std::filesystem::path>& files, int64_t batch,
                       const ImageLimits& limits, const EmbeddingCallback& on_result);
// Images already decoded.
bool embed_decoded_images(const VisionModel& model, const std::vector<const Image*>& images, int64_t batch,
                          const EmbeddingCallback& on_result);

}  // namespace tinyemo::clip
