#include "models/clip/config.h"

#include "core/error.h"

namespace tinyemo::clip {

namespace {

std::string_view activation_name(Activation a) {
  switch (a) {
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_new";
  }
  return "?";
}

}  // namespace

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  fail("{}: hidden_act \"{}\" is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)", where, name);
}

void VisionConfig::validate(const std::string& where) const {
  TE_CHECK(hidden_size > 0 && intermediate_size > 0 && num_layers > 0 && num_heads > 0 && num_channels > 0 &&
               image_size > 0 && patch_size > 0 && projection_dim >= 0,
           "{}: vision config sizes must be positive (hidden {}, intermediate {}, layers {}, heads {}, channels {}, "
           "image {}, patch {}, projection {})",
           where, hidden_size, intermediate_size, num_layers, num_heads, num_channels, image_size, patch_size,
           projection_dim);
  TE_CHECK(hidden_size % num_heads == 0, "{}: hidden_size {} is not a multiple of num_attention_heads {}", where,
           hidden_size, num_heads);
  // image_size need not be a multiple of patch_size: the stride-p patch conv
  // ignores the last image_size % patch_size rows and columns, as in HF.
  TE_CHECK(patch_size <= image_size, "{}: patch_size {} is larger than image_size {}", where, patch_size, image_size);
  TE_CHECK(layer_norm_eps > 0.0f, "{}: layer_norm_eps must be positive", where);
}

double VisionConfig::flop_per_image() const {
  const double t = static_cast<double>(num_positions()), w = static_cast<double>(hidden_size);
  const double inter = static_cast<double>(intermediate_size);
  const double patch = 2.0 * static_cast<double>(num_patches()) * w * static_cast<double>(patch_dim());
  const double linears = 2.0 * t * (4.0 * w * w + 2.0 * w * inter);  // q, k, v, out; fc1, fc2
  const double attention = 2.0 * 2.0 * t * t * w;                     // q k^T and p v over all heads
  const double projection = 2.0 * w * static_cast<double>(projection_dim);
  return patch + static_cast<double>(num_layers) * (linears + attention) + projection;
}

nlohmann::json VisionConfig::to_json() const {
  return {{"family", family == VisionFamily::Clip ? "clip" : "siglip"},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"num_hidden_layers", num_layers},
          {"num_attention_heads", num_heads},
          {"num_channels", num_channels},
          {"image_size", image_size},
          {"patch_size", patch_size},
          {"projection_dim", projection_dim},
          {"layer_norm_eps", layer_norm_eps},
          {"hidden_act", activation_name(activation)}};
}

const std::vector<std::string>& named_vision_archs() {
  static const std::vector<std::string> names = {"vit-b-32", "vit-b-16", "vit-l-14", "vit-l-14-336"};
  return names;
}

VisionConfig named_vision_config(std::string_view arch) {
  VisionConfig c;  // ViT-B/32
  if (arch == "vit-b-32") return c;
  if (arch == "vit-b-16") {
    c.patch_size = 16;
    return c;
  }
  if (arch == "vit-l-14" || arch == "vit-l-14-336") {
    c.hidden_size = 1024;
    c.intermediate_size = 4096;
    c.num_layers = 24;
    c.num_heads = 16;
    c.patch_size = 14;
    c.projection_dim = 768;
    c.image_size = arch == "vit-l-14" ? 224 : 336;
    return c;
  }
  fail("unknown CLIP architecture \"{}\" (vit-b-32, vit-b-16, vit-l-14, vit-l-14-336)", arch);
}

namespace {

// The fields every HF vision config shares, over the defaults already in `c`.
VisionConfig read_vision_fields(const JsonObject& v, VisionConfig c, const std::string& default_act) {
  c.hidden_size = v.get_or<int64_t>("hidden_size", c.hidden_size);
  c.intermediate_size = v.get_or<int64_t>("intermediate_size", c.intermediate_size);
  c.num_layers = v.get_or<int64_t>("num_hidden_layers", c.num_layers);
  c.num_heads = v.get_or<int64_t>("num_attention_heads", c.num_heads);
  c.num_channels = v.get_or<int64_t>("num_channels", c.num_channels);
  c.image_size = v.get_or<int64_t>("image_size", c.image_size);
  c.patch_size = v.get_or<int64_t>("patch_size", c.patch_size);
  c.layer_norm_eps = static_cast<float>(v.get_or<double>("layer_norm_eps", c.layer_norm_eps));
  c.activation = parse_activation(v.get_or<std::string>("hidden_act", default_act), v.where());
  return c;
}

}  // namespace

VisionConfig vision_config_from_hf(const JsonObject& config) {
  nlohmann::json vision;
  int64_t projection_dim = 512;
  if (config.has("vision_config") || config.has("vision_config_dict")) {
    // CLIPModel: HF lets the older vision_config_dict override vision_config.
    if (config.has("vision_config")) vision = config.object("vision_config").json();
    if (config.has("vision_config_dict")) vision.update(config.object("vision_config_dict").json());
    projection_dim = config.get_or<int64_t>("projection_dim", projection_dim);
  } else {
    vision = config.json();  // CLIPVisionModel / CLIPVisionModelWithProjection
    projection_dim = config.get_or<int64_t>("projection_dim", projection_dim);
  }
  const JsonObject v(vision.is_null() ? nlohmann::json::object() : vision,
                     config.has("vision_config") ? config.where() + ": vision_config" : config.where());
  VisionConfig c = read_vision_fields(v, VisionConfig{}, "quick_gelu");
  c.projection_dim = projection_dim;
  c.validate(v.where());
  return c;
}

VisionConfig vision_config_from_hf_vision(const JsonObject& v) {
  const std::string type = v.get_or<std::string>("model_type", "");
  VisionConfig c;
  if (type == "clip_vision_model") {
    c = read_vision_fields(v, c, "quick_gelu");
    c.projection_dim = v.get_or<int64_t>("projection_dim", 0);
  } else if (type == "siglip_vision_model") {
    // SiglipVisionConfig's defaults.
    c.family = VisionFamily::Siglip;
    c.patch_size = 16;
    c.layer_norm_eps = 1e-6f;
    c = read_vision_fields(v, c, "gelu_pytorch_tanh");
    c.projection_dim = 0;  // SigLIP's pooled output is an attention head, not a projection
  } else {
    fail("{}: model_type \"{}\" is not a supported vision tower (clip_vision_model, siglip_vision_model)", v.where(),
         type);
  }
  c.validate(v.where());
  return c;
}

}  // namespace tinyemo::clip
