// LMs in llama.cpp's GGUF layout (what convert_hf_to_gguf.py writes and
// llama.cpp loads), both ways. The family's LlamaCppFormat (arch/<family>.cpp)
// says how each checkpoint tensor is named and changed; reading builds the
// family's config.json from llama.cpp's keys and binds the model through
// LmModel::bind with a WeightSource that undoes the changes, so every check of
// a Hugging Face checkpoint applies to these files too.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>

#include "io/gguf.h"
#include "models/lm/arch/arch.h"
#include "models/lm/gguf_model.h"
#include "models/lm/gguf_tokenizer.h"

namespace tinyemo::lm {

namespace {

using arch::LlamaCppTensor;

// Rows of `t` ([rows, ...] or a vector) reordered between the rotate-half
// layout (row i and i + d/2 of a head are a RoPE pair) and llama.cpp's
// adjacent-pair layout (rows 2i and 2i + 1): to_llamacpp moves row
// h d + j d/2 + i to h d + 2i + j, the other direction moves it back.
Tensor permute_rope_rows(const Tensor& t, int64_t heads, bool to_llamacpp, const std::string& name) {
  const int64_t rows = t.dim(0);
  TE_CHECK(heads > 0 && rows % heads == 0 && (rows / heads) % 2 == 0,
           "GGUF: tensor \"{}\" has {} rows, not {} heads of an even size", name, rows, heads);
  const Tensor src = dtype_of_rows(t.dtype()) == t.dtype() ? t : t.to(dtype_of_rows(t.dtype()));
  Tensor out = Tensor::empty(src.dtype(), src.shape());
  const size_t row_bytes = src.nbytes() / static_cast<size_t>(rows);
  const int64_t d = rows / heads, half = d / 2;
  const char* in = static_cast<const char*>(src.raw());
  char* dst = static_cast<char*>(out.raw_mut());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t rotate_half = h * d + j * half + i, adjacent = h * d + 2 * i + j;
        const int64_t from = to_llamacpp ? rotate_half : adjacent, to = to_llamacpp ? adjacent : rotate_half;
        std::memcpy(dst + to * row_bytes, in + from * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

Tensor add_to_f32(const Tensor& t, float offset) {
  Tensor out = t.dtype() == DType::F32 ? t.clone() : t.to(DType::F32);
  float* p = out.mutable_data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] += offset;
  return out;
}

// A checkpoint tensor from a llama.cpp file: the stored tensor(s) with the
// converter's change undone. Records which file tensors were used.
class LlamaCppWeights : public WeightSource {
 public:
  LlamaCppWeights(const GgufFile& file, const LmConfig& config, const arch::LlamaCppFormat& format)
      : file_(file), config_(config), format_(format) {}

  bool contains(const std::string& name) const override {
    const LlamaCppTensor t = format_.tensor(config_, name);
    return file_.contains(t.name) && (t.op != LlamaCppTensor::Op::kSplitRows || file_.contains(t.second));
  }

  Tensor get(const std::string& name) const override {
    const LlamaCppTensor t = format_.tensor(config_, name);
    used(t.name);
    const Tensor stored = file_.get(t.name);
    switch (t.op) {
      case LlamaCppTensor::Op::kCopy: return stored;
      case LlamaCppTensor::Op::kRopeRows: return permute_rope_rows(stored, t.heads, false, t.name);
      case LlamaCppTensor::Op::kAddOne: return add_to_f32(stored, -1.0f);
      case LlamaCppTensor::Op::kSplitRows: {
        used(t.second);
        const Tensor second = file_.get(t.second);
        TE_CHECK(stored.ndim() == 2 && second.ndim() == 2 && stored.dim(1) == second.dim(1),
                 "{}: tensors \"{}\" {} and \"{}\" {} do not stack into one matrix", file_.where(), t.name,
                 shape_str(stored.shape()), t.second, shape_str(second.shape()));
        // Mixed types (a quantiser may choose per tensor) meet in F32.
        const DType d = stored.dtype() == second.dtype() ? stored.dtype() : DType::F32;
        const Tensor a = stored.dtype() == d ? stored : stored.to(d), b = second.dtype() == d ? second : second.to(d);
        Tensor out = Tensor::empty(d, {a.dim(0) + b.dim(0), a.dim(1)});
        std::memcpy(out.raw_mut(), a.raw(), a.nbytes());
        std::memcpy(static_cast<char*>(out.raw_mut()) + a.nbytes(), b.raw(), b.nbytes());
        return out;
      }
    }
    fail("GGUF: unknown tensor change");
  }

  std::string where(const std::string& name) const override {
    return file_.where() + " (llama.cpp tensor \"" + format_.tensor(config_, name).name + "\")";
  }

  const std::set<std::string>& used_names() const { return used_; }

 private:
  void used(const std::string& name) const {
    std::lock_guard lock(mutex_);
    used_.insert(name);
  }

  const GgufFile& file_;
  const LmConfig& config_;
  const arch::LlamaCppFormat& format_;
  mutable std::mutex mutex_;
  mutable std::set<std::string> used_;
};

const arch::Architecture& family_of(const GgufFile& file) {
  const std::string& arch = file.get_string("general.architecture");
  const arch::Architecture* family = arch::find_gguf(arch);
  if (family == nullptr || family->llamacpp == nullptr) {
    std::string known;
    for (const arch::Architecture* a : arch::all()) known += (known.empty() ? "" : ", ") + std::string(a->gguf_name);
    fail("{}: general.architecture \"{}\" is not supported ({})", file.where(), arch, known);
  }
  return *family;
}

// llama.cpp's general.file_type of the dtype most matrices have.
uint32_t llamacpp_file_type(DType d) {
  switch (d) {
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 14;  // MOSTLY_Q4_K_S: every matrix Q4_K
    case DType::Q5_K: return 16;  // MOSTLY_Q5_K_S
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

}  // namespace

namespace detail {

LmModel load_lm_gguf_llamacpp(const GgufFile& file, const LoadOptions& options) {
  const arch::Architecture& family = family_of(file);
  const arch::LlamaCppKeys keys(file, std::string(family.gguf_name));
  nlohmann::json json = family.llamacpp->config(keys);
  LmConfig config = parse_lm_config(JsonObject(json, file.where() + " (llama.cpp metadata)"));
  const LlamaCppWeights weights(file, config, *family.llamacpp);
  LmModel m = LmModel::bind(config, std::move(json), weights, options);
  // llama.cpp refuses files with tensors its graph does not use; so does tinyemo
  // (a tensor left over would be a part of the model silently ignored).
  for (const GgufTensorInfo& t : file.tensors()) {
    TE_CHECK(weights.used_names().count(t.name) != 0,
             "{}: tensor \"{}\" is not part of {} as tinyemo runs it (config read from llama.cpp's keys: {})",
             file.where(), t.name, config.architecture, m.hf_config().dump());
  }
  return m;
}

void save_lm_gguf_llamacpp(const LmModel& model, const std::filesystem::path& out, GgufWriter& g,
                           const std::filesystem::path& tokenizer_source) {
  const LmConfig& c = model.config();
  const arch::Architecture& family = arch::of(c.arch);
  TE_CHECK(family.llamacpp != nullptr, "{}: {} has no llama.cpp layout", c.where, c.architecture);
  const arch::LlamaCppFormat& format = *family.llamacpp;
  format.check(c);
  const std::string a(family.gguf_name);
  const LmLayer& first = model.layers().front();
  g.set("general.file_type", GgufValue::u32(llamacpp_file_type(dtype_of_rows(first.down.weight.dtype()))));
  if (c.rope_scaling.kind == RopeScaling::Kind::Linear) {
    g.set(a + ".rope.scaling.type", GgufValue::string("linear"));
    g.set(a + ".rope.scaling.factor", GgufValue::f32(static_cast<float>(c.rope_scaling.factor)));
  }
  if (const auto tokenizer = find_lm_tokenizer(tokenizer_source)) {
    write_gguf_tokenizer(*tokenizer, c.vocab, c.arch == LmArch::Phi ? "phi-2" : "gpt-2", g);
  } else {
    write_gguf_no_tokenizer(c.vocab, g);
  }
  // Special ids from the config where the tokenizer did not give them.
  if (c.bos_id >= 0 && c.bos_id < c.vocab && !g.has("tokenizer.ggml.bos_token_id"))
    g.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(c.bos_id)));
  if (!c.eos_ids.empty() && c.eos_ids[0] >= 0 && c.eos_ids[0] < c.vocab && !g.has("tokenizer.ggml.eos_token_id"))
    g.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(c.eos_ids[0])));

  for (const auto& [name, stored] : model.tensors()) {
    const Tensor t = dtype_of_rows(stored.dtype()) == stored.dtype() ? stored : stored.to(dtype_of_rows(stored.dtype()));
    const LlamaCppTensor lt = format.tensor(c, name);
    switch (lt.op) {
      case LlamaCppTensor::Op::kCopy: g.add_tensor(lt.name, t); break;
      case LlamaCppTensor::Op::kRopeRows: g.add_tensor(lt.name, permute_rope_rows(t, lt.heads, true, name)); break;
      case LlamaCppTensor::Op::kAddOne: g.add_tensor(lt.name, add_to_f32(t, 1.0f)); break;
      case LlamaCppTensor::Op::kSplitRows: {
        TE_CHECK(t.ndim() == 2 && t.dim(0) % 2 == 0, "{}: tensor \"{}\" {} does not split in two halves of rows",
                 c.where, name, shape_str(t.shape()));
        g.add_tensor(lt.name, t.rows(0, t.dim(0) / 2));
        g.add_tensor(lt.second, t.rows(t.dim(0) / 2, t.dim(0)));
        break;
      }
    }
  }
  if (c.tied_output && format.output_when_tied) {
    const Tensor& e = model.token_embeddings();
    g.add_tensor("output.weight", dtype_of_rows(e.dtype()) == e.dtype() ? e : e.to(dtype_of_rows(e.dtype())));
  }
  g.write(out);
}

}  // namespace detail

}  // namespace tinyemo::lm
