// `tinyemo features`: CLIP image embeddings for a folder of <label>/<image>
// files or a dataset as it ships (pipeline/features.h), with a progress bar
// (one per split) and a summary on stderr (exit code 2 when any image failed).
#include <cstdio>

#include "apps/cli/command.h"
#include "apps/cli/progress.h"
#include "pipeline/features.h"

namespace tinyemo::cli {
namespace {

// Exit code of a run in which some images failed (1 stays for fatal errors).
constexpr int kSomeImagesFailed = 2;

struct Opts {
  std::string compute = "auto";  // --compute: clip::apply_compute
  std::string model, images, out, format = "auto";
  int64_t batch = 8;
  int64_t max_pixels = ImageLimits{}.max_pixels;
  bool json = false;
  std::string taxonomies, level;  // dataset formats (--format emotion6, ...)
};

void run_features(const Opts& o) {
  auto model = clip::VisionModel::load(o.model);
  clip::apply_compute(model, o.compute, "--compute");
  pipeline::FeaturesOptions f;
  f.images = o.images;
  f.out = o.out;
  f.format = pipeline::parse_features_format(o.format, "--format");
  f.batch = o.batch;
  f.limits = ImageLimits{o.max_pixels};
  if (f.format == pipeline::FeaturesFormat::Dataset) {
    f.dataset = o.format;
    if (!o.taxonomies.empty()) f.taxonomies = o.taxonomies;
    f.level = o.level;
  } else {
    TE_CHECK(o.taxonomies.empty() && o.level.empty(), "features: --taxonomies and --level go with a dataset --format");
  }
  std::unique_ptr<ProgressBar> bar;
  int64_t skipped = 0;
  nlohmann::json errors = nlohmann::json::array(), skips = nlohmann::json::array();
  const pipeline::FeaturesProgress p =
      pipeline::extract_features(model, f, [&](const pipeline::FeaturesProgress& p, const std::string& error) {
        if (p.skipped > skipped) {  // an entry passed over (the folder walk's, or a dataset's)
          skipped = p.skipped;
          skips.push_back(error);
          if (bar) {
            bar->message("tinyemo: skipped " + error);
          } else {
            std::fprintf(stderr, "tinyemo: skipped %s\n", error.c_str());
          }
        } else if (p.start) {
          if (bar) bar->finish();
          bar = std::make_unique<ProgressBar>(p.split.empty() ? "features" : "features " + p.split, p.split_total,
                                              "img");
        } else if (bar) {
          if (!error.empty()) {
            bar->message("tinyemo: error: " + error);
            errors.push_back(error);
          }
          bar->advance();
        }
        return true;
      });
  if (bar) bar->finish();
  std::fprintf(stderr, "features: %lld images: %lld written, %lld already done (skipped), %lld failed",
               static_cast<long long>(p.total + p.existing), static_cast<long long>(p.written),
               static_cast<long long>(p.existing), static_cast<long long>(p.failed));
  if (p.ignored > 0) std::fprintf(stderr, "; %lld non-image files ignored", static_cast<long long>(p.ignored));
  if (p.skipped > 0) std::fprintf(stderr, "; %lld entries skipped (listed above)", static_cast<long long>(p.skipped));
  std::fputc('\n', stderr);
  if (o.json) {
    print_json({{"out", o.out},
                {"images", p.total + p.existing},
                {"written", p.written},
                {"existing", p.existing},
                {"failed", p.failed},
                {"ignored", p.ignored},
                {"skipped", p.skipped},
                {"errors", errors},
                {"skipped_entries", skips}});
  }
  // A dataset's skipped entries are its own rules (Abstract's ties, files its
  // lists name but it lacks), not failures; what the folder walk skipped is.
  const bool dataset = f.format == pipeline::FeaturesFormat::Dataset;
  if (p.failed > 0 || (p.skipped > 0 && !dataset)) exit_code() = kSomeImagesFailed;
}

const CommandRegistration kFeatures("features", [](CLI::App& root) {
  auto o = std::make_shared<Opts>();
  auto* cmd = root.add_subcommand("features",
                                  "CLIP image embeddings for a <label>/<image> folder (TinyEmo layout) or a dataset");
  cmd->add_option("--model", o->model, "CLIP model directory or weights file")->required();
  add_clip_compute_option(*cmd, o->compute);
  cmd->add_option("--images", o->images, "folder of <label>/<image> files (JPEG, PNG, WebP), or a dataset's root")
      ->required();
  cmd->add_option("--out", o->out, "output folder, or a .safetensors file for one shard")->required();
  cmd->add_option("--format", o->format,
                  "tinyemo-pt (<label>/<stem>.pt, fp16), safetensors (one shard), auto (default: a shard when "
                  "--out ends in .safetensors), or a dataset as it ships (emotion6, emotionroi, fi, artphoto, "
                  "abstract, unbiasedemo, emoset, webemo: one shard per split, <out>/<split>.safetensors)");
  cmd->add_option("--taxonomies", o->taxonomies,
                  "dataset formats: folder of <name>.json taxonomies overriding the built-in ones");
  cmd->add_option("--level", o->level, "dataset formats: a coarser level of the taxonomy (WEBEmo: 7 or 2)");
  cmd->add_option("--batch", o->batch, "images per forward pass")->check(at_least(1));
  cmd->add_option("--max-pixels", o->max_pixels, "refuse images declaring more pixels than this")
      ->check(at_least(1));
  cmd->add_flag("--json", o->json,
                "print a JSON summary on stdout: {out, images, written, existing, failed, ignored, skipped, errors, "
                "skipped_entries}");
  cmd->callback([o] { run_features(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
