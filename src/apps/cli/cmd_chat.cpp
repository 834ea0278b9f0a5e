// `tinyemo chat`: multi-turn conversation with a TinyLLaVA / TinyEmo model on
// stdin/stdout; `/image PATH` attaches an image to the next question (with
// --projector, its projector label is shown), `/reset` starts over, `/quit`
// or end of input leaves. Answers stream as they are generated.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "apps/cli/command.h"
#include "apps/cli/mm_options.h"
#include "io/image.h"
#include "models/clip/preprocess.h"
#include "models/mm/emoreason.h"
#include "models/projector/classify.h"

namespace tinyemo::cli {
namespace {

struct ChatOptions {
  MmModelOptions model;
  MmSamplingOptions sampling;
  std::string projector, clip;
};

void run_chat(const ChatOptions& o) {
  const mm::TinyLlavaModel model = o.model.load();
  std::optional<projector::ProjectorModel> projector;
  std::unique_ptr<clip::VisionModel> clip;
  if (!o.projector.empty()) {
    projector = projector::ProjectorModel::load(o.projector);
    if (!o.clip.empty()) clip = std::make_unique<clip::VisionModel>(clip::VisionModel::load(o.clip));
    const clip::VisionModel& tower = clip ? *clip : model.vision();
    TE_CHECK(tower.config().projection_dim == projector->input_dim(),
             "the projector takes {}-d CLIP image_embeds; give --clip, the CLIP model it was trained on",
             projector->input_dim());
  }
  model.require_tokenizer();
  const bool interactive = isatty(STDIN_FILENO);
  mm::Chat chat(model);
  lm::GenerateOptions g = o.sampling.options();
  g.on_token = [](int32_t, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  if (interactive) std::fprintf(stderr, "%s\n/image PATH attaches an image, /reset, /quit\n", model.description().c_str());
  std::string line;
  while (true) {
    if (interactive) std::fputs("> ", stderr);
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      chat.clear();
      continue;
    }
    if (line.rfind("/image", 0) == 0) {
      const std::string path = mm::python_strip(line.substr(6));
      try {
        const Image image = load_image(path);
        const Tensor pixels = model.preprocess(image);
        chat.add_image(model.encode_images(pixels)[0]);
        if (projector) {
          const clip::VisionModel& tower = clip ? *clip : model.vision();
          const Tensor clip_pixels = clip ? clip::clip_preprocess(image, tower.config().image_size) : pixels;
          const Tensor embeds = tower.forward(clip_pixels, {.hidden_states = false}).image_embeds;
          const projector::Scores s = projector::classify(*projector, embeds.data<float>(), 1);
          std::printf("[%s: %s]\n", path.c_str(), projector->labels()[s.predicted[0]].c_str());
        } else {
          std::printf("[%s attached]\n", path.c_str());
        }
      } catch (const Error& e) {
        std::fprintf(stderr, "tinyemo: error: %s\n", e.what());
      }
      std::fflush(stdout);
      continue;
    }
    if (mm::python_strip(line).empty()) continue;
    try {
      chat.ask(line, g);
      std::printf("\n");
    } catch (const Error& e) {
      std::fprintf(stderr, "tinyemo: error: %s\n", e.what());
      exit_code() = 1;
    }
    std::fflush(stdout);
  }
}

const CommandRegistration kChat("chat", [](CLI::App& root) {
  auto o = std::make_shared<ChatOptions>();
  auto* cmd = root.add_subcommand("chat", "multi-turn chat with a multimodal model; /image PATH attaches an image");
  o->model.add(cmd);
  o->sampling.add(cmd);
  cmd->add_option("--projector", o->projector, "Metric Projector: label each attached image");
  cmd->add_option("--clip", o->clip, "the CLIP model the projector was trained on (default: the model's tower)");
  cmd->callback([o] { run_chat(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
