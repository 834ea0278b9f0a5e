#include "models/clip/vision_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/attention.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/matmul.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "io/json.h"

namespace tinyemo::clip {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The checkpoint names of one tower, in either layout.
struct TowerNames {
  CheckpointLayout layout;
  std::string prefix;

  std::string base() const { return layout == CheckpointLayout::HuggingFace ? prefix + "vision_model." : prefix; }
  std::string patch() const {
    return base() + (layout == CheckpointLayout::HuggingFace ? "embeddings.patch_embedding.weight" : "conv1.weight");
  }
  std::string patch_bias() const { return base() + "embeddings.patch_embedding.bias"; }  // HF SigLIP
  std::string class_embedding() const {
    return base() + (layout == CheckpointLayout::HuggingFace ? "embeddings.class_embedding" : "class_embedding");
  }
  std::string positions() const {
    return base() +
           (layout == CheckpointLayout::HuggingFace ? "embeddings.position_embedding.weight" : "positional_embedding");
  }
  std::string pre_ln() const { return base() + (layout == CheckpointLayout::HuggingFace ? "pre_layrnorm." : "ln_pre."); }
  std::string post_ln() const {
    return base() + (layout == CheckpointLayout::HuggingFace ? "post_layernorm." : "ln_post.");
  }
  std::string layers() const {
    return base() + (layout == CheckpointLayout::HuggingFace ? "encoder.layers." : "transformer.resblocks.");
  }
  std::string layer(int64_t i) const { return layers() + std::to_string(i) + "."; }
  std::string projection() const {
    return layout == CheckpointLayout::HuggingFace ? prefix + "visual_projection.weight" : prefix + "proj";
  }
  // The MLP size comes from fc1 (a block's other names: read_encoder_layer).
  std::string fc1(int64_t i) const {
    return layer(i) + (layout == CheckpointLayout::HuggingFace ? "mlp.fc1." : "mlp.c_fc.");
  }
};

TowerNames names_of(const TowerLocation& where) { return TowerNames{where.layout, where.prefix}; }

// Number of blocks the checkpoint holds (largest index + 1 under the layers prefix).
int64_t count_layers(const CheckpointTensors& tensors, const TowerNames& names) {
  return count_numbered(tensors, names.layers());
}

// Reads tensors of one tower, checking presence, shape and dtype against the
// configuration; every error names the tensor, its file and the config source.
class TowerReader {
 public:
  TowerReader(const CheckpointTensors& tensors, std::string config_source)
      : tensors_(tensors), config_source_(std::move(config_source)) {}

  const Tensor& require(const std::string& name, const Shape& shape) const {
    return require_weight(tensors_, name, shape, tower());
  }
  std::string tower() const { return "vision tower described by " + config_source_; }
  // A matrix kept as stored (a view of the mapped file).
  Tensor matrix(const std::string& name, const Shape& shape) const { return require(name, shape); }
  // A small vector converted to f32.
  std::vector<float> floats(const std::string& name, const Shape& shape) const {
    return require(name, shape).to_f32_vector();
  }

 private:
  const CheckpointTensors& tensors_;
  std::string config_source_;
};

// A shape of a tensor the caller knows exists, for inferring the config.
const Shape& shape_of(const CheckpointTensors& tensors, const std::string& name, const std::string& what) {
  const Tensor* t = tensors.find(name);
  TE_CHECK(t != nullptr, "{}: missing tensor {} (needed to infer the {})", tensors.file_of(name), name, what);
  return t->shape();
}

}  // namespace

TowerLocation locate_vision_tower(const CheckpointTensors& tensors) {
  const std::string hf_patch = "vision_model.embeddings.patch_embedding.weight";
  for (const auto& [name, tensor] : tensors.tensors()) {
    if (ends_with(name, hf_patch)) return {CheckpointLayout::HuggingFace, name.substr(0, name.size() - hf_patch.size())};
  }
  for (const auto& [name, tensor] : tensors.tensors()) {
    if (!ends_with(name, "conv1.weight")) continue;
    const std::string prefix = name.substr(0, name.size() - std::string("conv1.weight").size());
    if (tensors.contains(prefix + "class_embedding") && tensors.contains(prefix + "positional_embedding")) {
      return {CheckpointLayout::OpenAI, prefix};
    }
  }
  fail("{}: no CLIP vision tower found (expected HF names like vision_model.embeddings.patch_embedding.weight "
       "or OpenAI names like conv1.weight, class_embedding, with or without a visual. prefix)",
       tensors.main_file());
}

VisionConfig infer_vision_config(const CheckpointTensors& tensors, const TowerLocation& where) {
  const TowerNames names = names_of(where);
  VisionConfig c;
  const Shape& patch = shape_of(tensors, names.patch(), "hidden size and patch size");
  TE_CHECK(patch.size() == 4 && patch[2] == patch[3], "{}: tensor {} has shape {}, expected [hidden, channels, p, p]",
           tensors.file_of(names.patch()), names.patch(), shape_str(patch));
  c.hidden_size = patch[0];
  c.num_channels = patch[1];
  c.patch_size = patch[2];
  const Shape& pos = shape_of(tensors, names.positions(), "image size");
  TE_CHECK(pos.size() == 2 && pos[0] >= 2, "{}: tensor {} has shape {}, expected [1 + grid^2, hidden]",
           tensors.file_of(names.positions()), names.positions(), shape_str(pos));
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pos[0] - 1))));
  TE_CHECK(grid * grid == pos[0] - 1, "{}: tensor {} holds {} positions, not 1 + a square number of patches",
           tensors.file_of(names.positions()), names.positions(), pos[0]);
  c.image_size = grid * c.patch_size;
  c.num_layers = count_layers(tensors, names);
  TE_CHECK(c.num_layers > 0, "{}: no transformer blocks under {}", tensors.main_file(), names.layers());
  const Shape& fc1 = shape_of(tensors, names.fc1(0) + "weight", "MLP size");
  TE_CHECK(fc1.size() == 2, "{}: tensor {}weight is not a matrix", tensors.file_of(names.fc1(0) + "weight"), names.fc1(0));
  c.intermediate_size = fc1[0];
  // OpenAI's VisionTransformer: heads = width // 64 (the head count is not in the shapes).
  c.num_heads = c.hidden_size % 64 == 0 ? c.hidden_size / 64 : 1;
  c.projection_dim = 0;
  if (const Tensor* proj = tensors.find(names.projection()); proj != nullptr && proj->ndim() == 2) {
    c.projection_dim = where.layout == CheckpointLayout::HuggingFace ? proj->dim(0) : proj->dim(1);
  }
  c.validate("the tensor shapes in " + tensors.main_file());
  return c;
}

VisionModel VisionModel::from_checkpoint(const VisionConfig& config, const std::string& config_source,
                                         const CheckpointTensors& tensors, const TowerLocation& where) {
  config.validate(config_source);
  const TowerNames names = names_of(where);
  const TowerReader r(tensors, config_source);
  const int64_t w = config.hidden_size, inter = config.intermediate_size, p = config.patch_size;
  const bool hf = where.layout == CheckpointLayout::HuggingFace;

  const int64_t layers_present = count_layers(tensors, names);
  TE_CHECK(layers_present == config.num_layers, "{}: holds {} vision transformer blocks, but {} says {}",
           tensors.main_file(), layers_present, config_source, config.num_layers);

  VisionModel m;
  m.config_ = config;
  VisionWeights& wt = m.weights_;
  TE_CHECK(hf || config.family == VisionFamily::Clip, "{}: a SigLIP tower must use Hugging Face names ({})",
           tensors.main_file(), config_source);
  wt.patch = r.matrix(names.patch(), {w, config.num_channels, p, p}).reshape({w, config.patch_dim()});
  if (config.patch_bias()) wt.patch_bias = r.floats(names.patch_bias(), {w});
  if (config.class_token()) wt.class_embedding = r.floats(names.class_embedding(), {w});
  wt.position_embedding = r.floats(names.positions(), {config.num_positions(), w});
  if (config.pre_layernorm()) {
    wt.pre_ln_weight = r.floats(names.pre_ln() + "weight", {w});
    wt.pre_ln_bias = r.floats(names.pre_ln() + "bias", {w});
  }
  wt.post_ln_weight = r.floats(names.post_ln() + "weight", {w});
  wt.post_ln_bias = r.floats(names.post_ln() + "bias", {w});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    wt.layers.push_back(read_encoder_layer(tensors, where.layout, names.layer(i), w, inter, r.tower()));
  }
  if (config.projection_dim > 0) {
    if (hf) {
      wt.projection = r.matrix(names.projection(), {config.projection_dim, w});
    } else {
      // OpenAI multiplies x @ proj ([hidden, dim]); core::linear wants [dim, hidden].
      const std::vector<float> proj = r.floats(names.projection(), {w, config.projection_dim});
      wt.projection = Tensor::empty(DType::F32, {config.projection_dim, w});
      float* t = wt.projection.mutable_data<float>();
      for (int64_t i = 0; i < w; ++i) {
        for (int64_t j = 0; j < config.projection_dim; ++j) t[j * w + i] = proj[i * config.projection_dim + j];
      }
    }
  }
  m.stored_dtype_ = m.weights_.patch.dtype();
  m.description_ = fmt::format("{} {} checkpoint ({}) {}, config from {}", hf ? "Hugging Face" : "OpenAI",
                               config.family == VisionFamily::Clip ? "CLIP" : "SigLIP",
                               dtype_name(wt.patch.dtype()), tensors.main_file(), config_source);
  return m;
}

VisionModel VisionModel::load(const std::filesystem::path& model) {
  const ModelFiles files = resolve_model_files(model);
  const CheckpointTensors tensors = CheckpointTensors::read(files.weights);
  const TowerLocation where = locate_vision_tower(tensors);
  if (!files.config) {
    return from_checkpoint(infer_vision_config(tensors, where), "the tensor shapes in " + files.weights.string(),
                           tensors, where);
  }
  const JsonObject json = JsonObject::load(*files.config);
  const std::string model_type = json.get_or<std::string>("model_type", "clip");
  if (model_type == "siglip_vision_model") {
    return from_checkpoint(vision_config_from_hf_vision(json), files.config->string(), tensors, where);
  }
  if (model_type == "siglip") {  // SiglipModel: the vision tower of the pair
    const JsonObject vision = json.object("vision_config");
    nlohmann::json typed = vision.json();
    typed["model_type"] = "siglip_vision_model";
    return from_checkpoint(vision_config_from_hf_vision(JsonObject(typed, vision.where())), files.config->string(),
                           tensors, where);
  }
  TE_CHECK(model_type == "clip" || model_type == "clip_vision_model" || json.has("vision_config"),
           "{}: model_type \"{}\" is not a CLIP or SigLIP model (clip, clip_vision_model, siglip, "
           "siglip_vision_model)", files.config->string(), model_type);
  VisionConfig config = vision_config_from_hf(json);
  // A CLIPVisionModel checkpoint has no projection whatever projection_dim says.
  if (!tensors.contains(names_of(where).projection())) config.projection_dim = 0;
  return from_checkpoint(config, files.config->string(), tensors, where);
}

void VisionModel::pack_weights(LinearCompute compute) {
  TE_CHECK(!compute_, "CLIP tower: the weights are packed already");
  std::vector<Tensor*> matrices{&weights_.patch};
  for (LayerWeights& l : weights_.layers) {
    for (Tensor* t : {&l.q, &l.k, &l.v, &l.out, &l.fc1, &l.fc2}) matrices.push_back(t);
  }
  if (weights_.projection.defined()) matrices.push_back(&weights_.projection);
  std::vector<Tensor> packed;
  for (Tensor* t : matrices) packed.push_back(std::move(*t));
  packed = pack_linear_weights(std::move(packed), compute);
  for (size_t i = 0; i < matrices.size(); ++i) *matrices[i] = std::move(packed[i]);
  // bf16 products give other features: what was loaded says so (feature files record it).
  if (compute == LinearCompute::BF16 && compute_ != LinearCompute::BF16) description_ += ", bf16 compute";
  compute_ = compute;
}

void apply_compute(VisionModel& model, const std::string& name, const std::string& where) {
  if (name == "auto" || name.empty()) {
    if (model.weight_dtype() == DType::F32) model.pack_weights(LinearCompute::F32);
  } else if (name == "f32") {
    model.pack_weights(LinearCompute::F32);
  } else if (name == "bf16") {
    TE_CHECK(has_native_bf16_linear(), "{}: bf16 compute needs a CPU with AVX512-BF16 and a build for it "
             "(this one would multiply in scalar code); use f32", where);
    model.pack_weights(LinearCompute::BF16);
  } else {
    TE_CHECK(name == "stored", "{}: unknown compute \"{}\" (auto, f32, bf16 or stored)", where, name);
  }
}

VisionModel VisionModel::random(const VisionConfig& config, DType dtype, uint64_t seed) {
  config.validate("random CLIP config");
  TE_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
           "random CLIP weights: dtype {} not supported (f32, f16, bf16)", dtype_name(dtype));
  // Uniform with std 0.02 (CLIP's init scale), so activations stay in range.
  const float amplitude = 0.02f * std::sqrt(3.0f);
  uint64_t stream = seed;
  auto fill = [&](Shape shape) {
    Tensor t = Tensor::empty(DType::F32, std::move(shape));
    float* d = t.mutable_data<float>();
    const uint64_t base = (stream++) * kSplitmixGamma;
    parallel_for(t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const uint64_t z = splitmix64_mix(base + static_cast<uint64_t>(i) * 0xBF58476D1CE4E5B9ull);
        d[i] = amplitude * (static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
      }
    });
    return dtype == DType::F32 ? t : t.to(dtype);
  };
  auto vec = [&](int64_t n, float value) { return std::vector<float>(static_cast<size_t>(n), value); };
  const int64_t w = config.hidden_size, inter = config.intermediate_size;
  VisionModel m;
  m.config_ = config;
  VisionWeights& wt = m.weights_;
  wt.patch = fill({w, config.patch_dim()});
  if (config.patch_bias()) wt.patch_bias = vec(w, 0.0f);
  if (config.class_token()) wt.class_embedding = fill({w}).to_f32_vector();
  wt.position_embedding = fill({config.num_positions(), w}).to_f32_vector();
  if (config.pre_layernorm()) {
    wt.pre_ln_weight = vec(w, 1.0f);
    wt.pre_ln_bias = vec(w, 0.0f);
  }
  wt.post_ln_weight = vec(w, 1.0f);
  wt.post_ln_bias = vec(w, 0.0f);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    LayerWeights l;
    l.q = fill({w, w});
    l.k = fill({w, w});
    l.v = fill({w, w});
    l.out = fill({w, w});
    l.fc1 = fill({inter, w});
    l.fc2 = fill({w, inter});
    l.q_bias = l.k_bias = l.v_bias = l.out_bias = l.fc2_bias = vec(w, 0.0f);
    l.fc1_bias = vec(inter, 0.0f);
    l.ln1_weight = l.ln2_weight = vec(w, 1.0f);
    l.ln1_bias = l.ln2_bias = vec(w, 0.0f);
    wt.layers.push_back(std::move(l));
  }
  if (config.projection_dim > 0) wt.projection = fill({config.projection_dim, w});
  m.description_ = fmt::format("random weights ({})", dtype_name(dtype));
  m.stored_dtype_ = dtype;
  return m;
}

VisionOutputs VisionModel::forward(const Tensor& pixel_values, const ForwardOptions& options,
                                   const std::optional<FeatureRequest>& feature) const {
  const int64_t c = config_.num_channels, n = config_.image_size;
  const bool single = pixel_values.ndim() == 3;
  TE_CHECK((single || pixel_values.ndim() == 4) &&
               pixel_values.dim(-3) == c && pixel_values.dim(-2) == n && pixel_values.dim(-1) == n,
           "pixel_values has shape {}, but this model takes [B, {}, {}, {}] or [{}, {}, {}]",
           shape_str(pixel_values.shape()), c, n, n, c, n, n);
  const DType d = pixel_values.dtype();
  TE_CHECK(d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F64,
           "pixel_values has dtype {}; preprocessed pixels are floats (F32, F16, BF16 or F64)", dtype_name(d));
  const int64_t bad = first_non_finite(pixel_values);
  TE_CHECK(bad < 0, "pixel_values holds a non-finite value at flat index {} (pixels must be finite)", bad);
  const int64_t batch = single ? 1 : pixel_values.dim(0);
  if (d == DType::F32) return forward(pixel_values.data<float>(), batch, options, feature);
  const Tensor f32 = pixel_values.to(DType::F32);
  return forward(f32.data<float>(), batch, options, feature);
}

int64_t VisionModel::hidden_state_index(int64_t layer, const std::string& where) const {
  const int64_t n = config_.num_layers;
  TE_CHECK(layer >= -(n + 1) && layer <= n,
           "{}: vision_feature_layer {} is not a hidden state of a {}-layer vision tower ({} .. {}: 0 the embeddings, "
           "negative from the end)",
           where, layer, n, -(n + 1), n);
  return layer < 0 ? layer + n + 1 : layer;
}

FeatureSelect parse_feature_select(const std::string& name, const std::string& where) {
  if (name == "patch") return FeatureSelect::Patch;
  if (name == "cls_patch") return FeatureSelect::ClsPatch;
  fail("{}: vision_feature_select_strategy \"{}\" is not supported (patch, cls_patch)", where, name);
}

std::string_view feature_select_name(FeatureSelect s) { return s == FeatureSelect::Patch ? "patch" : "cls_patch"; }

Tensor select_feature_tokens(const Tensor& hidden, int64_t b, FeatureSelect select) {
  TE_CHECK(hidden.ndim() == 3 && hidden.dtype() == DType::F32 && b >= 0 && b < hidden.dim(0),
           "select_feature_tokens: expected F32 [B, tokens, hidden] and an image index, got {} {} and {}",
           dtype_name(hidden.dtype()), shape_str(hidden.shape()), b);
  const int64_t first = select == FeatureSelect::Patch ? 1 : 0, tokens = hidden.dim(1), w = hidden.dim(2);
  TE_CHECK(tokens > first, "select_feature_tokens: {} tokens leave no image rows with \"{}\"", tokens,
           feature_select_name(select));
  Tensor out = Tensor::empty(DType::F32, {tokens - first, w});
  const float* src = hidden.data<float>() + (b * tokens + first) * w;
  std::copy(src, src + out.numel(), out.mutable_data<float>());
  return out;
}

VisionOutputs VisionModel::forward(const float* pixels, int64_t batch, const ForwardOptions& options,
                                   const std::optional<FeatureRequest>& feature_request) const {
  const VisionConfig& cfg = config_;
  const VisionWeights& wt = weights_;
  TE_CHECK(batch > 0, "vision forward: empty batch");
  const int64_t w = cfg.hidden_size, t = cfg.num_positions(), np = cfg.num_patches(), g = cfg.grid();
  const int64_t p = cfg.patch_size, n = cfg.image_size, c = cfg.num_channels, pd = cfg.patch_dim();
  const int64_t rows = batch * t, inter = cfg.intermediate_size, cls = cfg.class_token() ? 1 : 0;
  // hidden_states index wanted (-1: none), and the blocks to run: all of them
  // unless only hidden_states[feature] is wanted.
  const int64_t feature = feature_request ? hidden_state_index(feature_request->layer, "vision forward") : -1;
  const bool pooled = !feature_request || feature_request->pooled;
  const bool all_blocks = pooled || options.hidden_states || feature < 0;
  const int64_t blocks = all_blocks ? cfg.num_layers : feature;

  // Patch embedding: unfold each p x p patch in (channel, row, column) order,
  // the conv weight's layout, then one matrix product per image straight into
  // the token rows after the class token (if any).
  std::vector<float> patches(static_cast<size_t>(batch * np * pd));
  parallel_for(batch * np, 16, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t b = idx / np, gy = (idx % np) / g, gx = idx % g;
      float* out = patches.data() + idx * pd;
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t ky = 0; ky < p; ++ky) {
          const float* src = pixels + ((b * c + ch) * n + gy * p + ky) * n + gx * p;
          std::memcpy(out + (ch * p + ky) * p, src, static_cast<size_t>(p) * sizeof(float));
        }
      }
    }
  });
  Tensor hidden = Tensor::empty(DType::F32, {batch, t, w});
  float* x = hidden.mutable_data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    float* tokens = x + b * t * w;
    if (cls) std::copy(wt.class_embedding.begin(), wt.class_embedding.end(), tokens);
    linear(patches.data() + b * np * pd, np, wt.patch, wt.patch_bias.empty() ? nullptr : wt.patch_bias.data(),
           tokens + cls * w);
    add_rows(tokens, wt.position_embedding.data(), t, w);
  }
  patches = {};

  // Every activation buffer at once, before the first use (the pre-LN
  // borrows the blocks' `h`): one allocation pattern per forward.
  const EncoderShape shape{w, cfg.num_heads, inter, cfg.layer_norm_eps, cfg.activation, /*causal=*/false};
  const std::vector<int64_t> sequences(static_cast<size_t>(batch), t);
  EncoderScratch scratch;
  scratch.resize(rows, shape);
  if (cfg.pre_layernorm()) {
    layer_norm_rows(x, rows, w, wt.pre_ln_weight, wt.pre_ln_bias, cfg.layer_norm_eps, scratch.h.data());
    std::copy(scratch.h.begin(), scratch.h.end(), x);
  }
  VisionOutputs out;
  Tensor penultimate;
  // hidden_states[i] is block i's input: the embeddings for i = 0.
  auto keep_feature = [&](int64_t i) {
    if (feature == i) out.feature_hidden_state = i == blocks && !all_blocks ? hidden : hidden.clone();
  };
  for (int64_t i = 0; i < blocks; ++i) {
    keep_feature(i);
    // The second-to-last hidden state is the last block's input (with one
    // block: the embeddings after pre-LN, as HF's hidden_states[-2]).
    if (options.hidden_states && i == cfg.num_layers - 1) penultimate = hidden.clone();
    encoder_block(wt.layers[i], shape, sequences, x, scratch);
  }
  keep_feature(blocks);
  if (!all_blocks) return out;

  if (pooled && cfg.class_token()) {
    out.pooled_output = Tensor::empty(DType::F32, {batch, w});
    float* pooled = out.pooled_output.mutable_data<float>();
    for (int64_t b = 0; b < batch; ++b) {
      layer_norm(x + b * t * w, 1, w, wt.post_ln_weight.data(), wt.post_ln_bias.data(), cfg.layer_norm_eps,
                 pooled + b * w);
    }
    if (wt.projection.defined() && cfg.projection_dim > 0) {
      out.image_embeds = Tensor::empty(DType::F32, {batch, cfg.projection_dim});
      linear(pooled, batch, wt.projection, nullptr, out.image_embeds.mutable_data<float>());
    }
  }
  if (options.hidden_states) {
    out.penultimate_hidden_state = std::move(penultimate);
    out.last_hidden_state = std::move(hidden);
  }
  return out;
}

}  // namespace tinyemo::clip
