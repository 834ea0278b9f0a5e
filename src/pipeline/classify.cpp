#include "pipeline/classify.h"

#include <fmt/format.h>

#include "io/walk.h"
#include "models/clip/embed_images.h"

namespace tinyemo::pipeline {

void check_clip_fits_projector(const clip::VisionModel& clip, const std::string& clip_name,
                               const projector::ProjectorModel& projector, const std::string& projector_name) {
  TE_CHECK(clip.config().projection_dim == projector.input_dim(),
           "{} gives {}-d image embeddings, but the projector {} takes {}-d features", clip_name,
           clip.config().projection_dim, projector_name, projector.input_dim());
}

namespace {

// Collects a batch's embeddings (the images that decoded) and classifies them
// when the batch is complete, then reports every image of the batch in order.
class BatchClassifier {
 public:
  BatchClassifier(const EmbeddingScorer& scorer, size_t count, int64_t batch, const ClassifyCallback& on_result)
      : scorer_(scorer), count_(count), batch_(static_cast<size_t>(std::max<int64_t>(batch, 1))),
        on_result_(on_result) {}

  bool add(size_t index, const float* embedding, const std::string& error) {
    pending_.push_back({index, error, embedding != nullptr ? static_cast<int64_t>(embedded_rows_) : -1});
    if (embedding != nullptr) {
      embeddings_.insert(embeddings_.end(), embedding, embedding + scorer_.dim);
      ++embedded_rows_;
    }
    if (pending_.size() < batch_ && index + 1 < count_) return true;
    const projector::Scores scores = scorer_.score(embeddings_.data(), static_cast<int64_t>(embedded_rows_));
    bool go_on = true;
    for (const Pending& p : pending_) {
      if (!go_on) break;
      go_on = p.row >= 0 ? on_result_(p.index, &scores, p.row, "") : on_result_(p.index, nullptr, -1, p.error);
    }
    pending_.clear();
    embeddings_.clear();
    embedded_rows_ = 0;
    return go_on;
  }

 private:
  struct Pending {
    size_t index;
    std::string error;
    int64_t row;
  };
  const EmbeddingScorer& scorer_;
  size_t count_, batch_;
  const ClassifyCallback& on_result_;
  std::vector<Pending> pending_;
  std::vector<float> embeddings_;
  size_t embedded_rows_ = 0;
};

}  // namespace

EmbeddingScorer projector_scorer(const projector::ProjectorModel& projector) {
  return {projector.input_dim(),
          [&projector](const float* x, int64_t n) { return projector::classify(projector, x, n); }};
}

EmbeddingScorer zero_shot_scorer(const data::ZeroShotClassifier& zero_shot) {
  return {zero_shot.dim(), [&zero_shot](const float* x, int64_t n) { return zero_shot.classify(x, n); }};
}

void check_clip_fits_zero_shot(const clip::VisionModel& clip, const std::string& clip_name,
                               const data::ZeroShotClassifier& zero_shot) {
  TE_CHECK(clip.config().projection_dim == zero_shot.dim(),
           "{} gives {}-d image embeddings, but its text tower gives {}-d text embeddings", clip_name,
           clip.config().projection_dim, zero_shot.dim());
}

bool classify_files(const clip::VisionModel& clip, const EmbeddingScorer& scorer,
                    const std::vector<std::filesystem::path>& files, int64_t batch, const ImageLimits& limits,
                    const ClassifyCallback& on_result) {
  BatchClassifier classifier(scorer, files.size(), batch, on_result);
  return clip::embed_image_files(clip, files, batch, limits, [&](size_t i, const float* e, const std::string& error) {
    return classifier.add(i, e, error);
  });
}

bool classify_files(const clip::VisionModel& clip, const projector::ProjectorModel& projector,
                    const std::vector<std::filesystem::path>& files, int64_t batch, const ImageLimits& limits,
                    const ClassifyCallback& on_result) {
  return classify_files(clip, projector_scorer(projector), files, batch, limits, on_result);
}

bool classify_images(const clip::VisionModel& clip, const projector::ProjectorModel& projector,
                     const std::vector<const Image*>& images, int64_t batch, const ClassifyCallback& on_result) {
  const EmbeddingScorer scorer = projector_scorer(projector);
  BatchClassifier classifier(scorer, images.size(), batch, on_result);
  return clip::embed_decoded_images(clip, images, batch, [&](size_t i, const float* e, const std::string& error) {
    return classifier.add(i, e, error);
  });
}

nlohmann::json classification_json(const projector::Scores& s, int64_t row, const std::vector<std::string>& labels,
                                   int64_t top_k) {
  const int64_t L = s.labels;
  nlohmann::json scores = nlohmann::json::object();
  for (int64_t l = 0; l < L; ++l) scores[labels[l]] = s.probabilities[row * L + l];
  nlohmann::json top = nlohmann::json::array();
  for (int64_t l : s.top_k(row, top_k)) {
    top.push_back({{"label", labels[l]},
                   {"probability", s.probabilities[row * L + l]},
                   {"cosine", s.cosines[row * L + l]},
                   {"distance", s.distances[row * L + l]}});
  }
  return {{"predicted", labels[s.predicted[row]]}, {"scores", scores}, {"top", top}};
}

ImageList collect_images(const std::vector<std::filesystem::path>& inputs) {
  ImageList list;
  for (const std::filesystem::path& input : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec)) {
      list.files.push_back(input);  // decoding says what is wrong with it, if anything
      continue;
    }
    WalkResult found = walk_folder(
        input, {.max_depth = -1, .wanted = [](const std::filesystem::path& p) { return has_image_extension(p); }});
    list.files.insert(list.files.end(), found.files.begin(), found.files.end());
    for (const WalkSkip& s : found.skipped) list.skipped.push_back(s.message());
    list.ignored += found.ignored;
  }
  return list;
}

namespace {
// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}
}  // namespace

std::string classification_csv_header(const std::vector<std::string>& labels) {
  std::string line = "image,predicted";
  for (const auto& l : labels) {
    line += ',';
    line += csv_field(l);
  }
  line += ",error\n";
  return line;
}

std::string classification_csv_row(const std::string& image, const projector::Scores* s, int64_t row,
                                   const std::vector<std::string>& labels, const std::string& error) {
  std::string line = csv_field(image);
  line += ',';
  if (s != nullptr) line += csv_field(labels[s->predicted[row]]);
  for (size_t l = 0; l < labels.size(); ++l) {
    line += ',';
    if (s != nullptr) line += fmt::format("{:.6f}", s->probabilities[row * s->labels + static_cast<int64_t>(l)]);
  }
  line += ',';
  line += csv_field(error);
  line += '\n';
  return line;
}

std::vector<std::string> split_label_list(const std::string& list) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= list.size()) {
    const size_t end = std::min(list.find(',', begin), list.size());
    if (end > begin) out.push_back(list.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

}  // namespace tinyemo::pipeline
