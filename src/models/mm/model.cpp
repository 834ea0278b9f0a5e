#include "models/mm/model.h"

#include <algorithm>

#include "core/error.h"
#include "io/json.h"
#include "models/clip/preprocess.h"
#include "models/lm/embeddings.h"
#include "models/lm/gguf_model.h"
#include "models/lm/weights.h"

namespace tinyemo::mm {

namespace {

constexpr const char* kVisionPrefix = "vision_tower._vision_tower.";
constexpr const char* kConnectorPrefix = "connector._connector.";
constexpr const char* kLanguagePrefix = "language_model.";

// The checkpoint's tensors (read once, mapped) as the LM binder's weight source.
class CheckpointWeights : public lm::WeightSource {
 public:
  explicit CheckpointWeights(const clip::CheckpointTensors& t) : t_(t) {}
  bool contains(const std::string& name) const override { return t_.contains(name); }
  Tensor get(const std::string& name) const override { return *t_.find(name); }
  std::string where(const std::string& name) const override { return t_.file_of(name); }

 private:
  const clip::CheckpointTensors& t_;
};

std::filesystem::path weights_file(const std::filesystem::path& dir) {
  for (const char* name : {"model.safetensors", "model.safetensors.index.json"}) {
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  }
  fail("{}: no model.safetensors or model.safetensors.index.json (TinyLLaVA Factory's save_pretrained layout)",
       dir.string());
}

bool has_tokenizer_files(const std::filesystem::path& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "vocab.json"}) {
    if (std::filesystem::is_regular_file(dir / name)) return true;
  }
  return false;
}

}  // namespace

TinyLlavaModel::~TinyLlavaModel() = default;

const ConversationTemplate& choose_conversation(const TinyLlavaConfig& config, const std::string& requested,
                                                std::string* source) {
  if (!requested.empty()) {
    *source = "requested";
    return conversation_template(requested);
  }
  if (!config.conv_version.empty()) {
    *source = config.where + ": conv_version";
    try {
      return conversation_template(config.conv_version);
    } catch (const Error& e) {
      fail("{}: {}", config.where, e.what());
    }
  }
  const std::string type = config.text_config.value("model_type", "");
  const std::string name = default_template_for(type);
  TE_CHECK(!name.empty(), "{}: no conv_version, and the LM model_type \"{}\" has no default template; choose one "
           "of llama, phi, gemma, qwen2_base, qwen2_instruct, pretrain", config.where, type);
  *source = "the LM's model_type \"" + type + "\"";
  return conversation_template(name);
}

const lm::Tokenizer& TinyLlavaModel::require_tokenizer() const {
  TE_CHECK(tokenizer_ != nullptr,
           "the model has no tokenizer (tokenizer.model, tokenizer.json or vocab.json + merges.txt in its folder); "
           "prompts given as text need one");
  return *tokenizer_;
}

void TinyLlavaModel::check_parts() const {
  const int64_t lm_width = lm_->config().hidden;
  TE_CHECK(vision_.config().hidden_size == connector_.in_features(),
           "{}: the vision tower is {} wide (vision_config), but the connector takes {}-wide rows", config_.where,
           vision_.config().hidden_size, connector_.in_features());
  TE_CHECK(connector_.out_features() == lm_width,
           "{}: the connector gives {}-wide rows, but the language model ({}) is {} wide", config_.where,
           connector_.out_features(), lm_->config().where, lm_width);
  TE_CHECK(config_.hidden_size == lm_width, "{}: hidden_size {} disagrees with the language model's width {}",
           config_.where, config_.hidden_size, lm_width);
}

TinyLlavaModel TinyLlavaModel::load(const std::filesystem::path& dir, const MmLoadOptions& options) {
  if (!options.mmproj.empty()) {
    TE_CHECK(options.language_model.empty(),
             "{}: a llama.cpp pair (--mmproj) carries its language model; --language-model does not apply",
             options.mmproj.string());
    return load_llamacpp_pair(dir, options.mmproj, options);
  }
  TE_CHECK(std::filesystem::is_directory(dir), "{}: not a model folder (config.json + model.safetensors)",
           dir.string());
  const JsonObject json = JsonObject::load(dir / "config.json");
  TinyLlavaModel m;
  m.config_ = parse_tinyllava_config(json, dir);
  const TinyLlavaConfig& c = m.config_;
  const auto file = weights_file(dir);
  const clip::CheckpointTensors tensors = clip::CheckpointTensors::read(file);

  // Vision tower: HF names under the TinyLLaVA prefix.
  const clip::TowerLocation where{clip::CheckpointLayout::HuggingFace, kVisionPrefix};
  // A CLIPVisionConfig may name a projection_dim, but TinyLLaVA's tower
  // (CLIPVisionModel) carries no visual projection unless the file has one.
  if (!tensors.contains(std::string(kVisionPrefix) + "visual_projection.weight")) m.config_.vision.projection_dim = 0;
  TE_CHECK(tensors.contains(std::string(kVisionPrefix) + "vision_model.embeddings.patch_embedding.weight"),
           "{}: no vision tower under {}vision_model.* (TinyLLaVA Factory's layout)", file.string(), kVisionPrefix);
  m.vision_ = clip::VisionModel::from_checkpoint(c.vision, c.vision_config_where, tensors, where);

  // Language model: the checkpoint's language_model.*, or a replacement.
  if (options.language_model.empty()) {
    const JsonObject text(c.text_config, c.text_config_where);
    lm::LmConfig lm_config = lm::parse_lm_config(text);
    m.lm_ = std::make_unique<lm::LmModel>(
        lm::LmModel::bind(std::move(lm_config), c.text_config, CheckpointWeights(tensors), options.lm, kLanguagePrefix));
  } else {
    m.lm_ = std::make_unique<lm::LmModel>(lm::LmModel::load(options.language_model, options.lm));
    const lm::LmConfig& got = m.lm_->config();
    const JsonObject text(c.text_config, c.text_config_where);
    const lm::LmConfig want = lm::parse_lm_config(text);
    TE_CHECK(got.hidden == want.hidden && got.vocab == want.vocab && got.n_layers() == want.n_layers() &&
                 got.arch == want.arch,
             "{}: the language model ({} {}, hidden {}, vocabulary {}, {} layers) is not the one {} describes ({} {}, "
             "hidden {}, vocabulary {}, {} layers)",
             options.language_model.string(), lm::lm_arch_name(got.arch), got.architecture, got.hidden, got.vocab,
             got.n_layers(), c.text_config_where, lm::lm_arch_name(want.arch), want.architecture, want.hidden, want.vocab,
             want.n_layers());
  }
  m.connector_ = Connector::from_checkpoint(c.connector, m.vision_.config().hidden_size, m.lm_->config().hidden,
                                            tensors, kConnectorPrefix, c.where);
  m.check_parts();

  m.processor_ = std::filesystem::is_regular_file(dir / "preprocessor_config.json")
                     ? clip::image_processor_from_hf(JsonObject::load(dir / "preprocessor_config.json"))
                     : clip::default_image_processor(c.vision);
  m.conversation_ = &choose_conversation(c, options.conversation, &m.conversation_source_);
  if (has_tokenizer_files(dir)) {
    m.tokenizer_ = lm::Tokenizer::load(dir);
  } else if (!options.language_model.empty() && !lm::lm_tokenizer_files(options.language_model).empty()) {
    m.tokenizer_ = lm::load_lm_tokenizer(options.language_model);
  }
  m.description_ = fmt::format("{} ({} + {} + {} {}) from {}", c.model_type,
                               c.vision.family == clip::VisionFamily::Siglip ? "SigLIP" : "CLIP", c.connector.name,
                               lm::lm_arch_name(m.lm_->config().arch), dtype_name(m.lm_->token_embeddings().dtype()),
                               dir.string());
  return m;
}

TinyLlavaModel TinyLlavaModel::from_parts(TinyLlavaConfig config, clip::VisionModel vision, Connector connector,
                                          lm::LmModel lm, std::unique_ptr<lm::Tokenizer> tokenizer,
                                          const std::string& conversation) {
  TinyLlavaModel m;
  m.config_ = std::move(config);
  m.vision_ = std::move(vision);
  m.connector_ = std::move(connector);
  m.lm_ = std::make_unique<lm::LmModel>(std::move(lm));
  m.check_parts();
  m.processor_ = clip::default_image_processor(m.vision_.config());
  m.conversation_ = &choose_conversation(m.config_, conversation, &m.conversation_source_);
  m.tokenizer_ = std::move(tokenizer);
  m.description_ = "assembled from parts";
  return m;
}

Tensor TinyLlavaModel::preprocess(const Image& image) const {
  if (config_.image_aspect_ratio == AspectRatio::Square) return clip::hf_preprocess(image, processor_);
  // ImagePreprocess.expand2square: background tuple(int(x * 255) for x in image_mean).
  std::array<uint8_t, 3> background{};
  for (int ch = 0; ch < 3; ++ch) {
    const double v = processor_.image_mean[ch] * 255.0;
    background[ch] = static_cast<uint8_t>(std::clamp(static_cast<int64_t>(v), int64_t{0}, int64_t{255}));
  }
  const Image rgb = image.mode == ImageMode::RGB ? image : clip::convert_to_rgb_like_pillow(image);
  return clip::hf_preprocess(clip::expand_to_square(rgb, background), processor_);
}

Tensor TinyLlavaModel::vision_hidden_state(const Tensor& pixel_values, clip::VisionOutputs* vision_outputs) const {
  TE_CHECK(vision_outputs == nullptr || pooled_head_,
           "{}: the vision tower of a llama.cpp mmproj has no post-LayerNorm, so no pooled image embedding (TinyEmo's "
           "projector input); use the TinyLLaVA folder",
           config_.where);
  clip::VisionOutputs out =
      vision_.forward(pixel_values, {.hidden_states = false},
                      clip::FeatureRequest{.layer = config_.vision_feature_layer, .pooled = vision_outputs != nullptr});
  Tensor hidden = std::move(out.feature_hidden_state);
  if (vision_outputs != nullptr) *vision_outputs = std::move(out);
  return hidden;
}

std::vector<Tensor> TinyLlavaModel::image_features_from_hidden(const Tensor& hidden) const {
  TE_CHECK(hidden.ndim() == 3, "image features: expected hidden states [B, tokens, width], got {}",
           shape_str(hidden.shape()));
  std::vector<Tensor> out;
  for (int64_t b = 0; b < hidden.dim(0); ++b) {
    out.push_back(connector_.forward(clip::select_feature_tokens(hidden, b, config_.feature_select)));
  }
  return out;
}

std::vector<Tensor> TinyLlavaModel::encode_images(const Tensor& pixel_values) const {
  return image_features_from_hidden(vision_hidden_state(pixel_values));
}

SplicedInput TinyLlavaModel::splice(std::span<const int32_t> ids, const std::vector<Tensor>& image_features) const {
  int64_t markers = 0;
  for (int32_t id : ids) markers += id == config_.image_token_index ? 1 : 0;
  TE_CHECK(markers == static_cast<int64_t>(image_features.size()),
           "the prompt has {} image placeholder(s) ({}), but {} image(s) were given", markers,
           config_.image_token_index, image_features.size());
  SplicedInput in;
  in.embeddings = embed_with_inserted(*lm_, ids, config_.image_token_index, image_features);
  in.spliced_length = in.embeddings.dim(0);
  if (in.spliced_length > config_.tokenizer_model_max_length) {
    in.truncated = in.spliced_length - config_.tokenizer_model_max_length;
    in.embeddings = in.embeddings.rows(0, config_.tokenizer_model_max_length).clone();
  }
  return in;
}

std::vector<int32_t> TinyLlavaModel::prompt_ids(const std::vector<Turn>& turns) const {
  return tokenize_with_images(require_tokenizer(), render_prompt(*conversation_, turns), config_.image_token_index);
}

}  // namespace tinyemo::mm
