#include "models/clip/embed_images.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "models/clip/preprocess.h"

namespace tinyemo::clip {

bool embed_images(const VisionModel& model, size_t count, int64_t batch, const PreprocessedSource& source,
                  const EmbeddingCallback& on_result) {
  const VisionConfig& cfg = model.config();
  TE_CHECK(cfg.projection_dim > 0, "{}: this CLIP tower has no visual projection, so it gives no image embeddings",
           model.description());
  TE_CHECK(cfg.num_channels == 3, "{}: the CLIP tower takes {}-channel input; images give RGB", model.description(),
           cfg.num_channels);
  TE_CHECK(batch > 0, "embed images: batch must be positive, got {}", batch);
  // The pixel buffer holds what is there to embed, not what --batch asks for.
  batch = std::min<int64_t>(batch, static_cast<int64_t>(std::max<size_t>(count, 1)));
  const int64_t dim = cfg.projection_dim, per_image = cfg.num_channels * cfg.image_size * cfg.image_size;
  std::vector<float> pixels(static_cast<size_t>(batch * per_image));
  for (size_t first = 0; first < count; first += static_cast<size_t>(batch)) {
    const auto n = static_cast<int64_t>(std::min(count - first, static_cast<size_t>(batch)));
    std::vector<std::string> errors(static_cast<size_t>(n));
    parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        try {
          source(first + i, pixels.data() + i * per_image);
        } catch (const std::exception& ex) {
          errors[i] = ex.what();
        }
      }
    });
    // The images that decoded move to the front of the batch.
    std::vector<int64_t> good;
    for (int64_t i = 0; i < n; ++i) {
      if (!errors[i].empty()) continue;
      const auto slot = static_cast<int64_t>(good.size());
      if (slot != i) std::copy_n(pixels.data() + i * per_image, per_image, pixels.data() + slot * per_image);
      good.push_back(i);
    }
    VisionOutputs out;
    if (!good.empty()) out = model.forward(pixels.data(), static_cast<int64_t>(good.size()), {.hidden_states = false});
    size_t g = 0;
    bool go_on = true;
    for (int64_t i = 0; i < n; ++i) {
      const bool ok = errors[i].empty();
      go_on &= on_result(first + i, ok ? out.image_embeds.data<float>() + (g++) * dim : nullptr, errors[i]);
    }
    if (!go_on) return false;
  }
  return true;
}

bool embed_image_files(const VisionModel& model, const std::vector<std::filesystem::path>& files, int64_t batch,
                       const ImageLimits& limits, const EmbeddingCallback& on_result) {
  const int64_t size = model.config().image_size;
  return embed_images(
      model, files.size(), batch,
      [&](size_t i, float* pixels) { clip_preprocess_into(load_image(files[i], limits), size, pixels); }, on_result);
}

bool embed_decoded_images(const VisionModel& model, const std::vector<const Image*>& images, int64_t batch,
                          const EmbeddingCallback& on_result) {
  const int64_t size = model.config().image_size;
  return embed_images(
      model, images.size(), batch, [&](size_t i, float* pixels) { clip_preprocess_into(*images[i], size, pixels); },
      on_result);
}

}  // namespace tinyemo::clip
