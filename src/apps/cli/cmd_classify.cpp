// `tinyemo classify --clip DIR --projector MODEL.safetensors IMAGE...`:
// images in, emotion scores out (CLIP image embedding -> Metric Projector ->
// nearest label anchor). An unreadable image is reported by name and the
// others are still classified (exit code 2 when any failed).
#include <cstdio>
#include <functional>
#include <optional>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "data/zero_shot.h"
#include "io/image.h"
#include "models/clip/embed_images.h"
#include "models/projector/classify.h"
#include "models/projector/model.h"

namespace tinyemo::cli {
namespace {

constexpr int kSomeImagesFailed = 2;
constexpr int64_t kBatch = 8;

std::vector<std::string> split_label_list(const std::string& s) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= s.size()) {
    const size_t end = std::min(s.find(',', begin), s.size());
    if (end > begin) out.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

struct Opts {
  std::string clip, projector, labels, anchors;
  bool zero_shot = false;  // CLIP's text tower scores the labels instead of a projector
  std::string prompt_template = data::kDefaultPromptTemplate, vocab;
  std::vector<std::string> images;
  int64_t top_k = 3;
  int64_t max_pixels = ImageLimits{}.max_pixels;
  bool json = false;
};

void run_classify(const Opts& o) {
  const auto model = clip::VisionModel::load(o.clip);
  // The scorer of image embeddings: the Metric Projector, or (--zero-shot) CLIP's text tower.
  std::vector<std::string> labels;
  int64_t dim = 0;
  std::function<projector::Scores(const float*, int64_t)> score;
  projector::ProjectorModel projector;
  std::optional<data::ZeroShotClassifier> zero_shot;
  if (o.zero_shot) {
    TE_CHECK(o.projector.empty() && o.anchors.empty(), "classify --zero-shot uses CLIP's text tower: drop --projector/--anchors");
    TE_CHECK(!o.labels.empty(), "classify --zero-shot needs --labels");
    zero_shot.emplace(data::ClipTextEncoder::load(o.clip, vocab_option(o.vocab)), split_label_list(o.labels),
                      o.prompt_template);
    labels = zero_shot->labels();
    dim = zero_shot->dim();
    score = [&](const float* x, int64_t n) { return zero_shot->classify(x, n); };
  } else {
    TE_CHECK(!o.projector.empty(), "classify: give --projector MODEL, or --zero-shot --labels a,b,...");
    projector = projector::ProjectorModel::load(o.projector);
    if (!o.anchors.empty()) {
      projector::AnchorSet a = projector::load_anchors(o.anchors, projector.hidden_dim());
      projector.set_anchors(std::move(a.labels), std::move(a.rows));
    }
    if (!o.labels.empty()) projector::restrict_labels(projector, split_label_list(o.labels));
    labels = projector.labels();
    dim = projector.input_dim();
    score = [&](const float* x, int64_t n) { return projector::classify(projector, x, n); };
  }
  TE_CHECK(model.config().projection_dim == dim, "{} gives {}-d image embeddings, but {} takes {}-d features", o.clip,
           model.config().projection_dim, o.zero_shot ? "its text tower" : "the projector " + o.projector, dim);

  std::vector<std::string> failed(o.images.size());
  std::vector<float> ok_embeds;
  std::vector<size_t> ok;
  const std::vector<std::filesystem::path> files(o.images.begin(), o.images.end());
  clip::embed_image_files(model, files, kBatch, ImageLimits{o.max_pixels},
                          [&](size_t i, const float* embedding, const std::string& error) {
                            if (embedding == nullptr) {
                              failed[i] = error;
                              return;
                            }
                            ok.push_back(i);
                            ok_embeds.insert(ok_embeds.end(), embedding, embedding + dim);
                          });
  const projector::Scores s = score(ok_embeds.data(), static_cast<int64_t>(ok.size()));
  nlohmann::json results = nlohmann::json::array();
  size_t row = 0;
  for (size_t i = 0; i < o.images.size(); ++i) {
    if (!failed[i].empty()) {
      std::fprintf(stderr, "tinyemo: error: %s\n", failed[i].c_str());
      results.push_back({{"image", o.images[i]}, {"error", failed[i]}});
      continue;
    }
    const auto r = static_cast<int64_t>(row++);
    nlohmann::json scores = nlohmann::json::object();
    for (int64_t l = 0; l < s.labels; ++l) scores[labels[l]] = s.probabilities[r * s.labels + l];
    nlohmann::json top = nlohmann::json::array();
    for (int64_t l : s.top_k(r, o.top_k)) {
      top.push_back({{"label", labels[l]},
                     {"probability", s.probabilities[r * s.labels + l]},
                     {"cosine", s.cosines[r * s.labels + l]},
                     {"distance", s.distances[r * s.labels + l]}});
    }
    const std::string& predicted = labels[s.predicted[r]];
    results.push_back({{"image", o.images[i]}, {"predicted", predicted}, {"scores", scores}, {"top", top}});
    if (!o.json) {
      std::printf("%s: %s", o.images[i].c_str(), predicted.c_str());
      for (const auto& t : top) std::printf("  %s %.3f", t["label"].get<std::string>().c_str(), t["probability"].get<double>());
      std::printf("\n");
    }
  }
  if (o.json) {
    print_json({{"clip", model.description()},
                {"projector", o.zero_shot ? "zero-shot: " + o.prompt_template : o.projector},
                {"labels", labels},
                {"results", results}});
  }
  if (ok.size() != o.images.size()) exit_code() = kSomeImagesFailed;
}

const CommandRegistration kClassify("classify", [](CLI::App& root) {
  auto o = std::make_shared<Opts>();
  auto* cmd = root.add_subcommand("classify", "classify images: CLIP embedding -> Metric Projector -> nearest label");
  cmd->add_option("--clip", o->clip, "CLIP model directory or weights file")->required();
  cmd->add_option("--projector", o->projector, "projector model (.safetensors, `tinyemo projector train/import`)");
  cmd->add_flag("--zero-shot", o->zero_shot,
                "no projector: cosine to CLIP text embeddings of the --labels prompts (a whole CLIP model as --clip)");
  cmd->add_option("--template", o->prompt_template, "zero-shot prompt, {} replaced by the label")->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "zero-shot: CLIP's BPE merges (default: bpe_simple_vocab_16e6.txt.gz beside --clip)");
  cmd->add_option("--top-k", o->top_k, "labels to list per image, best first")->check(CLI::PositiveNumber);
  cmd->add_option("--labels", o->labels, "comma-separated subset of the labels to choose among");
  cmd->add_option("--anchors", o->anchors, "replace the label set: safetensors with `anchors` [L, H] + `labels`");
  cmd->add_option("--max-pixels", o->max_pixels, "refuse images declaring more pixels than this")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "print one JSON object {labels, results: [{image, predicted, scores, top}]}");
  cmd->add_option("images", o->images, "JPEG, PNG or WebP files")->required();
  cmd->callback([o] { run_classify(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
