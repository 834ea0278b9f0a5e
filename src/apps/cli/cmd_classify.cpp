// `tinyemo classify --clip DIR --projector MODEL.safetensors IMAGE...`:
// images in, emotion scores out (CLIP image embedding -> Metric Projector ->
// nearest label anchor). An unreadable image is reported by name and the
// others are still classified (exit code 2 when any failed).
#include <cstdio>

#include "apps/cli/command.h"
#include "io/image.h"
#include "pipeline/classify.h"

namespace tinyemo::cli {
namespace {

constexpr int kSomeImagesFailed = 2;
constexpr int64_t kBatch = 8;

struct Opts {
  std::string clip, projector, labels, anchors;
  std::vector<std::string> images;
  int64_t top_k = 3;
  int64_t max_pixels = ImageLimits{}.max_pixels;
  bool json = false;
};

void run_classify(const Opts& o) {
  const auto model = clip::VisionModel::load(o.clip);
  projector::ProjectorModel projector = projector::ProjectorModel::load(o.projector);
  if (!o.anchors.empty()) {
    projector::AnchorSet a = projector::load_anchors(o.anchors, projector.hidden_dim());
    projector.set_anchors(std::move(a.labels), std::move(a.rows));
  }
  if (!o.labels.empty()) projector::restrict_labels(projector, pipeline::split_label_list(o.labels));
  pipeline::check_clip_fits_projector(model, o.clip, projector, o.projector);

  const auto& labels = projector.labels();
  nlohmann::json results = nlohmann::json::array();
  size_t failed = 0;
  const std::vector<std::filesystem::path> files(o.images.begin(), o.images.end());
  pipeline::classify_files(
      model, projector, files, kBatch, ImageLimits{o.max_pixels},
      [&](size_t i, const projector::Scores* s, int64_t row, const std::string& error) {
        if (s == nullptr) {
          std::fprintf(stderr, "tinyemo: error: %s\n", error.c_str());
          results.push_back({{"image", o.images[i]}, {"error", error}});
          ++failed;
          return true;
        }
        nlohmann::json r = {{"image", o.images[i]}};
        r.update(pipeline::classification_json(*s, row, labels, o.top_k));
        if (!o.json) {
          std::printf("%s: %s", o.images[i].c_str(), r["predicted"].get<std::string>().c_str());
          for (const auto& t : r["top"]) {
            std::printf("  %s %.3f", t["label"].get<std::string>().c_str(), t["probability"].get<double>());
          }
          std::printf("\n");
        }
        results.push_back(std::move(r));
        return true;
      });
  if (o.json) {
    print_json({{"clip", model.description()}, {"projector", o.projector}, {"labels", labels}, {"results", results}});
  }
  if (failed > 0) exit_code() = kSomeImagesFailed;
}

const CommandRegistration kClassify("classify", [](CLI::App& root) {
  auto o = std::make_shared<Opts>();
  auto* cmd = root.add_subcommand("classify", "classify images: CLIP embedding -> Metric Projector -> nearest label");
  cmd->add_option("--clip", o->clip, "CLIP model directory or weights file")->required();
  cmd->add_option("--projector", o->projector, "projector model (.safetensors, `tinyemo projector train/import`)")
      ->required();
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
