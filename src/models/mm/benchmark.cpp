#include "models/mm/benchmark.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "models/lm/presets.h"
#include "models/mm/session.h"

namespace tinyemo::mm {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string hf_activation(clip::Activation a) {
  switch (a) {
    case clip::Activation::QuickGelu: return "quick_gelu";
    case clip::Activation::Gelu: return "gelu";
    case clip::Activation::GeluTanh: return "gelu_pytorch_tanh";
  }
  return "?";
}

nlohmann::json hf_vision_config(const clip::VisionConfig& v) {
  return {{"model_type", v.family == clip::VisionFamily::Siglip ? "siglip_vision_model" : "clip_vision_model"},
          {"hidden_size", v.hidden_size},
          {"intermediate_size", v.intermediate_size},
          {"num_hidden_layers", v.num_layers},
          {"num_attention_heads", v.num_heads},
          {"num_channels", v.num_channels},
          {"image_size", v.image_size},
          {"patch_size", v.patch_size},
          {"hidden_act", hf_activation(v.activation)},
          {"layer_norm_eps", v.layer_norm_eps}};
}

Tensor vector_tensor(const std::vector<float>& v) {
  return Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v);
}

// A synthetic photo-like RGB image: gradients with a moving pattern per `variant`.
Image synthetic_image(int64_t width, int64_t height, int64_t variant) {
  Image im;
  im.width = width;
  im.height = height;
  im.mode = ImageMode::RGB;
  im.pixels.resize(static_cast<size_t>(width * height * 3));
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      uint8_t* p = im.pixels.data() + (y * width + x) * 3;
      p[0] = static_cast<uint8_t>((x * 255) / std::max<int64_t>(1, width - 1));
      p[1] = static_cast<uint8_t>((y * 255) / std::max<int64_t>(1, height - 1));
      p[2] = static_cast<uint8_t>(((x + y) * 7 + variant * 37) & 0xFF);
    }
  }
  return im;
}

}  // namespace

const std::vector<std::string>& mm_preset_names() {
  static const std::vector<std::string> names = {"tinyemo-700m", "tinyllava-phi2-3b"};
  return names;
}

nlohmann::json mm_preset_config(const std::string& preset) {
  nlohmann::json c = {{"architectures", {"TinyLlavaForConditionalGeneration"}},
                      {"model_type", "tinyllava"},
                      {"connector_type", "mlp2x_gelu"},
                      {"vision_feature_layer", -2},
                      {"vision_feature_select_strategy", "patch"},
                      {"image_aspect_ratio", "square"},
                      {"image_token_index", -200},
                      {"tokenizer_model_max_length", 2048}};
  if (preset == "tinyemo-700m") {
    c["conv_version"] = "llama";
    c["text_config"] = lm::lm_preset_config("openelm-270m");
    c["vision_config"] = {{"model_type", "clip_vision_model"}, {"hidden_size", 1024}, {"intermediate_size", 4096},
                          {"num_hidden_layers", 24},           {"num_attention_heads", 16}, {"image_size", 224},
                          {"patch_size", 14},                  {"hidden_act", "quick_gelu"}, {"layer_norm_eps", 1e-5}};
  } else if (preset == "tinyllava-phi2-3b") {
    c["conv_version"] = "phi";
    c["text_config"] = lm::lm_preset_config("phi-2");
    c["vision_config"] = {{"model_type", "siglip_vision_model"}, {"hidden_size", 1152}, {"intermediate_size", 4304},
                          {"num_hidden_layers", 27}, {"num_attention_heads", 16}, {"image_size", 384},
                          {"patch_size", 14}, {"hidden_act", "gelu_pytorch_tanh"}, {"layer_norm_eps", 1e-6}};
  } else {
    fail("unknown multimodal preset \"{}\" (tinyemo-700m, tinyllava-phi2-3b)", preset);
  }
  return c;
}

TinyLlavaModel random_tinyllava(const nlohmann::json& json, DType lm_dtype, DType vision_dtype, uint64_t seed) {
  TinyLlavaConfig c = parse_tinyllava_config(JsonObject(json, "random-weight TinyLLaVA config"), ".");
  clip::VisionModel vision = clip::VisionModel::random(c.vision, vision_dtype, seed);
  lm::LmModel lm = lm::random_lm(c.text_config, lm_dtype, seed + 2);
  Connector connector = Connector::random(c.connector, c.vision.hidden_size, lm.config().hidden, seed + 1);
  return TinyLlavaModel::from_parts(std::move(c), std::move(vision), std::move(connector), std::move(lm));
}

void save_tinyllava(const TinyLlavaModel& model, const std::filesystem::path& dir) {
  const TinyLlavaConfig& c = model.config();
  const clip::VisionConfig& v = model.vision().config();
  const clip::VisionWeights& w = model.vision().weights();
  NamedTensors t;
  const std::string p = "vision_tower._vision_tower.vision_model.";
  t.emplace_back(p + "embeddings.patch_embedding.weight",
                 w.patch.reshape({v.hidden_size, v.num_channels, v.patch_size, v.patch_size}));
  if (!w.patch_bias.empty()) t.emplace_back(p + "embeddings.patch_embedding.bias", vector_tensor(w.patch_bias));
  if (!w.class_embedding.empty()) t.emplace_back(p + "embeddings.class_embedding", vector_tensor(w.class_embedding));
  t.emplace_back(p + "embeddings.position_embedding.weight",
                 Tensor::from_vector<float>({v.num_positions(), v.hidden_size}, w.position_embedding));
  if (!w.pre_ln_weight.empty()) {
    t.emplace_back(p + "pre_layrnorm.weight", vector_tensor(w.pre_ln_weight));
    t.emplace_back(p + "pre_layrnorm.bias", vector_tensor(w.pre_ln_bias));
  }
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const clip::LayerWeights& l = w.layers[i];
    const std::string q = p + "encoder.layers." + std::to_string(i) + ".";
    const std::pair<const char*, std::pair<const Tensor*, const std::vector<float>*>> linears[] = {
        {"self_attn.q_proj.", {&l.q, &l.q_bias}},     {"self_attn.k_proj.", {&l.k, &l.k_bias}},
        {"self_attn.v_proj.", {&l.v, &l.v_bias}},     {"self_attn.out_proj.", {&l.out, &l.out_bias}},
        {"mlp.fc1.", {&l.fc1, &l.fc1_bias}},          {"mlp.fc2.", {&l.fc2, &l.fc2_bias}}};
    for (const auto& [name, wb] : linears) {
      t.emplace_back(q + name + "weight", *wb.first);
      t.emplace_back(q + name + "bias", vector_tensor(*wb.second));
    }
    t.emplace_back(q + "layer_norm1.weight", vector_tensor(l.ln1_weight));
    t.emplace_back(q + "layer_norm1.bias", vector_tensor(l.ln1_bias));
    t.emplace_back(q + "layer_norm2.weight", vector_tensor(l.ln2_weight));
    t.emplace_back(q + "layer_norm2.bias", vector_tensor(l.ln2_bias));
  }
  t.emplace_back(p + "post_layernorm.weight", vector_tensor(w.post_ln_weight));
  t.emplace_back(p + "post_layernorm.bias", vector_tensor(w.post_ln_bias));
  for (auto& [name, tensor] : model.connector().named_tensors("connector._connector.")) t.emplace_back(name, tensor);
  for (const auto& [name, tensor] : model.lm().tensors()) {
    TE_CHECK(!dtype_is_quantized(tensor.dtype()), "{}: cannot write the {} tensor {} to safetensors (save the F32 "
             "model and convert when loading)", dir.string(), dtype_name(tensor.dtype()), name);
    t.emplace_back("language_model." + name, tensor);
  }
  std::filesystem::create_directories(dir);
  write_safetensors(dir / "model.safetensors", t, {{"format", "pt"}});
  const nlohmann::json config = {{"architectures", {"TinyLlavaForConditionalGeneration"}},
                                 {"model_type", c.model_type},
                                 {"connector_type", c.connector.name},
                                 {"hidden_size", c.hidden_size},
                                 {"vision_hidden_size", c.vision_hidden_size},
                                 {"vision_feature_layer", c.vision_feature_layer},
                                 {"vision_feature_select_strategy", clip::feature_select_name(c.feature_select)},
                                 {"image_aspect_ratio", c.image_aspect_ratio == AspectRatio::Pad ? "pad" : "square"},
                                 {"image_token_index", c.image_token_index},
                                 {"tokenizer_model_max_length", c.tokenizer_model_max_length},
                                 {"conv_version", model.conversation().name},
                                 {"text_config", model.lm().hf_config()},
                                 {"vision_config", hf_vision_config(v)}};
  write_file_atomic(dir / "config.json", config.dump(2));
}

nlohmann::json benchmark_tinyllava(const TinyLlavaModel& model, const MmBenchOptions& o) {
  TE_CHECK(o.gen_tokens > 0 && o.runs >= 1 && o.prefix_tokens >= 1 && o.question_tokens >= 1,
           "mm bench: token counts and runs must be positive");
  const int64_t vocab = model.lm().config().vocab;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < o.prefix_tokens + o.question_tokens; ++i) {
    if (i == o.prefix_tokens) ids.push_back(model.config().image_token_index);
    ids.push_back(static_cast<int32_t>((i * 7919 + 13) % vocab));
  }
  lm::GenerateOptions g;
  g.max_new_tokens = o.gen_tokens;
  g.sampling.greedy = true;
  g.stop_at_eos = false;  // random weights: always the full answer length

  MmSession session(model);
  struct Run {
    double preprocess, encode, prefill, first_token, decode, total, tokens_per_s;
    int64_t reused, prompt;
  };
  std::vector<Run> runs;
  for (int64_t r = 0; r < o.runs; ++r) {
    const Image image = synthetic_image(o.image_width, o.image_height, r);  // a new image each time
    const double t0 = now_seconds();
    const Tensor pixels = model.preprocess(image);
    const double t1 = now_seconds();
    const std::vector<Tensor> features = model.encode_images(pixels);
    const double t2 = now_seconds();
    const MmGenerateResult res = session.generate(ids, features, g);
    const double decoded = static_cast<double>(res.generated.ids.size()) - 1.0;
    runs.push_back({t1 - t0, t2 - t1, res.prefill_s, t2 - t0 + res.prefill_s, res.decode_s, t2 - t0 + res.total_s,
                    res.decode_s > 0 ? decoded / res.decode_s : 0.0, res.reused_positions, res.prompt_positions});
  }
  auto pick = [&](double Run::*field) {
    std::vector<double> v;
    for (size_t i = runs.size() > 1 ? 1 : 0; i < runs.size(); ++i) v.push_back(runs[i].*field);
    return median(v);
  };
  const lm::LmConfig& lc = model.lm().config();
  nlohmann::json shapes = {
      {"vision", model.vision().config().to_json()},
      {"vision_dtype", dtype_name(model.vision().weight_dtype())},
      {"image_rows", model.image_features_from_hidden(Tensor::zeros(
                                                          DType::F32, {1, model.vision().config().num_positions(),
                                                                       model.vision().config().hidden_size}))[0]
                         .dim(0)},
      {"connector", model.config().connector.name},
      {"lm", {{"arch", lm::lm_arch_name(lc.arch)},
              {"hidden", lc.hidden},
              {"layers", lc.n_layers()},
              {"vocab", lc.vocab},
              {"parameters", model.lm().parameter_count()},
              {"weight_dtype", dtype_name(model.lm().layers().at(0).o.weight.dtype())}}},
      {"prompt_positions", runs.back().prompt},
      {"text_positions", static_cast<int64_t>(ids.size()) - 1},
      {"gen_tokens", o.gen_tokens},
      {"image", {{"width", o.image_width}, {"height", o.image_height}}}};
  const Run& cold = runs.front();
  return {{"threads", num_threads()},
          {"lm_prefill_compute", model.lm().prefill_compute() == LinearCompute::BF16 ? "bf16" : "f32"},
          {"runs", o.runs},
          {"shapes", shapes},
          {"preprocess_s", pick(&Run::preprocess)},
          {"image_encode_s", pick(&Run::encode)},
          {"prefill_s", pick(&Run::prefill)},
          {"time_to_first_token_s", pick(&Run::first_token)},
          {"decode_s", pick(&Run::decode)},
          {"decode_tokens_per_s", pick(&Run::tokens_per_s)},
          {"total_s", pick(&Run::total)},
          {"reused_positions", runs.back().reused},
          {"cold", {{"time_to_first_token_s", cold.first_token}, {"total_s", cold.total}, {"prefill_s", cold.prefill}}},
          {"note", "medians of the runs after the first; the first (cold) run also computes the system prompt, the "
                   "later ones reuse its cached positions as the pipeline does for every image after the first"}};
}

}  // namespace tinyemo::mm
