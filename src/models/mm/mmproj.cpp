// llama.cpp's mmproj GGUF, both ways (see mmproj.h). Writing maps the
// TinyLLaVA parts to llama.cpp's names and keys after refusing what the llava
// graph would compute differently; reading maps the file back to the Hugging
// Face names the vision tower and connector readers check (shape, dtype,
// finiteness), with every key and every tensor either used or refused by name.
#include "models/mm/mmproj.h"

#include <array>
#include <cmath>
#include <set>

#include "core/error.h"
#include "io/gguf.h"
#include "models/clip/checkpoint.h"
#include "models/lm/gguf_model.h"
#include "models/mm/model.h"

namespace tinyemo::mm {

namespace {

// A block tensor's llama.cpp name (v.blk.N.<part>.<weight|bias>) and the
// Hugging Face CLIPEncoderLayer name it stands for. ffn_down holds fc1 and
// ffn_up fc2 in the converter's naming (see mmproj.h).
struct BlockPart {
  const char* llamacpp;
  const char* hf;
};
constexpr BlockPart kBlockParts[] = {
    {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
    {"attn_out", "self_attn.out_proj"}, {"ln1", "layer_norm1"},       {"ln2", "layer_norm2"},
    {"ffn_down", "mlp.fc1"},         {"ffn_up", "mlp.fc2"},
};

constexpr const char* kHfBase = "vision_model.";
constexpr const char* kConnectorPrefix = "connector.";

Tensor f32_vector(const std::vector<float>& v) { return Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v); }

Tensor as_dtype(const Tensor& t, DType d) { return t.dtype() == d ? t : t.to(d); }

// The llama.cpp keys a TinyLLaVA mmproj may carry and what tinyemo does with
// each; any other clip.* key names a feature tinyemo does not run.
const std::set<std::string>& known_keys() {
  static const std::set<std::string> keys = {
      "general.architecture",
      "clip.has_vision_encoder",
      "clip.has_text_encoder",
      "clip.has_audio_encoder",
      "clip.has_llava_projector",
      "clip.projector_type",
      "clip.use_gelu",
      "clip.use_silu",
      "clip.vision.image_size",
      "clip.vision.patch_size",
      "clip.vision.embedding_length",
      "clip.vision.feed_forward_length",
      "clip.vision.block_count",
      "clip.vision.projection_dim",
      "clip.vision.attention.head_count",
      "clip.vision.attention.head_count_kv",
      "clip.vision.attention.head_dim",
      "clip.vision.attention.layer_norm_epsilon",
      "clip.vision.image_mean",
      "clip.vision.image_std",
      "clip.vision.feature_layer",
      "clip.vision.image_aspect_ratio",
  };
  return keys;
}

uint32_t u32_of(int64_t v, const char* what) {
  TE_CHECK(v >= 0 && v <= UINT32_MAX, "mmproj: {} {} does not fit the file's uint32", what, v);
  return static_cast<uint32_t>(v);
}

}  // namespace

size_t save_mmproj_gguf(const TinyLlavaModel& model, const std::filesystem::path& out, DType matrix_dtype) {
  const TinyLlavaConfig& c = model.config();
  const clip::VisionModel& tower = model.vision();
  const clip::VisionConfig& v = tower.config();
  const clip::VisionWeights& w = tower.weights();
  const Connector& connector = model.connector();
  TE_CHECK(matrix_dtype == DType::F32 || matrix_dtype == DType::F16,
           "mmproj: matrices are written as f32 or f16 (llama.cpp's converter's choices), not {}",
           dtype_name(matrix_dtype));

  // What llama.cpp's llava graph cannot express, by name.
  TE_CHECK(connector.config().kind == ConnectorKind::Mlp && connector.config().depth == 2,
           "{}: connector_type \"{}\" cannot be written as llama.cpp's mmproj: its llava projector (projector_type "
           "mlp) is mm.0, GELU, mm.2; only mlp2x_gelu is that (a lone mm.0 would get a GELU after it)",
           c.where, c.connector.name);
  const bool cls = v.class_token();
  if (cls) {
    TE_CHECK(c.feature_select == clip::FeatureSelect::Patch,
             "{}: vision_feature_select_strategy \"cls_patch\" cannot be written as llama.cpp's mmproj: its llava "
             "graph always drops a CLIP tower's class token",
             c.where);
    TE_CHECK(v.pre_layernorm() && !v.patch_bias(), "{}: a CLIP tower has a pre-LayerNorm and no patch bias", c.where);
  } else {
    TE_CHECK(c.feature_select == clip::FeatureSelect::ClsPatch,
             "{}: vision_feature_select_strategy \"patch\" on a SigLIP tower (no class token) drops the first patch, "
             "which llama.cpp's llava graph cannot express (it keeps every row of a tower without a class token); "
             "only cls_patch can be written",
             c.where);
  }
  TE_CHECK(v.num_channels == 3, "{}: a {}-channel vision tower cannot be written as llama.cpp's mmproj (RGB only)",
           c.vision_config_where, v.num_channels);
  bool use_gelu = false;
  switch (v.activation) {
    case clip::Activation::QuickGelu: use_gelu = false; break;
    case clip::Activation::GeluTanh: use_gelu = true; break;
    case clip::Activation::Gelu:
      fail("{}: hidden_act \"gelu\" (exact erf) cannot be written as llama.cpp's mmproj: clip.use_gelu runs the tanh "
           "approximation (gelu_pytorch_tanh), quick_gelu is the other choice",
           c.vision_config_where);
  }
  const int64_t feature = tower.hidden_state_index(c.vision_feature_layer, c.where);
  TE_CHECK(feature >= 1,
           "{}: vision_feature_layer {} is the embeddings (hidden state 0); llama.cpp's llava graph reads the output "
           "of a block",
           c.where, c.vision_feature_layer);

  GgufWriter g;
  size_t count = 0;
  auto add = [&](const std::string& name, const Tensor& tensor) {
    g.add_tensor(name, tensor);
    ++count;
  };
  g.set("general.architecture", GgufValue::string("clip"));
  g.set("general.description", GgufValue::string("TinyLLaVA vision tower and connector (written by tinyemo)"));
  g.set("general.file_type", GgufValue::u32(matrix_dtype == DType::F16 ? 1 : 0));
  g.set("general.alignment", GgufValue::u32(32));
  g.set("clip.has_text_encoder", GgufValue::boolean(false));
  g.set("clip.has_vision_encoder", GgufValue::boolean(true));
  g.set("clip.has_llava_projector", GgufValue::boolean(true));
  g.set("clip.projector_type", GgufValue::string("mlp"));
  g.set("clip.use_gelu", GgufValue::boolean(use_gelu));
  g.set("clip.vision.image_size", GgufValue::u32(u32_of(v.image_size, "image_size")));
  g.set("clip.vision.patch_size", GgufValue::u32(u32_of(v.patch_size, "patch_size")));
  g.set("clip.vision.embedding_length", GgufValue::u32(u32_of(v.hidden_size, "hidden_size")));
  g.set("clip.vision.feed_forward_length", GgufValue::u32(u32_of(v.intermediate_size, "intermediate_size")));
  g.set("clip.vision.block_count", GgufValue::u32(u32_of(feature, "block count")));
  g.set("clip.vision.projection_dim", GgufValue::u32(u32_of(connector.out_features(), "projector width")));
  g.set("clip.vision.attention.head_count", GgufValue::u32(u32_of(v.num_heads, "num_attention_heads")));
  g.set("clip.vision.attention.layer_norm_epsilon", GgufValue::f32(v.layer_norm_eps));
  std::vector<float> mean, stdev;
  for (int ch = 0; ch < 3; ++ch) {
    mean.push_back(static_cast<float>(model.image_processor().image_mean[ch]));
    stdev.push_back(static_cast<float>(model.image_processor().image_std[ch]));
  }
  g.set("clip.vision.image_mean", GgufValue::f32_array(mean));
  g.set("clip.vision.image_std", GgufValue::f32_array(stdev));
  g.set("clip.vision.feature_layer", GgufValue::i32_array({static_cast<int32_t>(feature)}));
  g.set("clip.vision.image_aspect_ratio",
        GgufValue::string(c.image_aspect_ratio == AspectRatio::Pad ? "pad" : "square"));

  const int64_t hidden = v.hidden_size, p = v.patch_size;
  add("v.patch_embd.weight", as_dtype(w.patch, matrix_dtype).reshape({hidden, 3, p, p}));
  if (v.patch_bias()) add("v.patch_embd.bias", f32_vector(w.patch_bias));
  if (cls) add("v.class_embd", f32_vector(w.class_embedding));
  add("v.position_embd.weight",
               Tensor::from_vector<float>({v.num_positions(), hidden}, w.position_embedding));
  if (v.pre_layernorm()) {
    add("v.pre_ln.weight", f32_vector(w.pre_ln_weight));
    add("v.pre_ln.bias", f32_vector(w.pre_ln_bias));
  }
  for (int64_t i = 0; i < feature; ++i) {
    const clip::LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string b = "v.blk." + std::to_string(i) + ".";
    const std::pair<const char*, const Tensor*> matrices[] = {
        {"attn_q", &l.q}, {"attn_k", &l.k}, {"attn_v", &l.v}, {"attn_out", &l.out}, {"ffn_down", &l.fc1}, {"ffn_up", &l.fc2}};
    const std::pair<const char*, const std::vector<float>*> biases[] = {
        {"attn_q", &l.q_bias},   {"attn_k", &l.k_bias},     {"attn_v", &l.v_bias},
        {"attn_out", &l.out_bias}, {"ffn_down", &l.fc1_bias}, {"ffn_up", &l.fc2_bias}};
    for (const auto& [name, t] : matrices) add(b + name + ".weight", as_dtype(*t, matrix_dtype));
    for (const auto& [name, t] : biases) add(b + name + ".bias", f32_vector(*t));
    add(b + "ln1.weight", f32_vector(l.ln1_weight));
    add(b + "ln1.bias", f32_vector(l.ln1_bias));
    add(b + "ln2.weight", f32_vector(l.ln2_weight));
    add(b + "ln2.bias", f32_vector(l.ln2_bias));
  }
  const auto& layers = connector.layers();
  for (size_t k = 0; k < layers.size(); ++k) {
    const std::string m = "mm." + std::to_string(2 * k) + ".";
    add(m + "weight", as_dtype(layers[k].weight, matrix_dtype));
    add(m + "bias", f32_vector(layers[k].bias));
  }
  g.write(out);
  return count;
}

TinyLlavaModel TinyLlavaModel::load_llamacpp_pair(const std::filesystem::path& lm_gguf,
                                                  const std::filesystem::path& mmproj, const MmLoadOptions& options) {
  const GgufFile f = GgufFile::open(mmproj);
  const std::string& where = f.where();

  TE_CHECK(f.has("general.architecture") && f.value("general.architecture").type == GgufType::String &&
               f.get_string("general.architecture") == "clip",
           "{}: general.architecture is not \"clip\": not a llama.cpp mmproj (vision tower + projector)", where);
  // Keys: each read below, or refused here by name.
  for (const auto& [key, value] : f.metadata()) {
    if (known_keys().count(key) != 0 || key.rfind("general.", 0) == 0) continue;
    fail("{}: key \"{}\" names a llama.cpp feature a TinyLLaVA model does not have (tinyemo reads the LLaVA-1.5 "
         "layout: clip.projector_type mlp)",
         where, key);
  }
  TE_CHECK(f.has("clip.has_vision_encoder") && f.get_bool("clip.has_vision_encoder"),
           "{}: clip.has_vision_encoder is not true (no vision tower)", where);
  for (const char* key : {"clip.has_text_encoder", "clip.has_audio_encoder"}) {
    TE_CHECK(!f.has(key) || !f.get_bool(key), "{}: {} is true; tinyemo reads a vision-only mmproj", where, key);
  }
  TE_CHECK(!f.has("clip.has_llava_projector") || f.get_bool("clip.has_llava_projector"),
           "{}: clip.has_llava_projector is false (no projector)", where);
  TE_CHECK(f.has("clip.projector_type"), "{}: missing key clip.projector_type (llama.cpp requires it)", where);
  const std::string& projector = f.get_string("clip.projector_type");
  TE_CHECK(projector == "mlp",
           "{}: clip.projector_type \"{}\" is not supported: tinyemo runs llama.cpp's llava projector \"mlp\" "
           "(TinyLLaVA's mlp2x_gelu)",
           where, projector);
  const bool use_gelu = f.has("clip.use_gelu") && f.get_bool("clip.use_gelu");
  TE_CHECK(!(f.has("clip.use_silu") && f.get_bool("clip.use_silu")),
           "{}: clip.use_silu is true; CLIP/SigLIP towers use quick_gelu or gelu", where);

  auto required_uint = [&](const std::string& key) -> int64_t {
    TE_CHECK(f.has(key), "{}: missing key {} (llama.cpp requires it)", where, key);
    const uint64_t value = f.get_uint(key);
    // Sizes this large are no vision tower; refusing them keeps every product below in range.
    TE_CHECK(value <= (uint64_t{1} << 20), "{}: {} = {} is out of range", where, key, value);
    return static_cast<int64_t>(value);
  };
  clip::VisionConfig vc;
  vc.family = f.contains("v.class_embd") ? clip::VisionFamily::Clip : clip::VisionFamily::Siglip;
  vc.hidden_size = required_uint("clip.vision.embedding_length");
  vc.intermediate_size = required_uint("clip.vision.feed_forward_length");
  vc.num_layers = required_uint("clip.vision.block_count");
  vc.num_heads = required_uint("clip.vision.attention.head_count");
  vc.image_size = required_uint("clip.vision.image_size");
  vc.patch_size = required_uint("clip.vision.patch_size");
  vc.num_channels = 3;
  vc.projection_dim = 0;  // the tower's own projection: none in a llava mmproj
  required_uint("clip.vision.projection_dim");  // llama.cpp requires it; the llava graph does not use it
  TE_CHECK(f.has("clip.vision.attention.layer_norm_epsilon"),
           "{}: missing key clip.vision.attention.layer_norm_epsilon (llama.cpp requires it)", where);
  vc.layer_norm_eps = static_cast<float>(f.get_float("clip.vision.attention.layer_norm_epsilon"));
  TE_CHECK(std::isfinite(vc.layer_norm_eps), "{}: clip.vision.attention.layer_norm_epsilon is not finite", where);
  vc.activation = use_gelu ? clip::Activation::GeluTanh : clip::Activation::QuickGelu;
  vc.validate(where + " (llama.cpp keys)");
  if (f.has("clip.vision.attention.head_count_kv")) {
    TE_CHECK(static_cast<int64_t>(f.get_uint("clip.vision.attention.head_count_kv")) == vc.num_heads,
             "{}: clip.vision.attention.head_count_kv differs from head_count (a CLIP tower has no grouped heads)",
             where);
  }
  if (f.has("clip.vision.attention.head_dim")) {
    TE_CHECK(static_cast<int64_t>(f.get_uint("clip.vision.attention.head_dim")) == vc.head_dim(),
             "{}: clip.vision.attention.head_dim {} is not embedding_length / head_count = {}", where,
             f.get_uint("clip.vision.attention.head_dim"), vc.head_dim());
  }

  // Feature layer: llama.cpp's llava graph runs block_count - 1 blocks without
  // the key (the second-to-last hidden state of the file's blocks), k blocks with [k].
  int64_t feature = vc.num_layers - 1;
  if (f.has("clip.vision.feature_layer")) {
    const std::vector<int64_t> layers = f.get_int_array("clip.vision.feature_layer");
    TE_CHECK(layers.size() == 1,
             "{}: clip.vision.feature_layer lists {} layers; llama.cpp stacks several (granite), a TinyLLaVA "
             "connector reads one",
             where, layers.size());
    feature = layers[0];
  }
  TE_CHECK(feature >= 1 && feature <= vc.num_layers,
           "{}: the feature layer {} is not the output of one of the file's {} blocks (clip.vision.block_count, "
           "clip.vision.feature_layer)",
           where, feature, vc.num_layers);

  AspectRatio aspect = AspectRatio::Pad;  // LLaVA-1.5's and llama.cpp's: pad to a square
  if (f.has("clip.vision.image_aspect_ratio")) {
    const std::string& a = f.get_string("clip.vision.image_aspect_ratio");
    TE_CHECK(a == "pad" || a == "square", "{}: clip.vision.image_aspect_ratio \"{}\" is not supported (pad, square)",
             where, a);
    aspect = a == "pad" ? AspectRatio::Pad : AspectRatio::Square;
  }
  std::array<double, 3> mean{}, stdev{};
  for (const auto& [key, out] : {std::pair{"clip.vision.image_mean", &mean}, std::pair{"clip.vision.image_std", &stdev}}) {
    TE_CHECK(f.has(key), "{}: missing key {} (llama.cpp requires it)", where, key);
    const std::vector<double> values = f.get_float_array(key);
    TE_CHECK(values.size() == 3, "{}: {} has {} values, expected 3 (R, G, B)", where, key, values.size());
    for (int ch = 0; ch < 3; ++ch) {
      TE_CHECK(std::isfinite(values[ch]), "{}: {}[{}] is not finite", where, key, ch);
      (*out)[ch] = values[ch];
    }
  }
  for (int ch = 0; ch < 3; ++ch) TE_CHECK(stdev[ch] > 0.0, "{}: clip.vision.image_std[{}] must be positive", where, ch);

  // Tensors under the Hugging Face names the tower and connector readers check.
  // Which of ffn_down / ffn_up is fc1 follows clip.cpp: ffn_down holding
  // embedding_length-wide rows is fc1 (the converter's naming).
  clip::CheckpointTensors t;
  std::set<std::string> used;
  auto take = [&](const std::string& name, const std::string& hf) {
    if (!f.contains(name)) return;
    t.add(hf, f.get(name), where + " (llama.cpp tensor \"" + name + "\")");
    used.insert(name);
  };
  auto require = [&](const std::string& name, const std::string& why) {
    TE_CHECK(f.contains(name), "{}: missing tensor \"{}\" ({})", where, name, why);
  };
  const std::string base = kHfBase;
  require("v.patch_embd.weight", "the patch embedding");
  require("v.position_embd.weight", "the position embedding");
  take("v.patch_embd.weight", base + "embeddings.patch_embedding.weight");
  take("v.position_embd.weight", base + "embeddings.position_embedding.weight");
  if (vc.family == clip::VisionFamily::Clip) {
    require("v.pre_ln.weight", "a CLIP tower (v.class_embd present) has a pre-LayerNorm");
    require("v.pre_ln.bias", "a CLIP tower (v.class_embd present) has a pre-LayerNorm");
    TE_CHECK(!f.contains("v.patch_embd.bias"), "{}: tensor \"v.patch_embd.bias\" beside v.class_embd: a tower "
             "tinyemo does not know (CLIP has no patch bias)", where);
    take("v.class_embd", base + "embeddings.class_embedding");
    take("v.pre_ln.weight", base + "pre_layrnorm.weight");
    take("v.pre_ln.bias", base + "pre_layrnorm.bias");
  } else {
    require("v.patch_embd.bias", "a tower without v.class_embd is SigLIP's, which has a patch bias");
    TE_CHECK(!f.contains("v.pre_ln.weight"), "{}: tensor \"v.pre_ln.weight\" without v.class_embd: a tower tinyemo "
             "does not know (SigLIP has no pre-LayerNorm, CLIP has a class token)", where);
    take("v.patch_embd.bias", base + "embeddings.patch_embedding.bias");
  }
  for (int64_t i = 0; i < vc.num_layers; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    for (const BlockPart& part : kBlockParts) {
      for (const char* suffix : {"weight", "bias"}) {
        require(b + part.llamacpp + "." + suffix,
                fmt::format("clip.vision.block_count {}: llama.cpp's llava graph needs it", vc.num_layers));
      }
    }
    const Shape& down_shape = f.info(b + "ffn_down.weight").shape;
    const bool down_is_fc1 = !down_shape.empty() && down_shape.back() == vc.hidden_size;
    for (const BlockPart& part : kBlockParts) {
      std::string hf = part.hf;
      if (std::string(part.llamacpp) == "ffn_down") hf = down_is_fc1 ? "mlp.fc1" : "mlp.fc2";
      if (std::string(part.llamacpp) == "ffn_up") hf = down_is_fc1 ? "mlp.fc2" : "mlp.fc1";
      for (const char* suffix : {"weight", "bias"}) {
        take(b + part.llamacpp + "." + suffix, base + "encoder.layers." + std::to_string(i) + "." + hf + "." + suffix);
      }
    }
  }
  for (const char* name : {"mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"}) {
    require(name, "llama.cpp's llava projector is mm.0, GELU, mm.2; without mm.2 it is a Linear layer followed by "
                  "GELU, which no TinyLLaVA connector is");
  }
  take("mm.0.weight", std::string(kConnectorPrefix) + "0.weight");
  take("mm.0.bias", std::string(kConnectorPrefix) + "0.bias");
  take("mm.2.weight", std::string(kConnectorPrefix) + "2.weight");
  take("mm.2.bias", std::string(kConnectorPrefix) + "2.bias");
  for (const GgufTensorInfo& info : f.tensors()) {
    if (used.count(info.name) != 0) continue;
    if (info.name.rfind("v.post_ln.", 0) == 0) {
      fail("{}: tensor \"{}\": llama.cpp's llava graph applies the post-LayerNorm to the image features, which "
           "TinyLLaVA does not (it reads a hidden state before it)",
           where, info.name);
    }
    fail("{}: tensor \"{}\" is not part of a TinyLLaVA model as tinyemo runs it (clip.projector_type mlp, {} blocks)",
         where, info.name, vc.num_layers);
  }
  // TinyLLaVA reads hidden states only: the pooled head's post-LayerNorm, which
  // the reader requires, is the identity here (and the pooled output refused, see vision_hidden_state).
  t.add(base + "post_layernorm.weight", Tensor::from_vector<float>({vc.hidden_size}, std::vector<float>(vc.hidden_size, 1.0f)), where);
  t.add(base + "post_layernorm.bias", Tensor::zeros(DType::F32, {vc.hidden_size}), where);

  TinyLlavaModel m;
  // The tower first: every check of the mmproj runs before the LM is read.
  m.vision_ = clip::VisionModel::from_checkpoint(vc, where + " (llama.cpp keys)", t,
                                                 clip::TowerLocation{clip::CheckpointLayout::HuggingFace, ""});
  m.lm_ = std::make_unique<lm::LmModel>(lm::LmModel::load(lm_gguf, options.lm));
  TinyLlavaConfig& c = m.config_;
  c.where = where;
  c.model_type = "tinyllava";
  c.connector = parse_connector_type("mlp2x_gelu", where);
  c.hidden_size = m.lm_->config().hidden;
  c.vision_hidden_size = vc.hidden_size;
  c.vision_feature_layer = feature;
  c.feature_select = vc.family == clip::VisionFamily::Clip ? clip::FeatureSelect::Patch : clip::FeatureSelect::ClsPatch;
  c.image_aspect_ratio = aspect;
  c.text_config = m.lm_->hf_config();
  c.text_config_where = lm_gguf.string();
  c.vision = vc;
  c.vision_config_where = where;

  m.connector_ = Connector::from_checkpoint(c.connector, vc.hidden_size, m.lm_->config().hidden, t, kConnectorPrefix, where);
  m.check_parts();
  m.pooled_head_ = false;
  m.processor_ = clip::default_image_processor(vc);
  m.processor_.image_mean = mean;
  m.processor_.image_std = stdev;
  m.conversation_ = &choose_conversation(c, options.conversation, &m.conversation_source_);
  m.tokenizer_ = lm::find_lm_tokenizer(lm_gguf);
  m.description_ = fmt::format("llama.cpp pair ({} + mlp2x_gelu + {} {}): {} + {}",
                               vc.family == clip::VisionFamily::Siglip ? "SigLIP" : "CLIP",
                               lm::lm_arch_name(m.lm_->config().arch), dtype_name(m.lm_->token_embeddings().dtype()),
                               lm_gguf.string(), mmproj.string());
  return m;
}

}  // namespace tinyemo::mm
