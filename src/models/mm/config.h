// TinyLLaVA's config.json (TinyLLaVA Factory's TinyLlavaConfig; TinyEmo's
// reasoning models use it with model_type "tinyemo"): the connector, which
// vision hidden state feeds it, the image aspect handling, the image
// placeholder id, the truncation length, the conversation template, and the
// two parts' configs (nested text_config / vision_config as TinyLLaVA Factory
// saves them, or local folders they name). Every field is read; values
// tinyemo cannot run are refused by name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "io/json.h"
#include "models/clip/config.h"
#include "models/clip/vision_model.h"

namespace tinyemo::mm {

enum class ConnectorKind : uint8_t {
  Mlp,       // mlp{N}x_gelu: N Linear layers with exact (erf) GELU between them
  Linear,    // one Linear
  Identity,  // vision rows as they are
};

struct ConnectorConfig {
  ConnectorKind kind = ConnectorKind::Mlp;
  int64_t depth = 2;  // Linear layers (Mlp); 1 for Linear, 0 for Identity
  std::string name;   // as in config.json, e.g. "mlp2x_gelu"
};

// TinyLLaVA Factory's connector_type names: mlp{N}x_gelu (N >= 1), linear,
// identity. Its other connectors (resampler, qformer, mof_mlp, ...) are refused by name.
ConnectorConfig parse_connector_type(const std::string& name, const std::string& where);

enum class AspectRatio : uint8_t {
  Square,  // the image processor as is
  Pad,     // expand to a square filled with the processor's mean colour first
};

struct TinyLlavaConfig {
  std::string where;       // the config.json, for errors
  std::string model_type;  // "tinyllava" or "tinyemo"
  ConnectorConfig connector;
  int64_t hidden_size = 0;         // the LM's width (top-level hidden_size)
  int64_t vision_hidden_size = 0;  // the tower's width (top-level vision_hidden_size)
  int64_t vision_feature_layer = -2;
  clip::FeatureSelect feature_select = clip::FeatureSelect::Patch;
  AspectRatio image_aspect_ratio = AspectRatio::Square;
  int32_t image_token_index = -200;
  // The spliced sequence is cut to this many positions, as
  // prepare_inputs_labels_for_multimodal does.
  int64_t tokenizer_model_max_length = 2048;
  std::string tokenizer_padding_side = "right";  // batch 1: no padding happens
  std::string conv_version;                       // the template, "" when the config names none

  nlohmann::json text_config;  // the LM's config.json (architectures filled in from model_type)
  std::string text_config_where;
  clip::VisionConfig vision;
  std::string vision_config_where;

  nlohmann::json to_json() const;
};

// Parses `config` (the config.json of the folder `dir`). text_config and
// vision_config are nested objects, or — as TinyLLaVA Factory reads them from
// llm_model_name_or_path / vision_model_name_or_path — local folders with a
// config.json (relative to `dir` or absolute); hub names cannot be fetched and
// are refused naming the field. Errors name the file and the field.
TinyLlavaConfig parse_tinyllava_config(const JsonObject& config, const std::filesystem::path& dir);

}  // namespace tinyemo::mm
