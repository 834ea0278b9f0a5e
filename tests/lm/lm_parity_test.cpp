// Parity of the LM forward pass with the reference implementations: the shared
// fixtures (Hugging Face / Apple modeling code) and tinyemo's variant fixtures
// (tools/lm_reference.py: longer prompts, other RoPE bases, linear RoPE scaling,
// tied / untied outputs, biases, q/k norms, OpenELM without GLU, untied Qwen2,
// Gemma with a non-square hidden size). Every check runs with and without the
// KV cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <ostream>

#include "core/matmul.h"
#include "core/matmul_internal.h"
#include "core/thread_pool.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/lm/embeddings.h"
#include "models/lm/generate.h"
#include "models/lm/gguf_model.h"
#include "models/lm/session.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

constexpr int32_t kPlaceholder = -200;

struct Case {
  std::string name;
  std::filesystem::path dir;
  bool has_bf16;
};
// ctest shows the parameter: the fixture's name, not the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  std::vector<Case> c;
  for (const char* n : {"llama-tiny", "phi-tiny", "openelm-tiny", "qwen2-tiny", "gemma-tiny"})
    c.push_back({n, testing::fixture(n), true});
  for (const char* n :
       {"llama-variant", "llama3-variant", "phi-variant", "openelm-variant", "qwen2-variant", "gemma-variant"})
    c.push_back({n, testing::source_dir() / "tests/data/lm" / n, false});
  return c;
}

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> ids;
  const Tensor wide = t.to(DType::I64);
  for (int64_t i = 0; i < wide.numel(); ++i) ids.push_back(static_cast<int32_t>(wide.data<int64_t>()[i]));
  return ids;
}

// Largest per-row relative error between logits [T, V] and the reference.
double worst_row_error(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(shape_str(got.shape()), shape_str(want.shape()));
  if (got.shape() != want.shape()) return INFINITY;
  double worst = 0.0;
  for (int64_t r = 0; r < want.dim(0); ++r) worst = std::max(worst, testing::rel_error(got.row(r), want.row(r)));
  return worst;
}

// Rows of several [n, V] logits stacked into [sum n, V].
Tensor stack(const std::vector<Tensor>& parts) {
  int64_t rows = 0;
  for (const auto& p : parts) rows += p.dim(0);
  Tensor out = Tensor::empty(DType::F32, {rows, parts[0].dim(1)});
  char* dst = static_cast<char*>(out.raw_mut());
  for (const auto& p : parts) {
    std::memcpy(dst, p.raw(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

// Feeds `embeddings` through the cache: a prefill of `first` rows, then one row at a time.
Tensor incremental_logits(const lm::LmModel& model, const Tensor& embeddings, int64_t first) {
  lm::LmSession s(model);
  std::vector<Tensor> parts = {s.forward(embeddings.rows(0, first).clone(), true)};
  for (int64_t r = first; r < embeddings.dim(0); ++r) parts.push_back(s.forward(embeddings.rows(r, r + 1).clone(), true));
  return stack(parts);
}

class LmParity : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto io_file = SafetensorsFile::open(GetParam().dir / "io.safetensors");
    ids_ = ids_of(io_file.get("input_ids"));
    greedy_ = ids_of(io_file.get("greedy_ids"));
    logits_ = io_file.get("logits").clone();
    inserted_ = io_file.get("inserted_embeds").clone();
    inserted_logits_ = io_file.get("logits_with_inserted_embeds").clone();
    inserted_at_ = std::stoi(io_file.metadata().at("inserted_at"));
  }
  std::vector<int32_t> spliced_ids() const {
    std::vector<int32_t> v(ids_.begin(), ids_.begin() + inserted_at_);
    v.push_back(kPlaceholder);
    v.insert(v.end(), ids_.begin() + inserted_at_, ids_.end());
    return v;
  }
  lm::GenerateOptions greedy_options(bool cache) const {
    lm::GenerateOptions o;
    o.max_new_tokens = static_cast<int64_t>(greedy_.size());
    o.stop_at_eos = false;  // the references decode a fixed number of tokens
    o.use_kv_cache = cache;
    return o;
  }

  std::vector<int32_t> ids_, greedy_;
  Tensor logits_, inserted_, inserted_logits_;
  int inserted_at_ = 0;
};

TEST_P(LmParity, F32LogitsAtEveryPosition) {
  const lm::LmModel model = lm::LmModel::load(GetParam().dir);
  lm::LmSession s(model);
  EXPECT_LE(worst_row_error(s.forward(ids_, true), logits_), 1e-4);
}

TEST_P(LmParity, KvCacheDecodeEqualsFullRecompute) {
  const lm::LmModel model = lm::LmModel::load(GetParam().dir);
  const Tensor embeddings = embed_tokens(model, ids_);
  lm::LmSession full(model);
  const Tensor all = full.forward(embeddings, true);
  for (int64_t first : {int64_t{1}, static_cast<int64_t>(ids_.size()) - 3}) {
    const Tensor step = incremental_logits(model, embeddings, first);
    EXPECT_LE(worst_row_error(step, logits_), 1e-4) << "prefill of " << first;
    EXPECT_LE(testing::rel_error(step, all), 1e-5) << "prefill of " << first;
  }
}

// A decode step runs as one team of the pool's threads, splitting mat-vec rows,
// key/value heads and the GLU among them: teams of 1, 2 and 3 threads compute
// the same bits, with f32 and with interleaved q8_0 weights (every position
// decoded, from a one-row start).
TEST_P(LmParity, DecodeIsTheSameForAnyTeamSize) {
  const int threads_before = num_threads();
  for (const DType d : {DType::F32, DType::Q8_0}) {
    lm::LoadOptions o;
    if (d != DType::F32) o.weight_dtype = d;
    const lm::LmModel model = lm::LmModel::load(GetParam().dir, o);
    const Tensor embeddings = embed_tokens(model, ids_);
    set_num_threads(1);
    const Tensor alone = incremental_logits(model, embeddings, 1);
    for (const int threads : {2, 3}) {
      set_num_threads(threads);
      EXPECT_EQ(testing::rel_error(incremental_logits(model, embeddings, 1), alone), 0.0)
          << dtype_name(d) << ", " << threads << " threads";
    }
  }
  set_num_threads(threads_before);
}

TEST_P(LmParity, GreedyIdsWithAndWithoutCache) {
  const lm::LmModel model = lm::LmModel::load(GetParam().dir);
  EXPECT_EQ(generate(model, ids_, greedy_options(true)).ids, greedy_);
  EXPECT_EQ(generate(model, ids_, greedy_options(false)).ids, greedy_);
}

TEST_P(LmParity, InsertedEmbeddingsWithAndWithoutCache) {
  const lm::LmModel model = lm::LmModel::load(GetParam().dir);
  const std::vector<int32_t> spliced = spliced_ids();
  const Tensor rows = embed_with_inserted(model, spliced, kPlaceholder, {inserted_});
  ASSERT_EQ(rows.dim(0), inserted_logits_.dim(0));
  lm::LmSession s(model);
  EXPECT_LE(worst_row_error(s.forward(rows, true), inserted_logits_), 1e-4);
  // Cache boundary inside the inserted rows, then token by token.
  EXPECT_LE(worst_row_error(incremental_logits(model, rows, inserted_at_ + 1), inserted_logits_), 1e-4);
  // Generation from an embeddings prompt follows the same logits.
  lm::GenerateOptions o = greedy_options(true);
  o.max_new_tokens = 1;
  const Tensor last = inserted_logits_.row(inserted_logits_.dim(0) - 1);
  const float* l = last.data<float>();
  const int32_t want = static_cast<int32_t>(std::max_element(l, l + last.numel()) - l);
  EXPECT_EQ(generate(model, rows, ids_, o).ids, std::vector<int32_t>{want});
}

// BF16 files: against tools/lm_reference.py's F32 computation on the same
// BF16-rounded weights (tests/data/lm/bf16-reference) at the F32 tolerance,
// and against the F32 fixture at the 16-bit one (greedy ids may only part from
// it after a near tie: top-2 within 1e-3).
TEST_P(LmParity, Bf16Weights) {
  if (!GetParam().has_bf16) GTEST_SKIP() << "no BF16 file";
  lm::LoadOptions o;
  o.weights_file = "model.bf16.safetensors";
  const lm::LmModel model = lm::LmModel::load(GetParam().dir, o);
  EXPECT_EQ(model.layers()[0].down.weight.dtype(), DType::BF16);  // 16-bit stays 16-bit
  const auto reference =
      SafetensorsFile::open(testing::source_dir() / "tests/data/lm/bf16-reference" / (GetParam().name + ".safetensors"));
  lm::LmSession s(model);
  const Tensor logits = s.forward(ids_, true);
  const double exact = worst_row_error(logits, reference.get("logits")), against_f32 = worst_row_error(logits, logits_);
  std::printf("[ bf16     ] %s: worst row error %.2e against the BF16-weight reference, %.2e against F32\n",
              GetParam().name.c_str(), exact, against_f32);
  EXPECT_LE(exact, 1e-4);
  EXPECT_LE(against_f32, 1e-2);
  const std::vector<int32_t> got = generate(model, ids_, greedy_options(true)).ids;
  EXPECT_EQ(got, ids_of(reference.get("greedy_ids")));
  EXPECT_EQ(generate(model, ids_, greedy_options(false)).ids, got);
  const lm::LmModel f32 = lm::LmModel::load(GetParam().dir);
  std::vector<int32_t> seq = ids_;
  for (size_t i = 0; i < greedy_.size(); ++i) {
    if (got[i] == greedy_[i]) {
      seq.push_back(greedy_[i]);
      continue;
    }
    lm::LmSession ref(f32);
    Tensor l = ref.forward(seq);
    std::vector<float> v = l.to_f32_vector();
    std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<>());
    EXPECT_LT(v[0] - v[1], 1e-3) << "greedy id " << i << " differs without a near tie";
    break;
  }
}

// Prefill with bf16 products (LoadOptions::prefill_compute): x and the
// weights rounded to bf16 on the GEMM path only, so the logits stay near the
// F32 reference (bounds as for BF16 weights; q8_0's own), differ from the F32
// prefill wherever a GEMM ran, and the decode steps after it are the F32 ones.
TEST_P(LmParity, Bf16PrefillCompute) {
  if (!has_native_bf16_linear()) GTEST_SKIP() << "no AVX512-BF16 in this build";
  for (const std::optional<DType> weights : {std::optional<DType>{}, std::optional<DType>{DType::Q8_0}}) {
    lm::LoadOptions o;
    o.weight_dtype = weights;
    const lm::LmModel f32 = lm::LmModel::load(GetParam().dir, o);
    o.prefill_compute = LinearCompute::BF16;
    const lm::LmModel bf16 = lm::LmModel::load(GetParam().dir, o);
    EXPECT_EQ(bf16.prefill_compute(), LinearCompute::BF16);
    const std::string what = weights ? "q8_0 weights" : "stored weights";
    lm::LmSession a(f32), b(bf16);
    const Tensor want = a.forward(ids_, true), got = b.forward(ids_, true);
    const double against_ref = worst_row_error(got, logits_), against_f32 = worst_row_error(got, want);
    std::printf("[ bf16 pre ] %s %s: worst row error %.2e against the F32 reference, %.2e against F32 prefill\n",
                GetParam().name.c_str(), what.c_str(), against_ref, against_f32);
    EXPECT_LE(against_f32, 1e-2) << what;
    EXPECT_LE(against_ref, weights ? 0.03 : 1e-2) << what;
    const DType stored = f32.layers()[0].down.weight.dtype();
    if (static_cast<int64_t>(ids_.size()) >= detail::dot_path_max_rows(stored)) {
      EXPECT_GT(against_f32, 0.0) << what << ": the prefill took the GEMM path, so bf16 products change the logits";
    }
    // One-row calls take the dot path: the same bits as the F32 model's.
    lm::LmSession one_f32(f32), one_bf16(bf16);
    const std::vector<int32_t> first(ids_.begin(), ids_.begin() + 1);
    EXPECT_EQ(one_bf16.forward(first).to_f32_vector(), one_f32.forward(first).to_f32_vector()) << what;
  }
}

// Block quantisation of every weight matrix: logit error and top-1 agreement
// against the F32 reference over all prompt positions (numbers in docs/lm.md).
TEST_P(LmParity, QuantisedWeights) {
  struct Bound {
    DType dtype;
    double max_rel, min_top1;
  };
  for (const Bound& b : {Bound{DType::Q8_0, 0.03, 0.9}, Bound{DType::Q4_0, 0.35, 0.6}}) {
    lm::LoadOptions o;
    o.weight_dtype = b.dtype;
    const lm::LmModel model = lm::LmModel::load(GetParam().dir, o);
    lm::LmSession s(model);
    const Tensor got = s.forward(ids_, true);
    int agree = 0;
    for (int64_t r = 0; r < logits_.dim(0); ++r) {
      const float* g = got.row(r).data<float>();
      const float* w = logits_.row(r).data<float>();
      const int64_t V = logits_.dim(1);
      agree += (std::max_element(g, g + V) - g) == (std::max_element(w, w + V) - w);
    }
    const double rel = testing::rel_error(got, logits_), top1 = static_cast<double>(agree) / logits_.dim(0);
    std::printf("[ quant    ] %s %s: logits rel error %.4f, top-1 agreement %.3f\n", GetParam().name.c_str(),
                std::string(dtype_name(b.dtype)).c_str(), rel, top1);
    EXPECT_LE(rel, b.max_rel) << dtype_name(b.dtype);
    EXPECT_GE(top1, b.min_top1) << dtype_name(b.dtype);
    // The interleaved compute layout computes what the row-major one does (the
    // same integer products, summed in another order), prompt and decode.
    o.compute_layout = false;
    const lm::LmModel rows = lm::LmModel::load(GetParam().dir, o);
    lm::LmSession r(rows);
    EXPECT_LE(testing::rel_error(r.forward(ids_, true), got), 1e-5) << dtype_name(b.dtype);
    EXPECT_EQ(generate(rows, ids_, greedy_options(true)).ids, generate(model, ids_, greedy_options(true)).ids);
  }
}

// convert -> GGUF -> load gives exactly the model converted in memory, in
// tinyemo's layout for every fixture and in llama.cpp's for those llama.cpp
// runs (the others are refused by name).
TEST_P(LmParity, GgufRoundTrip) {
  testing::TempDir tmp;
  for (const lm::GgufLayout layout : {lm::GgufLayout::Tinyemo, lm::GgufLayout::LlamaCpp})
  for (DType d : {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
    SCOPED_TRACE(layout == lm::GgufLayout::Tinyemo ? "tinyemo layout" : "llama.cpp layout");
    lm::LoadOptions o;
    o.weight_dtype = d;
    const lm::LmModel converted = lm::LmModel::load(GetParam().dir, o);
    const auto path = tmp / (std::string(dtype_name(d)) + ".gguf");
    const bool llamacpp_runs = GetParam().name != "llama3-variant" && GetParam().name != "phi-variant" &&
                               GetParam().name != "openelm-variant" && GetParam().name != "gemma-variant";
    if (layout == lm::GgufLayout::LlamaCpp && !llamacpp_runs) {
      EXPECT_THROW(save_lm_gguf(converted, path, layout), Error);
      continue;
    }
    save_lm_gguf(converted, path, layout);
    const lm::LmModel loaded = lm::LmModel::load(path);
    // Rows that are not a multiple of 32 long cannot be block-quantised and are stored as F16.
    const Tensor& down = loaded.layers()[0].down.weight;
    const DType want = dtype_is_kquant(d) && down.dim(1) % 256 != 0 ? DType::Q8_0 : d;
    EXPECT_EQ(dtype_of_rows(down.dtype()), dtype_is_quantized(want) && down.dim(1) % 32 != 0 ? DType::F16 : want);
    ASSERT_EQ(loaded.tensors().size(), converted.tensors().size());
    lm::LmSession a(converted), b(loaded);
    EXPECT_EQ(testing::rel_error(a.forward(ids_, true), b.forward(ids_, true)), 0.0) << dtype_name(d);
    EXPECT_EQ(generate(loaded, ids_, greedy_options(true)).ids, generate(converted, ids_, greedy_options(true)).ids);
  }
}

// TinyLLaVA's language model inside the combined checkpoint: its text_config,
// the "language_model." prefix, and the connector's output rows at the -200
// image token (the vision tower and connector themselves are not run here):
// LLaMA (tinyllava-tiny) and Qwen2 (tinyllava-siglip-qwen2-tiny).
TEST(LmEmbeddingsIn, TinyLlavaLanguageModel) {
  for (const char* fixture : {"tinyllava-tiny", "tinyllava-siglip-qwen2-tiny"}) {
    SCOPED_TRACE(fixture);
    const auto dir = testing::fixture(fixture);
    const JsonObject config = JsonObject::load(dir / "config.json").object("text_config");
    const auto weights = lm::open_safetensors_weights(dir / "model.safetensors");
    const lm::LmModel model = lm::LmModel::bind(lm::parse_lm_config(config), config.json(), *weights, {}, "language_model.");
    const auto io = SafetensorsFile::open(dir / "io.safetensors");
    const std::vector<int32_t> ids = ids_of(io.get("input_ids"));
    const Tensor rows = embed_with_inserted(model, ids, kPlaceholder, {io.get("image_features")});
    lm::LmSession s(model);
    EXPECT_LE(worst_row_error(s.forward(rows, true), io.get("logits")), 1e-4);
    std::vector<int32_t> text_ids;
    std::copy_if(ids.begin(), ids.end(), std::back_inserter(text_ids), [](int32_t id) { return id != kPlaceholder; });
    lm::GenerateOptions o;
    o.max_new_tokens = io.get("greedy_ids").numel();
    o.stop_at_eos = false;
    EXPECT_EQ(generate(model, rows, text_ids, o).ids, ids_of(io.get("greedy_ids")));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LmParity, ::testing::ValuesIn(cases()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace tinyemo
