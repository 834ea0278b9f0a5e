#include "models/lm/gguf_model.h"

#include "io/file.h"
#include "io/gguf.h"
#include "io/json.h"
#include "models/lm/arch/arch.h"
#include "models/lm/gguf_tokenizer.h"

namespace tinyemo::lm {

namespace {

constexpr const char* kConfigKey = "tinyemo.config_json";
constexpr const char* kTokenizerFilePrefix = "tinyemo.tokenizer_file.";
// Files a tokenizer may need, as Hugging Face model folders hold them.
constexpr const char* kTokenizerFiles[] = {"tokenizer.model",       "tokenizer.json",          "vocab.json",
                                           "merges.txt",            "tokenizer_config.json",   "special_tokens_map.json",
                                           "added_tokens.json"};

// llama.cpp's architecture name of the config's family.
std::string gguf_arch(LmArch a) { return std::string(arch::of(a).gguf_name); }

// llama.cpp's general.file_type for the dtype most weights have.
uint32_t file_type(DType d) {
  switch (d) {
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 14;
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

class GgufWeights : public WeightSource {
 public:
  explicit GgufWeights(const GgufFile& file) : file_(file) {}
  bool contains(const std::string& name) const override { return file_.contains(name); }
  Tensor get(const std::string& name) const override { return file_.get(name); }
  std::string where(const std::string&) const override { return file_.where(); }

 private:
  const GgufFile& file_;
};

}  // namespace

LmModel load_lm_gguf(const std::filesystem::path& path, const LoadOptions& options) {
  const GgufFile file = GgufFile::open(path);
  const std::string& w = file.where();
  if (!file.has(kConfigKey)) {
    LmModel m = detail::load_lm_gguf_llamacpp(file, options);
    m.source_ = path;
    m.prefill_compute_ = options.prefill_compute;
    return m;
  }
  const std::string where = w + ": " + kConfigKey;
  nlohmann::json json = parse_json_text(file.get_string(kConfigKey), where);
  TE_CHECK(json.is_object(), "{}: not a JSON object", where);
  LmConfig config = parse_lm_config(JsonObject(json, where));

  // The llama.cpp-style keys are derived from the config: disagreement means a damaged or edited file.
  const std::string arch = file.get_string("general.architecture");
  TE_CHECK(arch == gguf_arch(config.arch), "{}: general.architecture \"{}\" disagrees with {} ({})", w, arch, where,
           config.architecture);
  auto check = [&](const std::string& key, int64_t want) {
    const std::string k = arch + "." + key;
    TE_CHECK(static_cast<int64_t>(file.get_uint(k)) == want, "{}: {} = {} disagrees with {} ({})", w, k,
             file.get_uint(k), where, want);
  };
  check("block_count", config.n_layers());
  check("embedding_length", config.hidden);
  check("context_length", config.max_context);
  check("vocab_size", config.vocab);

  const GgufWeights weights(file);
  LmModel m = LmModel::bind(std::move(config), std::move(json), weights, options);
  m.source_ = path;
  return m;
}

std::map<std::string, std::string> lm_tokenizer_files(const std::filesystem::path& source) {
  std::map<std::string, std::string> files;
  if (source.empty()) return files;  // built in memory (random weights)
  if (std::filesystem::is_directory(source)) {
    for (const char* name : kTokenizerFiles) {
      if (std::filesystem::is_regular_file(source / name)) files[name] = read_file(source / name);
    }
    return files;
  }
  const GgufFile file = GgufFile::open(source);
  for (const auto& [key, value] : file.metadata()) {
    if (!key.starts_with(kTokenizerFilePrefix)) continue;
    const std::string name = key.substr(std::string(kTokenizerFilePrefix).size());
    bool known = false;
    for (const char* k : kTokenizerFiles) known = known || name == k;
    TE_CHECK(known, "{}: {} names an unexpected tokenizer file", file.where(), key);
    files[name] = file.get_u8_array(key);
  }
  return files;
}

void save_lm_gguf(const LmModel& model, const std::filesystem::path& out, GgufLayout layout,
                  const std::filesystem::path& tokenizer_source) {
  const std::filesystem::path& tokenizer_from = tokenizer_source.empty() ? model.source() : tokenizer_source;
  const LmConfig& c = model.config();
  GgufWriter g;
  const std::string a = gguf_arch(c.arch);
  g.set("general.architecture", GgufValue::string(a));
  const std::filesystem::path source = model.source().lexically_normal();
  g.set("general.name", GgufValue::string(
                            (source.has_filename() ? source.filename() : source.parent_path().filename()).string()));
  // The dtype of the attention/MLP matrices describes the file.
  const LmLayer& first = model.layers().front();
  g.set("general.file_type", GgufValue::u32(file_type(dtype_of_rows(first.down.weight.dtype()))));
  g.set("general.quantization_version", GgufValue::u32(2));
  g.set("general.alignment", GgufValue::u32(32));
  g.set(a + ".context_length", GgufValue::u32(static_cast<uint32_t>(c.max_context)));
  g.set(a + ".embedding_length", GgufValue::u32(static_cast<uint32_t>(c.hidden)));
  g.set(a + ".block_count", GgufValue::u32(static_cast<uint32_t>(c.n_layers())));
  g.set(a + ".vocab_size", GgufValue::u32(static_cast<uint32_t>(c.vocab)));
  std::vector<int32_t> heads, kv_heads, ffn;
  for (const LmLayer& L : model.layers()) {
    heads.push_back(static_cast<int32_t>(L.shape.n_heads));
    kv_heads.push_back(static_cast<int32_t>(L.shape.n_kv_heads));
    ffn.push_back(static_cast<int32_t>(L.shape.ffn_dim));
  }
  if (arch::of(c.arch).per_layer_shapes) {
    g.set(a + ".attention.head_count", GgufValue::i32_array(heads));
    g.set(a + ".attention.head_count_kv", GgufValue::i32_array(kv_heads));
    g.set(a + ".feed_forward_length", GgufValue::i32_array(ffn));
  } else {
    g.set(a + ".attention.head_count", GgufValue::u32(static_cast<uint32_t>(heads[0])));
    g.set(a + ".attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(kv_heads[0])));
    g.set(a + ".feed_forward_length", GgufValue::u32(static_cast<uint32_t>(ffn[0])));
  }
  g.set(a + ".attention.key_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  g.set(a + ".attention.value_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  g.set(a + ".rope.freq_base", GgufValue::f32(static_cast<float>(c.rope_theta)));
  g.set(a + ".rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(c.rotary_dim)));
  g.set(a + (c.norm == NormKind::Rms ? ".attention.layer_norm_rms_epsilon" : ".attention.layer_norm_epsilon"),
        GgufValue::f32(static_cast<float>(c.norm_eps)));
  if (layout == GgufLayout::LlamaCpp) return detail::save_lm_gguf_llamacpp(model, out, g, tokenizer_from);

  g.set(kConfigKey, GgufValue::string(model.hf_config().dump()));
  if (c.bos_id >= 0) g.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(c.bos_id)));
  if (!c.eos_ids.empty() && c.eos_ids[0] >= 0)
    g.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(c.eos_ids[0])));
  const auto files = lm_tokenizer_files(tokenizer_from);
  for (const auto& [name, bytes] : files) g.set(kTokenizerFilePrefix + name, GgufValue::u8_array(bytes));
  // A source whose tokenizer is llama.cpp metadata (a llama.cpp file) keeps it as such.
  if (files.empty() && !tokenizer_from.empty() && !std::filesystem::is_directory(tokenizer_from)) {
    if (const auto tokenizer = find_lm_tokenizer(tokenizer_from))
      write_gguf_tokenizer(*tokenizer, c.vocab, c.arch == LmArch::Phi ? "phi-2" : "gpt-2", g);
  }
  // Interleaved matrices (a model loaded for compute) go back to GGUF's row layout.
  for (const auto& [name, t] : model.tensors()) g.add_tensor(name, t.dtype() == dtype_of_rows(t.dtype()) ? t : t.to(dtype_of_rows(t.dtype())));
  g.write(out);
}

}  // namespace tinyemo::lm
