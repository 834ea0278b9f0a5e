// `tinyemo classify --clip DIR --projector MODEL.safetensors IMAGE|FOLDER...`:
// images in, emotion scores out (CLIP image embedding -> Metric Projector ->
// nearest label anchor). Folders are walked recursively; results stream out
// as they come (text, --jsonl or --csv; --json gathers one object), with a
// progress bar on a terminal. An unreadable image is reported by name and the
// others are still classified (exit code 2 when any failed or was skipped).
// --zero-shot: CLIP's text tower scores the labels' prompts instead of a projector.
#include <cstdio>
#include <optional>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "apps/cli/progress.h"
#include "data/zero_shot.h"
#include "io/image.h"
#include "pipeline/classify.h"

namespace tinyemo::cli {
namespace {

constexpr int kSomeImagesFailed = 2;
constexpr int64_t kBatch = 8;

struct Opts {
  std::string compute = "auto";  // --compute: clip::apply_compute
  std::string clip, projector, labels, anchors;
  bool zero_shot = false;  // CLIP's text tower scores the labels instead of a projector
  std::string prompt_template = data::kDefaultPromptTemplate, vocab;
  std::vector<std::string> images;
  int64_t top_k = 3;
  int64_t max_pixels = ImageLimits{}.max_pixels;
  bool json = false, jsonl = false, csv = false;
};

// Prints a line and flushes, so a consumer of the stream sees each result as it comes.
void emit(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void run_classify(const Opts& o) {
  auto model = clip::VisionModel::load(o.clip);
  clip::apply_compute(model, o.compute, "--compute");
  // The scorer of image embeddings: the Metric Projector, or (--zero-shot) CLIP's text tower.
  projector::ProjectorModel projector;
  std::optional<data::ZeroShotClassifier> zero_shot;
  pipeline::EmbeddingScorer scorer;
  if (o.zero_shot) {
    TE_CHECK(o.projector.empty() && o.anchors.empty(),
             "classify --zero-shot uses CLIP's text tower: drop --projector/--anchors");
    TE_CHECK(!o.labels.empty(), "classify --zero-shot needs --labels");
    zero_shot.emplace(data::ClipTextEncoder::load(o.clip, vocab_option(o.vocab)),
                      pipeline::split_label_list(o.labels), o.prompt_template);
    pipeline::check_clip_fits_zero_shot(model, o.clip, *zero_shot);
    scorer = pipeline::zero_shot_scorer(*zero_shot);
  } else {
    TE_CHECK(!o.projector.empty(), "classify: give --projector MODEL, or --zero-shot --labels a,b,...");
    projector = projector::ProjectorModel::load(o.projector);
    if (!o.anchors.empty()) {
      projector::AnchorSet a = projector::load_anchors(o.anchors, projector.hidden_dim());
      projector.set_anchors(std::move(a.labels), std::move(a.rows));
    }
    if (!o.labels.empty()) projector::restrict_labels(projector, pipeline::split_label_list(o.labels));
    pipeline::check_clip_fits_projector(model, o.clip, projector, o.projector);
    scorer = pipeline::projector_scorer(projector);
  }

  const std::vector<std::string>& labels = o.zero_shot ? zero_shot->labels() : projector.labels();
  const pipeline::ImageList list =
      pipeline::collect_images(std::vector<std::filesystem::path>(o.images.begin(), o.images.end()));
  ProgressBar bar("classify", static_cast<int64_t>(list.files.size()), "img");
  for (const auto& skip : list.skipped) bar.message("tinyemo: skipped " + skip);
  if (o.csv) emit(pipeline::classification_csv_header(labels));
  nlohmann::json results = nlohmann::json::array();
  size_t failed = 0;
  pipeline::classify_files(
      model, scorer, list.files, kBatch, ImageLimits{o.max_pixels},
      [&](size_t i, const projector::Scores* s, int64_t row, const std::string& error) {
        const std::string image = list.files[i].string();
        nlohmann::json r = {{"image", image}};
        if (s == nullptr) {
          bar.message("tinyemo: error: " + error);
          r["error"] = error;
          ++failed;
        } else {
          r.update(pipeline::classification_json(*s, row, labels, o.top_k));
        }
        if (o.csv) {
          emit(pipeline::classification_csv_row(image, s, row, labels, error));
        } else if (o.jsonl) {
          emit(r.dump() + "\n");
        } else if (o.json) {
          results.push_back(std::move(r));
        } else if (s != nullptr) {
          std::string line = image + ": " + r["predicted"].get<std::string>();
          for (const auto& t : r["top"]) {
            line += fmt::format("  {} {:.3f}", t["label"].get<std::string>(), t["probability"].get<double>());
          }
          bar.clear();
          emit(line + "\n");
        }
        bar.advance();
        return true;
      });
  bar.finish();
  if (o.json) {
    print_json({{"clip", model.description()},
                {"projector", o.zero_shot ? "zero-shot: " + o.prompt_template : o.projector},
                {"labels", labels},
                {"results", results}});
  }
  if (list.files.size() != o.images.size() || failed > 0 || !list.skipped.empty()) {
    std::fprintf(stderr, "classify: %zu images: %zu classified, %zu failed", list.files.size(),
                 list.files.size() - failed, failed);
    if (!list.skipped.empty()) std::fprintf(stderr, "; %zu entries skipped (listed above)", list.skipped.size());
    if (list.ignored > 0) std::fprintf(stderr, "; %lld non-image files ignored", static_cast<long long>(list.ignored));
    std::fputc('\n', stderr);
  }
  if (failed > 0 || !list.skipped.empty()) exit_code() = kSomeImagesFailed;
}

const CommandRegistration kClassify("classify", [](CLI::App& root) {
  auto o = std::make_shared<Opts>();
  auto* cmd = root.add_subcommand("classify", "classify images: CLIP embedding -> Metric Projector -> nearest label");
  cmd->add_option("--clip", o->clip, "CLIP model directory or weights file")->required();
  add_clip_compute_option(*cmd, o->compute);
  cmd->add_option("--projector", o->projector, "projector model (.safetensors, `tinyemo projector train/import`)");
  cmd->add_flag("--zero-shot", o->zero_shot,
                "no projector: cosine to CLIP text embeddings of the --labels prompts (a whole CLIP model as --clip)");
  cmd->add_option("--template", o->prompt_template, "zero-shot prompt, {} replaced by the label")->capture_default_str();
  cmd->add_option("--vocab", o->vocab,
                  "zero-shot: CLIP's BPE merges (default: bpe_simple_vocab_16e6.txt.gz beside --clip)");
  cmd->add_option("--top-k", o->top_k, "labels to list per image, best first")->check(at_least(1));
  cmd->add_option("--labels", o->labels, "comma-separated subset of the labels to choose among");
  cmd->add_option("--anchors", o->anchors, "replace the label set: safetensors with `anchors` [L, H] + `labels`");
  cmd->add_option("--max-pixels", o->max_pixels, "refuse images declaring more pixels than this")
      ->check(at_least(1));
  auto* json = cmd->add_flag("--json", o->json,
                              "print one JSON object at the end {labels, results: [{image, predicted, scores, top}]}");
  auto* jsonl = cmd->add_flag("--jsonl", o->jsonl,
                               "stream one JSON object per image as it is done ({image, predicted, scores, top} or "
                               "{image, error})");
  auto* csv = cmd->add_flag("--csv", o->csv,
                             "stream CSV as images are done: image, predicted, one probability column per label, error");
  json->excludes(jsonl)->excludes(csv);
  jsonl->excludes(csv);
  cmd->add_option("images", o->images, "JPEG, PNG or WebP files, or folders of them (walked recursively)")
      ->required();
  cmd->callback([o] { run_classify(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
