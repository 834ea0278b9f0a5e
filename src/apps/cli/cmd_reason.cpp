// `tinyemo reason`: TinyEmo's emotional reasoning on one image — the Metric
// Projector's label and scores, then the multimodal LM's explanation streamed
// (src/models/mm/emoreason.h). Option parsing and printing only.
#include <cstdio>

#include "apps/cli/command.h"
#include "apps/cli/mm_options.h"
#include "io/image.h"
#include "models/mm/emoreason.h"

namespace tinyemo::cli {
namespace {

std::vector<std::string> split_labels(const std::string& s) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= s.size()) {
    const size_t end = std::min(s.find(',', begin), s.size());
    if (end > begin) out.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

struct ReasonOptions {
  MmModelOptions model;
  MmSamplingOptions sampling;
  std::string projector, clip, image, labels, anchors;
  bool json = false;
};

void run_reason(const ReasonOptions& o) {
  const mm::TinyLlavaModel model = o.model.load();
  projector::ProjectorModel projector = projector::ProjectorModel::load(o.projector);
  if (!o.anchors.empty()) {
    projector::AnchorSet a = projector::load_anchors(o.anchors, projector.hidden_dim());
    projector.set_anchors(std::move(a.labels), std::move(a.rows));
  }
  std::unique_ptr<clip::VisionModel> clip;
  if (!o.clip.empty()) clip = std::make_unique<clip::VisionModel>(clip::VisionModel::load(o.clip));
  mm::EmoReasoner reasoner(model, std::move(projector), std::move(clip));
  if (!o.labels.empty()) reasoner.set_labels(split_labels(o.labels));
  const Image image = load_image(o.image);

  lm::GenerateOptions g = o.sampling.options();
  const bool stream = !o.json;
  if (stream) {
    g.on_token = [](int32_t, std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  const mm::EmoReasonResult r = reasoner.reason(image, g);
  if (o.json) {
    nlohmann::json j = r.to_json();
    j["image"] = o.image;
    print_json(j);
    return;
  }
  std::printf("\n\nlabel (projector): %s", r.label.c_str());
  for (const auto& [label, p] : r.scores) std::printf("  %s %.3f", label.c_str(), p);
  std::printf("\nlabel (language model): %s (%s)\n", r.lm_label.empty() ? "-" : r.lm_label.c_str(),
              r.agreement ? "agrees" : "differs");
  std::fprintf(stderr, "time to first token %.2f s, total %.2f s%s\n", r.timings["time_to_first_token_s"].get<double>(),
               r.timings["total_s"].get<double>(), r.shared_forward ? ", one vision forward for both heads" : "");
}

const CommandRegistration kReason("reason", [](CLI::App& root) {
  auto o = std::make_shared<ReasonOptions>();
  auto* cmd = root.add_subcommand(
      "reason", "emotional reasoning on an image: Metric Projector label + the multimodal LM's explanation (TinyEmo)");
  o->model.add(cmd);
  o->sampling.add(cmd);
  cmd->add_option("--projector", o->projector, "Metric Projector (.safetensors, `tinyemo projector train/import`)")
      ->required();
  cmd->add_option("--clip", o->clip,
                  "the CLIP model the projector was trained on (with its visual projection); when its tower is the "
                  "model's, one forward serves both (default: the model's tower, if it has a projection)");
  cmd->add_option("--image", o->image, "JPEG, PNG or WebP file")->required();
  cmd->add_option("--labels", o->labels,
                  "comma-separated labels: a subset of the projector's, or any (anchored in the LM's embeddings)");
  cmd->add_option("--anchors", o->anchors, "replace the label set: safetensors with `anchors` [L, H] + `labels`");
  cmd->add_flag("--json", o->json, "print {label, scores, reasoning, lm_label, agreement, text, timings}");
  cmd->callback([o] { run_reason(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
