#include "models/clip/embed_images.h"

#include <algorithm>

#include "core/error.h"
#include "core/memory_budget.h"
#include "core/thread_pool.h"
#include "models/clip/preprocess.h"

namespace tinyemo::clip {

int64_t forward_floats_per_image(const VisionConfig& cfg) {
  // VisionModel::forward's buffers per image: the pixels, the unfolded patches,
  // the residual stream and five hidden-size buffers (norm, q, k, v, attention
  // output) over every token, the MLP activations, one attention score row per head.
  const int64_t t = cfg.num_positions(), w = cfg.hidden_size;
  return cfg.num_channels * cfg.image_size * cfg.image_size + cfg.num_patches() * cfg.patch_dim() + 6 * t * w +
         t * cfg.intermediate_size + cfg.num_heads * t;
}

void embed_image_files(const VisionModel& model, const std::vector<std::filesystem::path>& files, int64_t batch,
                       const ImageLimits& limits, const EmbeddingCallback& on_result) {
  const VisionConfig& cfg = model.config();
  TE_CHECK(cfg.projection_dim > 0, "{}: this CLIP tower has no visual projection, so it gives no image embeddings",
           model.description());
  TE_CHECK(cfg.num_channels == 3, "{}: the CLIP tower takes {}-channel input; image files give RGB",
           model.description(), cfg.num_channels);
  TE_CHECK(batch > 0, "embed images: batch must be positive");
  // The batch never holds more images than there are: --batch 1048576 on 20 images allocates 20.
  batch = std::min<int64_t>(batch, static_cast<int64_t>(files.size()));
  if (batch == 0) return;
  const int64_t dim = cfg.projection_dim, per_image = cfg.num_channels * cfg.image_size * cfg.image_size;
  check_memory_request(static_cast<double>(batch) * static_cast<double>(forward_floats_per_image(cfg)) * 4.0,
                       fmt::format("a CLIP forward pass over a batch of {} images", batch));
  std::vector<float> pixels(static_cast<size_t>(batch * per_image));
  for (size_t first = 0; first < files.size(); first += static_cast<size_t>(batch)) {
    const auto count = static_cast<int64_t>(std::min(files.size() - first, static_cast<size_t>(batch)));
    std::vector<std::string> errors(static_cast<size_t>(count));
    parallel_for(count, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        try {
          clip_preprocess_into(load_image(files[first + i], limits), cfg.image_size, pixels.data() + i * per_image);
        } catch (const std::exception& ex) {
          errors[i] = ex.what();
        }
      }
    });
    // The images that decoded move to the front of the batch.
    std::vector<int64_t> good;
    for (int64_t i = 0; i < count; ++i) {
      if (!errors[i].empty()) continue;
      const auto slot = static_cast<int64_t>(good.size());
      if (slot != i) std::copy_n(pixels.data() + i * per_image, per_image, pixels.data() + slot * per_image);
      good.push_back(i);
    }
    VisionOutputs out;
    if (!good.empty()) out = model.forward(pixels.data(), static_cast<int64_t>(good.size()), {.hidden_states = false});
    size_t g = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (!errors[i].empty()) {
        on_result(first + i, nullptr, errors[i]);
      } else {
        on_result(first + i, out.image_embeds.data<float>() + (g++) * dim, "");
      }
    }
  }
}

}  // namespace tinyemo::clip
