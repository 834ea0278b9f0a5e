#include "models/clip/text_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/matmul.h"
#include "core/ops.h"

namespace tinyemo::clip {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The checkpoint names of the text tower, in either layout.
struct TextNames {
  CheckpointLayout layout;
  std::string prefix;

  bool hf() const { return layout == CheckpointLayout::HuggingFace; }
  std::string base() const { return hf() ? prefix + "text_model." : prefix; }
  std::string token_embedding() const {
    return base() + (hf() ? "embeddings.token_embedding.weight" : "token_embedding.weight");
  }
  std::string positions() const {
    return base() + (hf() ? "embeddings.position_embedding.weight" : "positional_embedding");
  }
  std::string layers() const { return base() + (hf() ? "encoder.layers." : "transformer.resblocks."); }
  std::string layer(int64_t i) const { return layers() + std::to_string(i) + "."; }
  std::string fc1(int64_t i) const { return layer(i) + (hf() ? "mlp.fc1.weight" : "mlp.c_fc.weight"); }
  std::string final_ln() const { return base() + (hf() ? "final_layer_norm." : "ln_final."); }
  std::string projection() const { return prefix + (hf() ? "text_projection.weight" : "text_projection"); }
};

TextNames names_of(const TextTowerLocation& where) { return TextNames{where.layout, where.prefix}; }

const Shape& shape_of(const CheckpointTensors& tensors, const std::string& name, const std::string& what) {
  const Tensor* t = tensors.find(name);
  TE_CHECK(t != nullptr, "{}: missing tensor {} (needed to infer the {})", tensors.file_of(name), name, what);
  return t->shape();
}

}  // namespace

void TextConfig::validate(const std::string& where) const {
  TE_CHECK(vocab_size > 0 && hidden_size > 0 && intermediate_size > 0 && num_layers > 0 && num_heads > 0 &&
               max_positions > 0 && projection_dim >= 0,
           "{}: text config sizes must be positive (vocab {}, hidden {}, intermediate {}, layers {}, heads {}, "
           "positions {}, projection {})",
           where, vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions, projection_dim);
  TE_CHECK(hidden_size % num_heads == 0, "{}: text hidden_size {} is not a multiple of num_attention_heads {}", where,
           hidden_size, num_heads);
  TE_CHECK(eos_token_id >= 0 && eos_token_id < vocab_size, "{}: eos_token_id {} is not a token of the {}-token vocabulary",
           where, eos_token_id, vocab_size);
  TE_CHECK(layer_norm_eps > 0.0f, "{}: layer_norm_eps must be positive", where);
}

nlohmann::json TextConfig::to_json() const {
  return {{"vocab_size", vocab_size},         {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
          {"num_attention_heads", num_heads}, {"max_position_embeddings", max_positions},
          {"projection_dim", projection_dim}, {"layer_norm_eps", layer_norm_eps},
          {"eos_token_id", eos_token_id}};
}

TextConfig text_config_from_hf(const JsonObject& config) {
  nlohmann::json text;
  const bool whole = config.has("text_config") || config.has("text_config_dict");
  if (whole) {
    // CLIPModel: HF lets the older text_config_dict override text_config.
    if (config.has("text_config")) text = config.object("text_config").json();
    if (config.has("text_config_dict")) text.update(config.object("text_config_dict").json());
  } else {
    text = config.json();  // CLIPTextModel / CLIPTextModelWithProjection
  }
  const JsonObject t(text.is_null() ? nlohmann::json::object() : text,
                     whole ? config.where() + ": text_config" : config.where());
  TextConfig c;
  c.vocab_size = t.get_or<int64_t>("vocab_size", c.vocab_size);
  c.hidden_size = t.get_or<int64_t>("hidden_size", c.hidden_size);
  c.intermediate_size = t.get_or<int64_t>("intermediate_size", c.intermediate_size);
  c.num_layers = t.get_or<int64_t>("num_hidden_layers", c.num_layers);
  c.num_heads = t.get_or<int64_t>("num_attention_heads", c.num_heads);
  c.max_positions = t.get_or<int64_t>("max_position_embeddings", c.max_positions);
  c.layer_norm_eps = static_cast<float>(t.get_or<double>("layer_norm_eps", c.layer_norm_eps));
  c.activation = parse_activation(t.get_or<std::string>("hidden_act", "quick_gelu"), t.where());
  c.eos_token_id = t.get_or<int64_t>("eos_token_id", c.eos_token_id);
  c.projection_dim = config.get_or<int64_t>("projection_dim", t.get_or<int64_t>("projection_dim", c.projection_dim));
  c.validate(t.where());
  return c;
}

TextTowerLocation locate_text_tower(const CheckpointTensors& tensors) {
  const std::string hf = "text_model.embeddings.token_embedding.weight";
  for (const auto& [name, tensor] : tensors.tensors()) {
    if (ends_with(name, hf)) return {CheckpointLayout::HuggingFace, name.substr(0, name.size() - hf.size())};
  }
  const std::string openai = "token_embedding.weight";
  for (const auto& [name, tensor] : tensors.tensors()) {
    if (!ends_with(name, openai)) continue;
    const std::string prefix = name.substr(0, name.size() - openai.size());
    if (tensors.contains(prefix + "positional_embedding") && tensors.contains(prefix + "ln_final.weight")) {
      return {CheckpointLayout::OpenAI, prefix};
    }
  }
  fail("{}: no CLIP text tower found (expected HF names like text_model.embeddings.token_embedding.weight or "
       "OpenAI names token_embedding.weight, positional_embedding, ln_final.*)",
       tensors.main_file());
}

TextConfig infer_text_config(const CheckpointTensors& tensors, const TextTowerLocation& where) {
  const TextNames names = names_of(where);
  TextConfig c;
  const Shape& tok = shape_of(tensors, names.token_embedding(), "vocabulary and hidden size");
  TE_CHECK(tok.size() == 2, "{}: tensor {} has shape {}, expected [vocab, hidden]", tensors.file_of(names.token_embedding()),
           names.token_embedding(), shape_str(tok));
  c.vocab_size = tok[0];
  c.hidden_size = tok[1];
  const Shape& pos = shape_of(tensors, names.positions(), "context length");
  TE_CHECK(pos.size() == 2 && pos[1] == c.hidden_size, "{}: tensor {} has shape {}, expected [context, {}]",
           tensors.file_of(names.positions()), names.positions(), shape_str(pos), c.hidden_size);
  c.max_positions = pos[0];
  c.num_layers = count_numbered(tensors, names.layers());
  TE_CHECK(c.num_layers > 0, "{}: no transformer blocks under {}", tensors.main_file(), names.layers());
  const Shape& fc1 = shape_of(tensors, names.fc1(0), "MLP size");
  TE_CHECK(fc1.size() == 2, "{}: tensor {} is not a matrix", tensors.file_of(names.fc1(0)), names.fc1(0));
  c.intermediate_size = fc1[0];
  // OpenAI's build_model: transformer_heads = transformer_width // 64.
  TE_CHECK(c.hidden_size >= 64 && c.hidden_size % 64 == 0,
           "{}: the text tower's width {} gives no head count by OpenAI's rule (width / 64); put the model's "
           "config.json beside the weights",
           tensors.main_file(), c.hidden_size);
  c.num_heads = c.hidden_size / 64;
  c.eos_token_id = c.vocab_size - 1;  // <|endoftext|>, the last token of CLIP's vocabulary
  c.projection_dim = 0;
  if (const Tensor* proj = tensors.find(names.projection()); proj != nullptr && proj->ndim() == 2) {
    c.projection_dim = where.layout == CheckpointLayout::HuggingFace ? proj->dim(0) : proj->dim(1);
  }
  c.validate("the tensor shapes in " + tensors.main_file());
  return c;
}

std::optional<float> read_logit_scale(const CheckpointTensors& tensors, const std::string& prefix) {
  const Tensor* t = tensors.find(prefix + "logit_scale");
  if (t == nullptr) return std::nullopt;
  TE_CHECK(t->numel() == 1, "{}: tensor {}logit_scale has shape {}, expected a scalar", tensors.file_of(prefix + "logit_scale"),
           prefix, shape_str(t->shape()));
  TE_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::F16 || t->dtype() == DType::BF16,
           "{}: tensor {}logit_scale has dtype {}, expected a float", tensors.file_of(prefix + "logit_scale"), prefix,
           dtype_name(t->dtype()));
  const float v = t->to_f32_vector()[0];
  TE_CHECK(std::isfinite(v), "{}: logit_scale is {}", tensors.file_of(prefix + "logit_scale"), v);
  return v;
}

TextModel TextModel::from_checkpoint(const TextConfig& config, const std::string& config_source,
                                     const CheckpointTensors& tensors, const TextTowerLocation& where) {
  config.validate(config_source);
  const TextNames names = names_of(where);
  const std::string tower = "CLIP text tower described by " + config_source;
  const int64_t w = config.hidden_size;
  const int64_t present = count_numbered(tensors, names.layers());
  TE_CHECK(present == config.num_layers, "{}: holds {} text transformer blocks, but {} says {}", tensors.main_file(),
           present, config_source, config.num_layers);
  TextModel m;
  m.config_ = config;
  TextWeights& wt = m.weights_;
  wt.token_embedding = require_weight(tensors, names.token_embedding(), {config.vocab_size, w}, tower);
  wt.position_embedding = require_weight(tensors, names.positions(), {config.max_positions, w}, tower).to_f32_vector();
  for (int64_t i = 0; i < config.num_layers; ++i) {
    wt.layers.push_back(read_encoder_layer(tensors, where.layout, names.layer(i), w, config.intermediate_size, tower));
  }
  wt.final_ln_weight = require_weight(tensors, names.final_ln() + "weight", {w}, tower).to_f32_vector();
  wt.final_ln_bias = require_weight(tensors, names.final_ln() + "bias", {w}, tower).to_f32_vector();
  for (const auto* v : {&wt.position_embedding, &wt.final_ln_weight, &wt.final_ln_bias}) {
    TE_CHECK(std::all_of(v->begin(), v->end(), [](float x) { return std::isfinite(x); }),
             "{}: the text tower's {} holds NaN or Inf", tensors.main_file(),
             v == &wt.position_embedding ? names.positions() : names.final_ln());
  }
  if (config.projection_dim > 0) {
    if (where.layout == CheckpointLayout::HuggingFace) {
      wt.projection = require_weight(tensors, names.projection(), {config.projection_dim, w}, tower);
    } else {
      // OpenAI multiplies x @ text_projection ([hidden, dim]); core::linear wants [dim, hidden].
      const std::vector<float> proj =
          require_weight(tensors, names.projection(), {w, config.projection_dim}, tower).to_f32_vector();
      wt.projection = Tensor::empty(DType::F32, {config.projection_dim, w});
      float* t = wt.projection.mutable_data<float>();
      for (int64_t i = 0; i < w; ++i) {
        for (int64_t j = 0; j < config.projection_dim; ++j) t[j * w + i] = proj[i * config.projection_dim + j];
      }
    }
  }
  m.logit_scale_ = read_logit_scale(tensors, where.prefix);
  m.description_ = fmt::format("{} text tower ({}) {}, config from {}",
                               where.layout == CheckpointLayout::HuggingFace ? "Hugging Face" : "OpenAI",
                               dtype_name(wt.token_embedding.dtype()), tensors.main_file(), config_source);
  return m;
}

TextModel TextModel::load(const std::filesystem::path& model) {
  const ModelFiles files = resolve_model_files(model);
  const CheckpointTensors tensors = CheckpointTensors::read(files.weights);
  const TextTowerLocation where = locate_text_tower(tensors);
  if (!files.config) {
    return from_checkpoint(infer_text_config(tensors, where), "the tensor shapes in " + files.weights.string(), tensors,
                           where);
  }
  const JsonObject json = JsonObject::load(*files.config);
  const std::string model_type = json.get_or<std::string>("model_type", "clip");
  TE_CHECK(model_type == "clip" || model_type == "clip_text_model" || json.has("text_config"),
           "{}: model_type \"{}\" is not a CLIP model (clip, clip_text_model)", files.config->string(), model_type);
  TextConfig config = text_config_from_hf(json);
  // A CLIPTextModel checkpoint has no projection whatever projection_dim says.
  if (!tensors.contains(names_of(where).projection())) config.projection_dim = 0;
  return from_checkpoint(config, files.config->string(), tensors, where);
}

TextOutputs TextModel::forward(const Tensor& input_ids) const {
  TE_CHECK(input_ids.ndim() == 1 || input_ids.ndim() == 2, "input_ids has shape {}, expected [T, L] or [L]",
           shape_str(input_ids.shape()));
  TE_CHECK(input_ids.dtype() == DType::I64 || input_ids.dtype() == DType::I32, "input_ids has dtype {}, expected I64 or I32",
           dtype_name(input_ids.dtype()));
  const int64_t rows = input_ids.ndim() == 1 ? 1 : input_ids.dim(0);
  const int64_t len = input_ids.dim(-1);
  std::vector<std::vector<int64_t>> ids(static_cast<size_t>(rows), std::vector<int64_t>(static_cast<size_t>(len)));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < len; ++j) {
      ids[r][j] = input_ids.dtype() == DType::I64 ? input_ids.data<int64_t>()[r * len + j]
                                                 : input_ids.data<int32_t>()[r * len + j];
    }
  }
  return forward(ids);
}

TextOutputs TextModel::forward(const std::vector<std::vector<int64_t>>& input_ids) const {
  const TextConfig& cfg = config_;
  const TextWeights& wt = weights_;
  const int64_t w = cfg.hidden_size;
  TE_CHECK(!input_ids.empty(), "CLIP text forward: no texts");
  TextOutputs out;
  // Where each text is pooled; causal attention means only tokens 0..pos matter.
  std::vector<int64_t> lengths;
  const bool argmax_rule = cfg.eos_token_id == cfg.vocab_size - 1 || cfg.eos_token_id == 2;
  for (size_t r = 0; r < input_ids.size(); ++r) {
    const auto& ids = input_ids[r];
    TE_CHECK(!ids.empty() && static_cast<int64_t>(ids.size()) <= cfg.max_positions,
             "text {}: {} tokens, but the text tower takes 1 to {}", r, ids.size(), cfg.max_positions);
    for (size_t j = 0; j < ids.size(); ++j) {
      TE_CHECK(ids[j] >= 0 && ids[j] < cfg.vocab_size, "text {}: token {} is id {}, outside the {}-token vocabulary", r,
               j, ids[j], cfg.vocab_size);
    }
    int64_t pos = 0;
    if (argmax_rule) {
      pos = std::max_element(ids.begin(), ids.end()) - ids.begin();  // the first maximum, as torch.argmax
    } else {
      const auto it = std::find(ids.begin(), ids.end(), cfg.eos_token_id);
      TE_CHECK(it != ids.end(), "text {}: no end token (id {}) to pool at", r, cfg.eos_token_id);
      pos = it - ids.begin();
    }
    out.pooled_positions.push_back(pos);
    lengths.push_back(pos + 1);
  }
  int64_t rows = 0;
  for (int64_t n : lengths) rows += n;
  std::vector<float> x(static_cast<size_t>(rows * w));
  int64_t row = 0;
  for (size_t r = 0; r < input_ids.size(); ++r) {
    for (int64_t j = 0; j < lengths[r]; ++j, ++row) {
      float* dst = x.data() + row * w;
      wt.token_embedding.row_to_f32(input_ids[r][j], dst);
      add_inplace(dst, wt.position_embedding.data() + j * w, w);
    }
  }
  const EncoderShape shape{w, cfg.num_heads, cfg.intermediate_size, cfg.layer_norm_eps, cfg.activation,
                           /*causal=*/true};
  EncoderScratch scratch;
  for (const LayerWeights& layer : wt.layers) encoder_block(layer, shape, lengths, x.data(), scratch);

  const auto texts = static_cast<int64_t>(input_ids.size());
  out.pooled_output = Tensor::empty(DType::F32, {texts, w});
  float* pooled = out.pooled_output.mutable_data<float>();
  int64_t end = 0;
  for (int64_t r = 0; r < texts; ++r) {
    end += lengths[r];
    layer_norm(x.data() + (end - 1) * w, 1, w, wt.final_ln_weight.data(), wt.final_ln_bias.data(), cfg.layer_norm_eps,
               pooled + r * w);
  }
  if (wt.projection.defined() && cfg.projection_dim > 0) {
    out.text_embeds = Tensor::empty(DType::F32, {texts, cfg.projection_dim});
    linear(pooled, texts, wt.projection, nullptr, out.text_embeds.mutable_data<float>());
  }
  return out;
}

}  // namespace tinyemo::clip
