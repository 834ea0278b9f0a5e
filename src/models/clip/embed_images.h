// Image files to CLIP image embeddings: decode + preprocess in parallel,
// then the vision tower in batches. A file that cannot be read is reported
// through the callback and the rest go on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/image.h"
#include "models/clip/vision_model.h"

namespace tinyemo::clip {

// Called once per file, in input order: `embedding` (projection_dim floats)
// on success, else null and `error` (which names the file).
using EmbeddingCallback = std::function<void(size_t index, const float* embedding, const std::string& error)>;

// Floats one image takes in a forward pass (for refusing a batch that cannot fit).
int64_t forward_floats_per_image(const VisionConfig& config);

// Throws when the model has no visual projection, or when one batch's forward
// pass would need more memory than the machine has (the batch is never larger
// than the number of files).
void embed_image_files(const VisionModel& model, const std::vector<std::filesystem::path>& files, int64_t batch,
                       const ImageLimits& limits, const EmbeddingCallback& on_result);

}  // namespace tinyemo::clip
