// ViT vision-tower hyper-parameters: CLIP (the named OpenAI architectures,
// Hugging Face CLIPModel / CLIPVisionModel[WithProjection] configs) and SigLIP
// (SiglipVisionModel: the tower TinyLLaVA's larger models use), and the exact
// multiply-add count of one forward pass.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace tinyemo::clip {

enum class Activation : uint8_t {
  QuickGelu,  // x * sigmoid(1.702 x): OpenAI's checkpoints ("quick_gelu")
  Gelu,       // exact erf GELU ("gelu"), used by some re-trained towers
  GeluTanh,   // tanh approximation ("gelu_new", "gelu_pytorch_tanh")
};

// A config.json hidden_act ("quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh",
// "gelu_fast"); errors name `where`.
Activation parse_activation(const std::string& name, const std::string& where);

// The two tower families share one transformer block (pre-LN, biased q/k/v/out,
// fc1 -> activation -> fc2) and differ only around it.
enum class VisionFamily : uint8_t {
  Clip,    // class token, learned positions, pre-LayerNorm, bias-free patch conv
  Siglip,  // no class token, learned positions, no pre-LayerNorm, biased patch conv
};

struct VisionConfig {
  VisionFamily family = VisionFamily::Clip;
  // Hugging Face CLIPVisionConfig defaults (ViT-B/32).
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t projection_dim = 512;  // 0: no visual projection (CLIPVisionModel)
  float layer_norm_eps = 1e-5f;
  Activation activation = Activation::QuickGelu;

  int64_t grid() const { return image_size / patch_size; }  // patches per side (floor, like the stride-p conv)
  int64_t num_patches() const { return grid() * grid(); }
  bool class_token() const { return family == VisionFamily::Clip; }
  bool pre_layernorm() const { return family == VisionFamily::Clip; }
  bool patch_bias() const { return family == VisionFamily::Siglip; }
  int64_t num_positions() const { return num_patches() + (class_token() ? 1 : 0); }  // tokens per image
  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t patch_dim() const { return num_channels * patch_size * patch_size; }

  // Throws naming `where` when the numbers cannot describe a ViT.
  void validate(const std::string& where) const;
  // Floating-point operations of one image's forward pass, counting each
  // multiply-add of every matrix product (patch embedding, the linears,
  // q k^T and p v, projection) as 2; norms and activations are not counted.
  double flop_per_image() const;
  nlohmann::json to_json() const;
};

// "vit-b-32", "vit-b-16", "vit-l-14", "vit-l-14-336" (OpenAI's released towers).
VisionConfig named_vision_config(std::string_view arch);
const std::vector<std::string>& named_vision_archs();

// The vision tower of a Hugging Face config.json: CLIPModel (vision_config,
// or the older vision_config_dict, plus a top-level projection_dim) or a
// CLIPVisionModel[WithProjection] config; missing fields take HF's defaults.
VisionConfig vision_config_from_hf(const JsonObject& config);

// A vision config object by its model_type: "clip_vision_model" (CLIPVisionConfig
// defaults; projection_dim only when the object names one) or
// "siglip_vision_model" (SiglipVisionConfig defaults: 768 wide, 12 layers,
// patch 16 at 224, gelu_pytorch_tanh, eps 1e-6; no projection). Other types are
// refused by name. This is how composite models (TinyLLaVA's vision_config) nest it.
VisionConfig vision_config_from_hf_vision(const JsonObject& vision);

}  // namespace tinyemo::clip
