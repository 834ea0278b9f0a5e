// The decoder families tinyemo runs, one file each (arch/<family>.cpp): how
// the family's config.json reads into an LmConfig and which checkpoint tensors
// it holds. Everything that differs between families at run time is a field
// of LmConfig (norm kind, biases, activation, input scale, ...), so the forward
// pass (session.cpp) never asks which family it runs. Internal to models/lm:
// callers use parse_lm_config, LmModel and lm_arch_name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf.h"
#include "io/json.h"
#include "models/lm/config.h"
#include "models/lm/model.h"

namespace tinyemo::lm::arch {

constexpr int64_t kAny = -1;  // a dimension read off the weights

// One tensor a family's checkpoint holds: its name (without prefix), expected
// shape (kAny where the weights decide), where it goes, whether it is a matrix
// (kept in its stored / requested dtype) or a vector (held as F32), and whether
// it is a norm's scale (which LmConfig::norm_weight_offset shifts).
struct Slot {
  std::string name;
  Shape shape;
  Tensor* target;
  bool matrix;
  bool norm_scale = false;
};

// Where bound tensors go, and the list of slots a layout function fills.
class Layout {
 public:
  Layout(std::vector<LmLayer>& layers, Tensor* embeddings, LmNorm* final_norm, LmLinear* lm_head)
      : layers(layers), embeddings(embeddings), final_norm(final_norm), lm_head(lm_head) {}

  void matrix(std::string name, int64_t out, int64_t in, Tensor* t) {
    slots.push_back({std::move(name), {out, in}, t, true});
  }
  void vector(std::string name, int64_t n, Tensor* t) { slots.push_back({std::move(name), {n}, t, false}); }
  void linear(const std::string& name, int64_t out, int64_t in, bool bias, LmLinear* l) {
    matrix(name + ".weight", out, in, &l->weight);
    if (bias) vector(name + ".bias", out, &l->bias);
  }
  void norm(const std::string& name, int64_t n, bool bias, LmNorm* l) {
    slots.push_back({name + ".weight", {n}, &l->weight, false, true});
    if (bias) vector(name + ".bias", n, &l->bias);
  }

  std::vector<LmLayer>& layers;
  Tensor* embeddings;
  LmNorm* final_norm;
  LmLinear* lm_head;
  std::vector<Slot> slots;
};

// ---- llama.cpp's GGUF layout -------------------------------------------------
// What llama.cpp's converter (convert_hf_to_gguf.py) does to a family's
// checkpoint, and how llama.cpp (src/models/<arch>.cpp) reads it back;
// gguf_llamacpp.cpp reads and writes such files with these.

// A checkpoint tensor (Hugging Face name) as llama.cpp stores it.
struct LlamaCppTensor {
  enum class Op {
    kCopy,      // the same values under llama.cpp's name
    kRopeRows,  // q/k rows (and biases) reordered for llama.cpp's RoPE on adjacent pairs: within each of
                // `heads` heads, rows i and i + d/2 of the rotate-half layout become rows 2i and 2i + 1
    kAddOne,    // a norm weight stored with 1 added (Gemma's (1 + weight))
    kSplitRows,  // rows [0, n/2) stored as `name`, [n/2, n) as `second` (OpenELM's proj_1: gate, up)
  };
  LlamaCppTensor(std::string name, Op op = Op::kCopy, int64_t heads = 0, std::string second = {})
      : name(std::move(name)), op(op), heads(heads), second(std::move(second)) {}
  std::string name;
  Op op;
  int64_t heads;       // kRopeRows
  std::string second;  // kSplitRows
};

// llama.cpp's hyper-parameter keys of a file (`<arch>.<key>`), with llama.cpp's
// defaults, and its tensors' shapes. Errors name the file and key.
class LlamaCppKeys {
 public:
  LlamaCppKeys(const GgufFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}
  const GgufFile& file() const { return file_; }
  const std::string& arch() const { return arch_; }
  std::string key(const std::string& name) const { return arch_ + "." + name; }
  bool has(const std::string& name) const { return file_.has(key(name)); }
  int64_t integer(const std::string& name) const;  // required, >= 0
  int64_t integer(const std::string& name, int64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  // A key holding one value for every layer or a per-layer array (of n_layers entries).
  std::vector<int64_t> per_layer(const std::string& name, int64_t n_layers) const;
  std::vector<int64_t> per_layer(const std::string& name, int64_t n_layers, const std::vector<int64_t>& fallback) const;
  // Shape of a tensor (PyTorch order); empty when the file has no such tensor.
  Shape shape(const std::string& tensor) const;

 private:
  const GgufFile& file_;
  std::string arch_;
};

struct LlamaCppFormat {
  // How llama.cpp stores checkpoint tensor `hf` of a model with config `c`.
  LlamaCppTensor (*tensor)(const LmConfig& c, const std::string& hf);
  // The family's config.json from llama.cpp's keys and tensors (parse_lm_config checks it).
  nlohmann::json (*config)(const LlamaCppKeys& keys);
  // Throws, naming the setting, when llama.cpp would run this model differently
  // (or cannot hold it) as this architecture.
  void (*check)(const LmConfig& c);
  // llama.cpp requires output.weight even when the output is tied (Phi-2).
  bool output_when_tied = false;
};

// Shared by the formats (llamacpp.cpp).
namespace llamacpp {
// Hugging Face LLaMA-layout names (llama_layout) -> llama.cpp's.
std::string llama_name(const std::string& hf);
// config.json fields every Hugging Face decoder config has, from llama.cpp's
// keys: hidden_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, head_dim, intermediate_size, vocab_size,
// max_position_embeddings, rope_theta, rope_scaling, bos/eos token ids,
// tie_word_embeddings (no output.weight).
// `full_rotary`: RoPE must cover the whole head (rope.dimension_count = head
// size); otherwise partial_rotary_factor = rope.dimension_count / head size.
nlohmann::json decoder_config(const LlamaCppKeys& k, std::string_view hf_class, std::string_view model_type,
                              bool full_rotary = true);
// The layer index of a per-layer checkpoint name ("<prefix><i>.<...>"), -1 otherwise.
int64_t layer_of(const std::string& hf, std::string_view prefix);
// Refuses a file without `tensor` (a family's required llama.cpp tensor), saying what it means.
void require_tensor(const LlamaCppKeys& k, const std::string& tensor, std::string_view meaning);
// The family's activation must be `want` in llama.cpp's graph.
void expect_activation(const LmConfig& c, Activation want, std::string_view arch);
// RoPE scaling llama.cpp expresses with keys (none, linear).
void expect_key_rope_scaling(const LmConfig& c, std::string_view arch);
}  // namespace llamacpp

struct Architecture {
  LmArch id;
  std::string_view hf_class;       // config.json "architectures": ["..."]
  std::string_view name;           // lm_arch_name()
  std::string_view gguf_name;      // general.architecture in GGUF files (llama.cpp's name)
  std::string_view context_field;  // the config field holding the context length, for errors
  // Reads the family's config.json into `out` (arch, architecture and where
  // are set; parse_lm_config checks the rotary dim and reads special ids after).
  void (*parse)(const JsonObject& config, LmConfig* out);
  // Appends the slots of every tensor the checkpoint holds, in decode order.
  void (*layout)(const LmConfig& config, Layout& out);
  // Per-layer shapes that differ between layers (written as per-layer GGUF keys).
  bool per_layer_shapes = false;
  // FFN widths from the config alone, for families whose loader reads them off
  // the weights (null: config.layers[i].ffn_dim is already set by parse).
  std::vector<int64_t> (*ffn_dims)(const JsonObject& config) = nullptr;
  // llama.cpp's layout of the family (its GGUF files, both ways).
  const LlamaCppFormat* llamacpp = nullptr;
};

// Every family, in the order errors list them (registry.cpp).
const std::vector<const Architecture*>& all();
const Architecture& of(LmArch id);
// Null when no family has this class name.
const Architecture* find(std::string_view hf_class);
// Null when no family has this llama.cpp architecture name.
const Architecture* find_gguf(std::string_view gguf_name);

// The families (one file each).
extern const Architecture kLlama, kPhi, kOpenElm, kQwen2, kGemma;

// Hugging Face's LLaMA tensor layout, shared by the families built on it
// (LLaMA, Qwen2, Gemma): model.embed_tokens, model.layers.N.{input_layernorm,
// self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj},
// model.norm, lm_head unless tied; biases as the config says.
void llama_layout(const LmConfig& c, Layout& out);

// config.json readers shared by the families (config_fields.cpp). Errors name
// the file (JsonObject::where) and the field.
namespace fields {

constexpr int64_t kMaxLayers = 4096;
// An integer field; JSON numbers that are not integers (1.5, 1e30) are refused.
int64_t integer(const JsonObject& c, const std::string& key);
int64_t integer(const JsonObject& c, const std::string& key, const nlohmann::json& v);
std::vector<int64_t> integers(const JsonObject& c, const std::string& key);
// A positive integer no larger than `max` (a bound that keeps a damaged or
// hostile config from sizing huge allocations).
int64_t positive(const JsonObject& c, const std::string& key, int64_t max = int64_t{1} << 30);
// A positive finite number, `fallback` when absent.
double positive_float(const JsonObject& c, const std::string& key, double fallback);
Activation activation(const JsonObject& c, const std::string& key);
// rope_scaling (absent: none).
void rope_scaling(const JsonObject& c, LmConfig* cfg);
// model_type, when present, must be `want` (the type the class is written for).
void expect_model_type(const JsonObject& c, const std::string& want);
// What the Hugging Face decoder configs (LlamaConfig, PhiConfig, Qwen2Config,
// GemmaConfig) share: hidden_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads (default: heads), head_dim (default: hidden / heads),
// intermediate_size, vocab_size, max_position_embeddings, rope_theta (default
// 1e4), rope_scaling; rotary_dim = head_dim. The activation, norms, biases and
// tied output have per-family defaults and are read by each family.
void hf_decoder(const JsonObject& c, LmConfig* cfg);

}  // namespace fields

}  // namespace tinyemo::lm::arch
