// CLIP, the Metric Projector, images -> emotions and feature extraction.
#include <algorithm>
#include <cmath>
#include <set>

#include "api/api_internal.h"
#include "core/log.h"
#include "models/clip/embed_images.h"
#include "models/projector/classify.h"
#include "pipeline/classify.h"
#include "pipeline/features.h"

using namespace tinyemo;
using tinyemo::api::ApiError;
using tinyemo::api::guard;
using tinyemo::api::invalid;
using tinyemo::api::require;
using tinyemo::api::threads_of;

namespace {

constexpr int32_t kDefaultBatch = 8;

ImageLimits limits_of(const te_clip& clip) {
  ImageLimits limits;
  if (clip.params.max_pixels > 0) limits.max_pixels = clip.params.max_pixels;
  return limits;
}

te_classification row_of(const projector::Scores& s, int64_t row) {
  te_classification c;
  c.predicted = static_cast<int32_t>(s.predicted[row]);
  c.n_labels = static_cast<int32_t>(s.labels);
  c.probabilities = s.probabilities.data() + row * s.labels;
  c.cosines = s.cosines.data() + row * s.labels;
  c.distances = s.distances.data() + row * s.labels;
  return c;
}

void check_pair(const te_clip* clip, const te_projector* projector) {
  require(clip != nullptr, "clip is NULL");
  require(projector != nullptr, "projector is NULL");
  pipeline::check_clip_fits_projector(clip->model, clip->path, projector->model, projector->path);
}

std::vector<std::string> label_list(const char* const* labels, size_t n) {
  require(labels != nullptr || n == 0, "labels is NULL");
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    require(labels[i] != nullptr, "a label is NULL");
    out.emplace_back(labels[i]);
  }
  return out;
}

}  // namespace

extern "C" {

te_clip_params te_clip_default_params(void) {
  te_clip_params p;
  p.n_threads = 0;
  p.batch = kDefaultBatch;
  p.max_pixels = 0;
  p.compute = nullptr;
  return p;
}

te_status te_clip_load(const char* path, const te_clip_params* params, te_clip** out) {
  return guard([&] {
    require(out != nullptr, "te_clip_load: out is NULL");
    *out = nullptr;
    require(path != nullptr, "te_clip_load: path is NULL");
    const te_clip_params p = params != nullptr ? *params : te_clip_default_params();
    if (p.batch < 0 || p.max_pixels < 0) invalid("te_clip_load: batch and max_pixels must be >= 0 (0: default)");
    auto clip = std::make_unique<te_clip>(threads_of(p.n_threads));
    clip->params = p;
    if (clip->params.batch == 0) clip->params.batch = kDefaultBatch;
    clip->path = path;
    ScopedThreadPool use(&clip->pool);
    clip->model = clip::VisionModel::load(path);
    clip::apply_compute(clip->model, p.compute ? p.compute : "auto", "te_clip_params.compute");
    log(LogLevel::Info, "loaded CLIP {} ({} threads)", clip->model.description(), clip->pool.size());
    *out = clip.release();
  });
}

void te_clip_free(te_clip* clip) { delete clip; }
int32_t te_clip_embedding_dim(const te_clip* clip) {
  return clip ? static_cast<int32_t>(clip->model.config().projection_dim) : 0;
}
int32_t te_clip_image_size(const te_clip* clip) {
  return clip ? static_cast<int32_t>(clip->model.config().image_size) : 0;
}
const char* te_clip_description(const te_clip* clip) { return clip ? clip->model.description().c_str() : ""; }

te_status te_clip_embed(te_clip* clip, const te_image* const* images, size_t n_images, float* embeddings,
                        size_t n_floats) {
  return guard([&] {
    require(clip != nullptr, "te_clip_embed: clip is NULL");
    require(images != nullptr || n_images == 0, "te_clip_embed: images is NULL");
    const auto dim = static_cast<size_t>(clip->model.config().projection_dim);
    require(dim > 0, "te_clip_embed: this CLIP tower has no visual projection");
    if (n_floats < n_images * dim) {
      invalid("te_clip_embed: embeddings holds " + std::to_string(n_floats) + " floats, " +
              std::to_string(n_images * dim) + " needed");
    }
    require(embeddings != nullptr || n_images == 0, "te_clip_embed: embeddings is NULL");
    std::vector<const Image*> list;
    for (size_t i = 0; i < n_images; ++i) {
      require(images[i] != nullptr, "te_clip_embed: an image is NULL");
      list.push_back(&images[i]->image);
    }
    ScopedThreadPool use(&clip->pool);
    std::string first_error;
    clip::embed_decoded_images(clip->model, list, clip->params.batch,
                               [&](size_t i, const float* e, const std::string& error) {
                                 if (e == nullptr) {
                                   first_error = "image " + std::to_string(i) + ": " + error;
                                   return false;
                                 }
                                 std::copy(e, e + dim, embeddings + i * dim);
                                 return true;
                               });
    if (!first_error.empty()) fail("{}", first_error);
  });
}

te_status te_projector_load(const char* path, te_projector** out) {
  return guard([&] {
    require(out != nullptr, "te_projector_load: out is NULL");
    *out = nullptr;
    require(path != nullptr, "te_projector_load: path is NULL");
    auto p = std::make_unique<te_projector>();
    p->model = projector::ProjectorModel::load(path);
    p->path = path;
    *out = p.release();
  });
}

void te_projector_free(te_projector* projector) { delete projector; }
int32_t te_projector_input_dim(const te_projector* p) { return p ? static_cast<int32_t>(p->model.input_dim()) : 0; }
int32_t te_projector_output_dim(const te_projector* p) { return p ? static_cast<int32_t>(p->model.hidden_dim()) : 0; }
int32_t te_projector_n_labels(const te_projector* p) {
  return p ? static_cast<int32_t>(p->model.labels().size()) : 0;
}
const char* te_projector_label(const te_projector* p, int32_t i) {
  if (p == nullptr || i < 0 || static_cast<size_t>(i) >= p->model.labels().size()) return nullptr;
  return p->model.labels()[static_cast<size_t>(i)].c_str();
}

te_status te_projector_select_labels(te_projector* p, const char* const* labels, size_t n_labels) {
  return guard([&] {
    require(p != nullptr, "te_projector_select_labels: projector is NULL");
    require(n_labels > 0, "te_projector_select_labels: no labels given");
    projector::restrict_labels(p->model, label_list(labels, n_labels));
  });
}

te_status te_projector_set_anchors(te_projector* p, const char* const* labels, size_t n_labels, const float* anchors,
                                   size_t n_floats) {
  return guard([&] {
    require(p != nullptr, "te_projector_set_anchors: projector is NULL");
    require(n_labels > 0, "te_projector_set_anchors: no labels given");
    const auto H = static_cast<size_t>(p->model.hidden_dim());
    if (n_floats != n_labels * H) {
      invalid("te_projector_set_anchors: " + std::to_string(n_labels) + " labels need " + std::to_string(n_labels * H) +
              " floats (rows of " + std::to_string(H) + "), got " + std::to_string(n_floats));
    }
    require(anchors != nullptr, "te_projector_set_anchors: anchors is NULL");
    std::vector<std::string> names = label_list(labels, n_labels);
    std::set<std::string> distinct;
    for (const auto& name : names) {
      if (!distinct.insert(name).second) invalid("te_projector_set_anchors: label \"" + name + "\" is given twice");
    }
    for (size_t i = 0; i < n_floats; ++i) {
      if (!std::isfinite(anchors[i])) invalid("te_projector_set_anchors: anchors hold a NaN or infinite value");
    }
    p->model.set_anchors(std::move(names), std::vector<float>(anchors, anchors + n_floats));
  });
}

te_status te_projector_load_anchors(te_projector* p, const char* path) {
  return guard([&] {
    require(p != nullptr, "te_projector_load_anchors: projector is NULL");
    require(path != nullptr, "te_projector_load_anchors: path is NULL");
    projector::AnchorSet a = projector::load_anchors(path, p->model.hidden_dim());
    p->model.set_anchors(std::move(a.labels), std::move(a.rows));
  });
}

te_status te_projector_anchors(const te_projector* p, float* anchors, size_t capacity, size_t* n_floats) {
  return guard([&] {
    if (n_floats) *n_floats = 0;
    require(p != nullptr, "te_projector_anchors: projector is NULL");
    const auto& rows = p->model.anchors();
    api::copy_out(rows.data(), rows.size(), anchors, capacity, n_floats, "te_projector_anchors");
  });
}

te_status te_projector_classify(const te_projector* p, const float* features, size_t n_rows, size_t dim,
                                int32_t* predicted, float* probabilities, float* cosines, float* distances) {
  return guard([&] {
    require(p != nullptr, "te_projector_classify: projector is NULL");
    require(features != nullptr || n_rows == 0, "te_projector_classify: features is NULL");
    if (dim != static_cast<size_t>(p->model.input_dim())) {
      invalid("te_projector_classify: features have " + std::to_string(dim) + " values per row, the projector takes " +
              std::to_string(p->model.input_dim()));
    }
    if (n_rows == 0) return;
    const projector::Scores s = projector::classify(p->model, features, static_cast<int64_t>(n_rows));
    for (size_t i = 0; i < n_rows; ++i) {
      if (predicted) predicted[i] = static_cast<int32_t>(s.predicted[i]);
    }
    if (probabilities) std::copy(s.probabilities.begin(), s.probabilities.end(), probabilities);
    if (cosines) std::copy(s.cosines.begin(), s.cosines.end(), cosines);
    if (distances) std::copy(s.distances.begin(), s.distances.end(), distances);
  });
}

te_status te_classify_files(te_clip* clip, const te_projector* projector, const char* const* paths, size_t n_paths,
                            te_classify_callback callback, void* user_data, size_t* n_failed) {
  return guard([&] {
    if (n_failed) *n_failed = 0;
    check_pair(clip, projector);
    require(callback != nullptr, "te_classify_files: callback is NULL");
    require(paths != nullptr || n_paths == 0, "te_classify_files: paths is NULL");
    std::vector<std::filesystem::path> files;
    for (size_t i = 0; i < n_paths; ++i) {
      require(paths[i] != nullptr, "te_classify_files: a path is NULL");
      files.emplace_back(paths[i]);
    }
    ScopedThreadPool use(&clip->pool);
    size_t failed = 0;
    const bool finished = pipeline::classify_files(
        clip->model, projector->model, files, clip->params.batch, limits_of(*clip),
        [&](size_t i, const projector::Scores* s, int64_t row, const std::string& error) {
          if (s == nullptr) {
            ++failed;
            return callback(i, nullptr, error.c_str(), user_data);
          }
          const te_classification c = row_of(*s, row);
          return callback(i, &c, nullptr, user_data);
        });
    if (n_failed) *n_failed = failed;
    if (!finished) throw ApiError{TE_ERROR_CANCELLED, "te_classify_files: stopped by the callback"};
  });
}

te_status te_classify_images(te_clip* clip, const te_projector* projector, const te_image* const* images,
                             size_t n_images, te_classify_callback callback, void* user_data) {
  return guard([&] {
    check_pair(clip, projector);
    require(callback != nullptr, "te_classify_images: callback is NULL");
    require(images != nullptr || n_images == 0, "te_classify_images: images is NULL");
    std::vector<const Image*> list;
    for (size_t i = 0; i < n_images; ++i) {
      require(images[i] != nullptr, "te_classify_images: an image is NULL");
      list.push_back(&images[i]->image);
    }
    ScopedThreadPool use(&clip->pool);
    const bool finished = pipeline::classify_images(
        clip->model, projector->model, list, clip->params.batch,
        [&](size_t i, const projector::Scores* s, int64_t row, const std::string& error) {
          if (s == nullptr) return callback(i, nullptr, error.c_str(), user_data);
          const te_classification c = row_of(*s, row);
          return callback(i, &c, nullptr, user_data);
        });
    if (!finished) throw ApiError{TE_ERROR_CANCELLED, "te_classify_images: stopped by the callback"};
  });
}

te_status te_features_extract(te_clip* clip, const char* images_dir, const char* out, te_features_format format,
                              te_features_callback callback, void* user_data, te_features_progress* summary) {
  return guard([&] {
    require(clip != nullptr, "te_features_extract: clip is NULL");
    require(images_dir != nullptr && out != nullptr, "te_features_extract: images_dir or out is NULL");
    pipeline::FeaturesOptions o;
    o.images = images_dir;
    o.out = out;
    switch (tinyemo::api::enum_value(format)) {
      case TE_FEATURES_AUTO: o.format = pipeline::FeaturesFormat::Auto; break;
      case TE_FEATURES_FOLDER: o.format = pipeline::FeaturesFormat::Folder; break;
      case TE_FEATURES_SHARD: o.format = pipeline::FeaturesFormat::Shard; break;
      default: invalid("te_features_extract: unknown format");
    }
    o.batch = clip->params.batch;
    o.limits = limits_of(*clip);
    ScopedThreadPool use(&clip->pool);
    bool stopped = false;
    auto to_c = [](const pipeline::FeaturesProgress& p, const std::string& error) {
      te_features_progress c;
      c.total = static_cast<size_t>(p.total);
      c.done = static_cast<size_t>(p.written);
      c.existing = static_cast<size_t>(p.existing);
      c.failed = static_cast<size_t>(p.failed + p.skipped);  // entries the folder walk passed over count as failed
      c.error = error.empty() ? nullptr : error.c_str();
      return c;
    };
    const pipeline::FeaturesProgress p =
        pipeline::extract_features(clip->model, o, [&](const pipeline::FeaturesProgress& p, const std::string& error) {
          if (callback == nullptr) return true;
          const te_features_progress c = to_c(p, error);
          stopped = !callback(&c, user_data);
          return !stopped;
        });
    if (summary) *summary = to_c(p, "");
    if (stopped) throw ApiError{TE_ERROR_CANCELLED, "te_features_extract: stopped by the callback"};
  });
}

}  // extern "C"
