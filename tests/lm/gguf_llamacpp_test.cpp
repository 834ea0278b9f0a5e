// llama.cpp's GGUF layout, both ways: what tinyemo writes is what llama.cpp's
// converter writes (tensors byte for byte, keys value for value; references
// made with llama.cpp's gguf-py by tools/llamacpp_gguf_reference.py), files
// gguf-py wrote load with their tokenizers, models read back compute what the
// checkpoint computes, and what tinyemo cannot run as llama.cpp would is
// refused by name.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "io/file.h"
#include "io/gguf.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/lm/arch/arch.h"
#include "models/lm/generate.h"
#include "models/lm/gguf_model.h"
#include "models/lm/gguf_tokenizer.h"
#include "models/lm/sentencepiece_model.h"
#include "models/lm/sentencepiece_tokenizer.h"
#include "models/lm/session.h"
#include "testing/testing.h"
#include "lm/tokenizer_spm_training.h"

namespace tinyemo {
namespace {

const std::filesystem::path kData = testing::source_dir() / "tests/data/lm/llamacpp";

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> ids;
  const Tensor wide = t.to(DType::I64);
  for (int64_t i = 0; i < wide.numel(); ++i) ids.push_back(static_cast<int32_t>(wide.data<int64_t>()[i]));
  return ids;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

lm::LoadOptions file_layout() {
  lm::LoadOptions o;
  o.compute_layout = false;
  return o;
}

constexpr const char* kFixtures[] = {"llama-tiny", "phi-tiny", "openelm-tiny", "qwen2-tiny", "gemma-tiny"};

// The F32 file tinyemo writes carries every key convert_hf_to_gguf.py writes
// with the same value, and the same tensors (names, shapes, types, bytes).
TEST(LlamaCppGguf, WriterMatchesLlamaCppsConverter) {
  testing::TempDir tmp;
  for (const char* fixture : kFixtures) {
    SCOPED_TRACE(fixture);
    const auto path = tmp / (std::string(fixture) + ".gguf");
    save_lm_gguf(lm::LmModel::load(testing::fixture(fixture), file_layout()), path);
    const GgufFile g = GgufFile::open(path);
    const nlohmann::json ref = nlohmann::json::parse(read_file(kData / (std::string(fixture) + ".json")));
    for (const auto& [key, want] : ref["metadata"].items()) {
      ASSERT_TRUE(g.has(key)) << key;
      if (want.is_string()) {
        EXPECT_EQ(g.get_string(key), want.get<std::string>()) << key;
      } else if (want.is_array()) {
        EXPECT_EQ(g.get_int_array(key), want.get<std::vector<int64_t>>()) << key;
      } else if (want.is_number_integer()) {
        EXPECT_EQ(g.get_int(key), want.get<int64_t>()) << key;
      } else {
        EXPECT_EQ(g.get_float(key), want.get<double>()) << key;  // both the same f32
      }
    }
    EXPECT_EQ(g.tensors().size(), ref["tensors"].size());
    for (const auto& [name, want] : ref["tensors"].items()) {
      ASSERT_TRUE(g.contains(name)) << name;
      const GgufTensorInfo& info = g.info(name);
      EXPECT_EQ(info.shape, want["shape"].get<Shape>()) << name;
      EXPECT_EQ(info.dtype, DType::F32) << name << " (" << want["type"] << ")";
      const Tensor t = g.get(name);
      EXPECT_EQ(::crc32_z(0, static_cast<const Bytef*>(t.raw()), t.nbytes()), want["crc32"].get<uint32_t>()) << name;
    }
    EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "none");  // the fixtures come without a tokenizer
  }
}

// Read back (no tinyemo.config_json: the config comes from llama.cpp's keys),
// the model computes exactly what the checkpoint does.
TEST(LlamaCppGguf, ReadsBackToTheCheckpointsLogits) {
  testing::TempDir tmp;
  for (const char* fixture : kFixtures) {
    SCOPED_TRACE(fixture);
    const auto path = tmp / (std::string(fixture) + ".gguf");
    const lm::LmModel original = lm::LmModel::load(testing::fixture(fixture));
    save_lm_gguf(lm::LmModel::load(testing::fixture(fixture), file_layout()), path);
    const lm::LmModel loaded = lm::LmModel::load(path);
    EXPECT_FALSE(GgufFile::open(path).has("tinyemo.config_json"));
    EXPECT_EQ(loaded.config().architecture, original.config().architecture);
    const auto io = SafetensorsFile::open(testing::fixture(fixture) / "io.safetensors");
    const std::vector<int32_t> ids = ids_of(io.get("input_ids"));
    lm::LmSession a(original), b(loaded);
    const Tensor la = a.forward(ids, true), lb = b.forward(ids, true);
    EXPECT_EQ(testing::rel_error(lb, la), 0.0);
    EXPECT_LE(testing::rel_error(lb, io.get("logits")), 1e-4);
    lm::GenerateOptions o;
    o.max_new_tokens = io.get("greedy_ids").numel();
    o.stop_at_eos = false;
    EXPECT_EQ(generate(loaded, ids, o).ids, ids_of(io.get("greedy_ids")));
  }
}

// Files gguf-py wrote (Q8_0 matrices, a SentencePiece and a byte-level BPE
// tokenizer): the model matches the checkpoint within Q8_0's error, and the
// tokenizer built from the metadata encodes as the reference tokenizers do.
TEST(LlamaCppGguf, LoadsFilesWrittenByGgufPy) {
  const nlohmann::json cases = nlohmann::json::parse(read_file(kData / "tokenizer_cases.json"));
  for (const auto& [file, fixture] : {std::pair{"llama-tiny.q8_0.gguf", "llama-tiny"}, {"phi-tiny.q8_0.gguf", "phi-tiny"}}) {
    SCOPED_TRACE(file);
    const lm::LmModel model = lm::LmModel::load(kData / file);
    EXPECT_EQ(dtype_of_rows(model.layers()[0].q.weight.dtype()), DType::Q8_0);
    const auto io = SafetensorsFile::open(testing::fixture(fixture) / "io.safetensors");
    const std::vector<int32_t> ids = ids_of(io.get("input_ids"));
    lm::LmSession s(model);
    const Tensor logits = s.forward(ids, true);
    EXPECT_LE(testing::rel_error(logits, io.get("logits")), 0.03);
    // The same weights quantised by tinyemo: the same numbers up to rounding ties.
    lm::LoadOptions q8;
    q8.weight_dtype = DType::Q8_0;
    const lm::LmModel ours = lm::LmModel::load(testing::fixture(fixture), q8);
    lm::LmSession t(ours);
    EXPECT_LE(testing::rel_error(logits, t.forward(ids, true)), 1e-3);

    const auto tokenizer = lm::load_lm_tokenizer(kData / file);
    for (const auto& c : cases[file]) {
      const std::string text = c["text"];
      EXPECT_EQ(tokenizer->encode(text, true), c["ids"].get<std::vector<int32_t>>()) << text;
      // BPE gives its special tokens' text back; SentencePiece drops BOS.
      const bool keep_special = tokenizer->bos_id() == 299;
      EXPECT_EQ(tokenizer->decode(c["ids"].get<std::vector<int32_t>>(), !keep_special), text) << text;
    }
  }
  // The special ids came from the tokenizer metadata.
  const lm::LmModel phi = lm::LmModel::load(kData / "phi-tiny.q8_0.gguf");
  EXPECT_EQ(phi.config().bos_id, 299);
  EXPECT_EQ(phi.config().eos_ids, std::vector<int32_t>{299});
}

// A file read from llama.cpp's layout writes back to the same tensors and keys,
// tokenizer included, and to tinyemo's layout with the tokenizer as llama.cpp metadata.
TEST(LlamaCppGguf, RewritesWhatItRead) {
  testing::TempDir tmp;
  for (const char* file : {"llama-tiny.q8_0.gguf", "phi-tiny.q8_0.gguf"}) {
    SCOPED_TRACE(file);
    const GgufFile src = GgufFile::open(kData / file);
    save_lm_gguf(lm::LmModel::load(kData / file, file_layout()), tmp / "again.gguf");
    const GgufFile again = GgufFile::open(tmp / "again.gguf");
    ASSERT_EQ(again.tensors().size(), src.tensors().size());
    for (const GgufTensorInfo& t : src.tensors()) {
      ASSERT_TRUE(again.contains(t.name)) << t.name;
      const Tensor a = src.get(t.name), b = again.get(t.name);
      ASSERT_EQ(a.dtype(), b.dtype()) << t.name;
      EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << t.name;
    }
    for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
      ASSERT_TRUE(again.has(key)) << key;
      EXPECT_EQ(again.value(key).s, src.value(key).s) << key;
      EXPECT_EQ(again.value(key).strings, src.value(key).strings) << key;
      EXPECT_EQ(again.value(key).u, src.value(key).u) << key;
    }
    save_lm_gguf(lm::LmModel::load(kData / file, file_layout()), tmp / "tinyemo.gguf", lm::GgufLayout::Tinyemo);
    const auto tok = lm::load_lm_tokenizer(tmp / "tinyemo.gguf");
    EXPECT_EQ(tok->encode("joy, sadness, anger & fear!", true),
              lm::load_lm_tokenizer(kData / file)->encode("joy, sadness, anger & fear!", true));
  }
}

// A random-weight LLaMA with 256-wide rows in k-quants: written in llama.cpp's
// layout and read back it computes exactly what the model converted in memory
// does, and stays close to F32.
TEST(LlamaCppGguf, KQuantModelsRoundTrip) {
  const std::string config_text = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 256,
    "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "hidden_act": "silu",
    "bos_token_id": 1, "eos_token_id": 2})";
  const JsonObject config(nlohmann::json::parse(config_text), "random-llama");
  const lm::LmConfig c = lm::parse_lm_config(config);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  struct Random : lm::WeightSource {
    std::map<std::string, Tensor> t;
    bool contains(const std::string& n) const override { return t.count(n) != 0; }
    Tensor get(const std::string& n) const override { return t.at(n); }
    std::string where(const std::string&) const override { return "random"; }
  } weights;
  for (const auto& [name, shape] : lm::lm_weight_shapes(c)) {
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (float& x : v) x = shape.size() == 1 ? 1.0f + dist(rng) : dist(rng);
    weights.t[name] = Tensor::from_vector<float>(shape, v);
  }
  const lm::LmModel f32 = lm::LmModel::bind(c, config.json(), weights);
  const std::vector<int32_t> ids = {1, 17, 300, 5, 99, 511, 42, 7, 250};
  lm::LmSession s32(f32);
  const Tensor want = s32.forward(ids, true);
  testing::TempDir tmp;
  auto error_of_dtype = [&](DType d) {
    lm::LoadOptions o;
    o.weight_dtype = d;
    const lm::LmModel m = lm::LmModel::bind(c, config.json(), weights, o);
    lm::LmSession s(m);
    return testing::rel_error(s.forward(ids, true), want);
  };
  const double q8_error = error_of_dtype(DType::Q8_0), q4_error = error_of_dtype(DType::Q4_0);
  std::printf("[ q8_0 ] logits vs f32: %.4f\n[ q4_0 ] logits vs f32: %.4f\n", q8_error, q4_error);
  double previous = 1.0;
  for (DType d : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    lm::LoadOptions o;
    o.weight_dtype = d;
    o.compute_layout = false;
    const lm::LmModel converted = lm::LmModel::bind(c, config.json(), weights, o);
    EXPECT_EQ(converted.layers()[0].q.weight.dtype(), d);
    save_lm_gguf(converted, tmp / "k.gguf");
    EXPECT_EQ(GgufFile::open(tmp / "k.gguf").info("blk.0.attn_q.weight").dtype, d);
    const lm::LmModel loaded = lm::LmModel::load(tmp / "k.gguf");
    lm::LmSession a(converted), b(loaded);
    const Tensor la = a.forward(ids, true), lb = b.forward(ids, true);
    EXPECT_EQ(testing::rel_error(lb, la), 0.0) << dtype_name(d);
    const double err = testing::rel_error(lb, want);
    std::printf("[ %s ] logits vs f32: %.4f\n", std::string(dtype_name(d)).c_str(), err);
    // More bits, less error; Q4_K (4.5 bits) beats Q4_0 (4.5 bits, one scale per 32, no min),
    // Q6_K (6.6 bits) sits between Q4_K and Q8_0 (8.5 bits).
    EXPECT_LT(err, previous) << dtype_name(d);
    previous = err;
    if (d == DType::Q4_K) {
      EXPECT_LT(err, q4_error);
    }
    if (d == DType::Q6_K) {
      EXPECT_GT(err, q8_error);
    }
    // Decode (the k-quant mat-vec) follows the prompt pass.
    lm::GenerateOptions g;
    g.max_new_tokens = 4;
    g.stop_at_eos = false;
    EXPECT_EQ(generate(loaded, ids, g).ids.size(), 4u);
  }
}

// A llama.cpp file rebuilt with one thing changed.
std::filesystem::path edited(const std::filesystem::path& src, const std::filesystem::path& out,
                             const std::function<void(const GgufFile&, GgufWriter&)>& edit,
                             const std::set<std::string>& drop = {}) {
  const GgufFile g = GgufFile::open(src);
  GgufWriter w;
  for (const auto& [key, value] : g.metadata()) {
    if (!drop.count(key)) w.set(key, value);
  }
  for (const GgufTensorInfo& t : g.tensors()) {
    if (!drop.count(t.name)) w.add_tensor(t.name, g.get(t.name));
  }
  edit(g, w);
  w.write(out);
  return out;
}

TEST(LlamaCppGguf, RefusesWhatItCannotRunByName) {
  testing::TempDir tmp;
  const auto llama = kData / "llama-tiny.q8_0.gguf", phi = kData / "phi-tiny.q8_0.gguf";
  auto expect = [&](const std::filesystem::path& file, const std::string& needle) {
    const std::string e = error_of([&] { lm::LmModel::load(file); });
    EXPECT_NE(e.find(needle), std::string::npos) << "error: \"" << e << "\" lacks \"" << needle << "\"";
  };
  auto expect_tokenizer = [&](const std::filesystem::path& file, const std::string& needle) {
    const std::string e = error_of([&] { lm::load_lm_tokenizer(file); });
    EXPECT_NE(e.find(needle), std::string::npos) << "error: \"" << e << "\" lacks \"" << needle << "\"";
  };
  expect(edited(llama, tmp / "a.gguf", [](auto&, GgufWriter& w) { w.set("general.architecture", GgufValue::string("mamba")); }),
         "\"mamba\" is not supported");
  expect(edited(llama, tmp / "b.gguf",
                [](auto& g, GgufWriter& w) { w.add_tensor("blk.0.attn_output.bias", g.get("output_norm.weight")); }),
         "blk.0.attn_output.bias");
  expect(edited(llama, tmp / "c.gguf",
                [](auto& g, GgufWriter& w) { w.add_tensor("rope_freqs.weight", g.get("output_norm.weight").rows(0, 8)); }),
         "rope_freqs.weight");
  expect(edited(llama, tmp / "d.gguf", [](auto&, GgufWriter& w) { w.set("llama.rope.scaling.type", GgufValue::string("yarn"));
                                                                  w.set("llama.rope.scaling.factor", GgufValue::f32(4.0f)); }),
         "\"yarn\" is not supported");
  expect(edited(llama, tmp / "e.gguf", [](auto&, GgufWriter& w) { w.set("llama.rope.dimension_count", GgufValue::u32(8)); }),
         "llama.rope.dimension_count");
  expect(edited(llama, tmp / "f.gguf", [](auto&, GgufWriter&) {}, {"llama.attention.layer_norm_rms_epsilon"}),
         "llama.attention.layer_norm_rms_epsilon");
  expect(edited(llama, tmp / "g.gguf", [](auto&, GgufWriter&) {}, {"blk.1.ffn_down.weight"}),
         "llama.cpp tensor \"blk.1.ffn_down.weight\"");
  expect(edited(phi, tmp / "h.gguf", [](auto&, GgufWriter&) {}, {"output.weight", "output.bias"}), "output.weight");
  expect(edited(llama, tmp / "i.gguf", [](auto&, GgufWriter& w) { w.set("llama.attention.head_count", GgufValue::i32_array({4, 2})); }),
         "llama.attention.head_count differs between layers");
  // Tokenizers llama.cpp tokenizes in ways tinyemo does not implement.
  expect_tokenizer(edited(phi, tmp / "t1.gguf", [](auto&, GgufWriter& w) { w.set("tokenizer.ggml.pre", GgufValue::string("qwen2")); }),
                   "\"qwen2\" is not supported");
  expect_tokenizer(edited(phi, tmp / "t2.gguf", [](auto&, GgufWriter&) {}, {"tokenizer.ggml.pre"}), "tokenizer.ggml.pre");
  expect_tokenizer(edited(llama, tmp / "t3.gguf", [](auto&, GgufWriter& w) { w.set("tokenizer.ggml.model", GgufValue::string("t5")); }),
                   "\"t5\" is not supported");
  expect_tokenizer(edited(llama, tmp / "t4.gguf", [](auto&, GgufWriter& w) { w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(9999)); }),
                   "tokenizer.ggml.bos_token_id = 9999");
  expect_tokenizer(edited(llama, tmp / "t5.gguf", [](auto&, GgufWriter& w) { w.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 2})); }),
                   "tokenizer.ggml.token_type has 2 entries");
  // Writing refuses, by name, models llama.cpp would run differently.
  const std::string e = error_of([&] {
    save_lm_gguf(lm::LmModel::load(testing::source_dir() / "tests/data/lm/gemma-variant", file_layout()), tmp / "w.gguf");
  });
  EXPECT_NE(e.find("tie_word_embeddings is false"), std::string::npos) << e;
  const std::string e2 = error_of([&] {
    save_lm_gguf(lm::LmModel::load(testing::source_dir() / "tests/data/lm/llama3-variant", file_layout()), tmp / "w.gguf");
  });
  EXPECT_NE(e2.find("llama3 rope_scaling"), std::string::npos) << e2;
  const std::string e3 = error_of([&] {
    save_lm_gguf(lm::LmModel::load(testing::source_dir() / "tests/data/lm/openelm-variant", file_layout()), tmp / "w.gguf");
  });
  EXPECT_NE(e3.find("llama.cpp's openelm"), std::string::npos) << e3;
}

// Tokenizers through llama.cpp's metadata and back: a SentencePiece model
// (trained here) and GPT-2's byte-level BPE encode every test text as before.
TEST(LlamaCppGguf, TokenizersSurviveTheMetadata) {
  auto through_metadata = [](const lm::Tokenizer& t, std::string_view pre) {
    GgufWriter w;
    lm::write_gguf_tokenizer(t, t.vocab_size(), pre, w);
    auto bytes = std::make_shared<std::string>(w.bytes());
    const GgufFile g = GgufFile::parse(bytes, reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), "m.gguf");
    return lm::tokenizer_from_gguf(g);
  };
  std::vector<std::string> texts = {"", " ", "  leading", "trailing  ", "a\tb\nc", "emoji \xF0\x9F\x98\x80 and \xC3\xA9",
                                    "</s> inside <s> text", "numbers 1234567 3.14159", "<|endoftext|>x"};
  const std::string corpus = read_file(testing::source_dir() / "tests/data/tokenizers/spm_corpus.txt");
  for (size_t pos = 0; pos < corpus.size();) {
    const size_t end = std::min(corpus.find('\n', pos), corpus.size());
    texts.push_back(corpus.substr(pos, end - pos));
    pos = end + 1;
  }
  const lm::SentencePieceTokenizer spm(testing::llama_like_spm_model(), "trained");
  const auto spm2 = through_metadata(spm, "gpt-2");
  EXPECT_EQ(spm2->vocab_size(), spm.vocab_size());
  EXPECT_EQ(spm2->bos_id(), spm.bos_id());
  EXPECT_EQ(spm2->eos_id(), spm.eos_id());
  const auto gpt2 = lm::Tokenizer::load(testing::fixture("gpt2-bpe/tokenizer.json"));
  const auto gpt2b = through_metadata(*gpt2, "gpt-2");
  EXPECT_EQ(gpt2b->eos_id(), gpt2->eos_id());
  const nlohmann::json cases = nlohmann::json::parse(read_file(testing::fixture("gpt2-bpe/cases.json")));
  for (const auto& c : cases) texts.push_back(c["text"]);
  for (const std::string& text : texts) {
    EXPECT_EQ(spm2->encode(text, true), spm.encode(text, true)) << text;
    EXPECT_EQ(gpt2b->encode(text, false), gpt2->encode(text, false)) << text;
    const auto ids = gpt2->encode(text, false);
    EXPECT_EQ(gpt2b->decode(ids), gpt2->decode(ids)) << text;
  }
  // SentencePiece options survive too.
  const lm::SentencePieceTokenizer with_eos(testing::llama_like_spm_model(), "trained", {.add_bos = false, .add_eos = true});
  EXPECT_EQ(through_metadata(with_eos, "gpt-2")->encode("joy", true), with_eos.encode("joy", true));
  // The ModelProto reader and writer keep every field the tokenizer uses.
  const lm::SentencePieceModel parsed = lm::parse_sentencepiece_model(testing::llama_like_spm_model(), "trained");
  EXPECT_EQ(parsed.model_type, lm::SentencePieceModel::kBpe);
  EXPECT_TRUE(parsed.byte_fallback);
  EXPECT_TRUE(parsed.add_dummy_prefix);
  EXPECT_FALSE(parsed.remove_extra_whitespaces);
  const lm::SentencePieceTokenizer rebuilt(lm::serialize_sentencepiece_model(parsed), "rebuilt");
  for (const std::string& text : texts) EXPECT_EQ(rebuilt.encode(text, true), spm.encode(text, true)) << text;
  EXPECT_THROW(lm::parse_sentencepiece_model(std::string("\x0a\xff", 2), "bad"), Error);
}

}  // namespace
}  // namespace tinyemo
