#include "models/mm/config.h"

#include <climits>
#include <regex>

#include "core/error.h"

namespace tinyemo::mm {

namespace {

// The causal-LM class of a text_config that names only its model_type (what
// TinyLLaVA Factory's LLMFactory picks for it).
std::string architecture_of(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "phi") return "PhiForCausalLM";
  if (model_type == "openelm") return "OpenELMForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "gemma") return "GemmaForCausalLM";
  return "";
}

// A sub-config: the nested object, else the config.json of a local folder
// named by `path_key` (relative to the model folder or absolute).
nlohmann::json sub_config(const JsonObject& c, const std::filesystem::path& dir, const std::string& key,
                          const std::string& path_key, std::string* where) {
  if (c.has(key)) {
    *where = c.where() + ": " + key;
    return c.object(key).json();
  }
  const std::string name = c.get_or<std::string>(path_key, "");
  TE_CHECK(!name.empty(), "{}: no \"{}\" object and no \"{}\" naming a folder with its config.json", c.where(), key,
           path_key);
  std::error_code ec;
  for (const std::filesystem::path& folder : {dir / name, std::filesystem::path(name)}) {
    if (std::filesystem::is_regular_file(folder / "config.json", ec)) {
      *where = (folder / "config.json").string();
      return JsonObject::load(folder / "config.json").json();
    }
  }
  fail("{}: no \"{}\" object, and \"{}\" = \"{}\" is not a local folder with a config.json (tinyemo fetches nothing "
       "from a model hub: put the {} into config.json or the folder beside it)",
       c.where(), key, path_key, name, key);
}

int64_t integer_field(const JsonObject& c, const std::string& key, int64_t fallback) {
  if (!c.has(key)) return fallback;
  const nlohmann::json& v = c.json().at(key);
  TE_CHECK(v.is_number_integer(), "{}: field \"{}\" must be an integer, found {}", c.where(), key, v.dump());
  TE_CHECK(v.is_number_unsigned() ? v.get<uint64_t>() <= (1ull << 40) : v.get<int64_t>() >= -(int64_t{1} << 40),
           "{}: field \"{}\" = {} is out of range", c.where(), key, v.dump());
  return v.get<int64_t>();
}

}  // namespace

ConnectorConfig parse_connector_type(const std::string& name, const std::string& where) {
  ConnectorConfig c;
  c.name = name;
  static const std::regex mlp(R"(^mlp(\d+)x_gelu$)");
  std::smatch m;
  if (std::regex_match(name, m, mlp)) {
    TE_CHECK(m[1].length() <= 4 && std::stoll(m[1]) >= 1 && std::stoll(m[1]) <= 64,
             "{}: connector_type \"{}\": the depth must be 1 .. 64", where, name);
    c.kind = ConnectorKind::Mlp;
    c.depth = std::stoll(m[1]);
  } else if (name == "linear") {
    c.kind = ConnectorKind::Linear;
    c.depth = 1;
  } else if (name == "identity") {
    c.kind = ConnectorKind::Identity;
    c.depth = 0;
  } else {
    fail("{}: connector_type \"{}\" is not supported (mlp{{N}}x_gelu, linear, identity)", where, name);
  }
  return c;
}

TinyLlavaConfig parse_tinyllava_config(const JsonObject& c, const std::filesystem::path& dir) {
  TinyLlavaConfig cfg;
  cfg.where = c.where();
  cfg.model_type = c.get_or<std::string>("model_type", "");
  TE_CHECK(cfg.model_type == "tinyllava" || cfg.model_type == "tinyemo",
           "{}: model_type \"{}\" is not a TinyLLaVA model (tinyllava, tinyemo)", c.where(), cfg.model_type);
  TE_CHECK(c.has("connector_type"), "{}: missing field \"connector_type\"", c.where());
  cfg.connector = parse_connector_type(c.get<std::string>("connector_type"), c.where());

  cfg.vision_feature_layer = integer_field(c, "vision_feature_layer", -2);
  cfg.feature_select =
      clip::parse_feature_select(c.get_or<std::string>("vision_feature_select_strategy", "patch"), c.where());
  const std::string aspect = c.get_or<std::string>("image_aspect_ratio", "square");
  if (aspect == "square") {
    cfg.image_aspect_ratio = AspectRatio::Square;
  } else if (aspect == "pad") {
    cfg.image_aspect_ratio = AspectRatio::Pad;
  } else {
    fail("{}: image_aspect_ratio \"{}\" is not supported (square, pad)", c.where(), aspect);
  }
  const int64_t image_token = integer_field(c, "image_token_index", -200);
  TE_CHECK(image_token < 0 && image_token >= INT32_MIN,
           "{}: image_token_index {} must be negative (TinyLLaVA marks the image with -200, outside the vocabulary)",
           c.where(), image_token);
  cfg.image_token_index = static_cast<int32_t>(image_token);
  cfg.tokenizer_model_max_length = integer_field(c, "tokenizer_model_max_length", 2048);
  TE_CHECK(cfg.tokenizer_model_max_length > 0, "{}: tokenizer_model_max_length must be positive, got {}", c.where(),
           cfg.tokenizer_model_max_length);
  cfg.tokenizer_padding_side = c.get_or<std::string>("tokenizer_padding_side", "right");
  TE_CHECK(cfg.tokenizer_padding_side == "right" || cfg.tokenizer_padding_side == "left",
           "{}: tokenizer_padding_side \"{}\" must be right or left", c.where(), cfg.tokenizer_padding_side);
  cfg.conv_version = c.get_or<std::string>("conv_version", "");
  TE_CHECK(c.get_or<std::string>("vision_model_name_or_path2", "").empty(),
           "{}: vision_model_name_or_path2 names a second vision tower (TinyLLaVA's MoF); one tower is supported",
           c.where());

  // The language model.
  cfg.text_config = sub_config(c, dir, "text_config", "llm_model_name_or_path", &cfg.text_config_where);
  TE_CHECK(cfg.text_config.is_object(), "{}: not an object", cfg.text_config_where);
  if (!cfg.text_config.contains("architectures")) {
    const std::string type = cfg.text_config.value("model_type", "");
    const std::string arch = architecture_of(type);
    TE_CHECK(!arch.empty(), "{}: no \"architectures\" and model_type \"{}\" names no supported LM", cfg.text_config_where,
             type);
    cfg.text_config["architectures"] = {arch};
  }
  const JsonObject text(cfg.text_config, cfg.text_config_where);
  const int64_t text_hidden = text.has("hidden_size") ? integer_field(text, "hidden_size", 0)
                                                      : integer_field(text, "model_dim", 0);
  cfg.hidden_size = integer_field(c, "hidden_size", text_hidden);
  TE_CHECK(cfg.hidden_size == text_hidden,
           "{}: hidden_size {} disagrees with the language model's width {} ({})", c.where(), cfg.hidden_size,
           text_hidden, cfg.text_config_where);

  // The vision tower: TinyLLaVA Factory picks the tower class by name when the
  // saved vision_config has no model_type.
  nlohmann::json vision = sub_config(c, dir, "vision_config", "vision_model_name_or_path", &cfg.vision_config_where);
  TE_CHECK(vision.is_object(), "{}: not an object", cfg.vision_config_where);
  if (!vision.contains("model_type")) {
    const std::string name = c.get_or<std::string>("vision_model_name_or_path", "");
    if (name.find("siglip") != std::string::npos) {
      vision["model_type"] = "siglip_vision_model";
    } else if (name.find("clip") != std::string::npos) {
      vision["model_type"] = "clip_vision_model";
    }
  }
  cfg.vision = clip::vision_config_from_hf_vision(JsonObject(vision, cfg.vision_config_where));
  cfg.vision_hidden_size = integer_field(c, "vision_hidden_size", cfg.vision.hidden_size);
  TE_CHECK(cfg.vision_hidden_size == cfg.vision.hidden_size,
           "{}: vision_hidden_size {} disagrees with the vision tower's hidden_size {} ({})", c.where(),
           cfg.vision_hidden_size, cfg.vision.hidden_size, cfg.vision_config_where);
  const int64_t n = cfg.vision.num_layers;
  TE_CHECK(cfg.vision_feature_layer >= -(n + 1) && cfg.vision_feature_layer <= n,
           "{}: vision_feature_layer {} is not a hidden state of the {}-layer vision tower ({} .. {})", c.where(),
           cfg.vision_feature_layer, n, -(n + 1), n);
  return cfg;
}

nlohmann::json TinyLlavaConfig::to_json() const {
  return {{"model_type", model_type},
          {"connector_type", connector.name},
          {"hidden_size", hidden_size},
          {"vision_hidden_size", vision_hidden_size},
          {"vision_feature_layer", vision_feature_layer},
          {"vision_feature_select_strategy", clip::feature_select_name(feature_select)},
          {"image_aspect_ratio", image_aspect_ratio == AspectRatio::Pad ? "pad" : "square"},
          {"image_token_index", image_token_index},
          {"tokenizer_model_max_length", tokenizer_model_max_length},
          {"conv_version", conv_version},
          {"vision_config", vision.to_json()}};
}

}  // namespace tinyemo::mm
