// `tinyemo lm logits | generate | bench` and `tinyemo convert` end to end,
// including the refusals of bad models, ids, prompts and files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../lm/tokenizer_spm_training.h"
#include "core/matmul.h"
#include "io/safetensors.h"
#include "models/lm/presets.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::run_cli;

std::vector<int64_t> fixture_ids(const std::string& model, const std::string& key) {
  const auto io = SafetensorsFile::open(testing::fixture(model + "/io.safetensors"));
  const Tensor t = io.get(key);
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

void expect_failure(const testing::CliResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("tinyemo: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(LmCli, LogitsMatchTheFixture) {
  testing::TempDir tmp;
  for (const std::string m : {"llama-tiny", "phi-tiny", "openelm-tiny", "qwen2-tiny", "gemma-tiny"}) {
    const auto dir = testing::fixture(m).string();
    auto r = run_cli({"lm", "logits", "--model", dir, "--ids", dir + "/io.safetensors", "--out", (tmp / "l.st").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = SafetensorsFile::open(tmp / "l.st").get("logits");
    const auto want = SafetensorsFile::open(testing::fixture(m + "/io.safetensors")).get("logits");
    EXPECT_LE(testing::rel_error(got, want), 1e-4) << m;
  }
}

TEST(LmCli, GreedyGenerationMatchesTheFixture) {
  for (const std::string m : {"llama-tiny", "phi-tiny", "openelm-tiny", "qwen2-tiny", "gemma-tiny"}) {
    const auto dir = testing::fixture(m).string();
    for (const char* extra : {"--greedy", "--no-kv-cache"}) {
      auto r = run_cli({"lm", "generate", "--model", dir, "--ids", dir + "/io.safetensors", "--max-new-tokens", "8",
                        extra, "--json"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const auto j = nlohmann::json::parse(r.out);
      EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), fixture_ids(m, "greedy_ids")) << m << " " << extra;
      EXPECT_TRUE(j["text"].is_null());  // the fixtures ship no tokenizer
    }
  }
}

TEST(LmCli, SamplingIsSeeded) {
  const auto dir = testing::fixture("llama-tiny").string();
  auto run = [&](const char* seed) {
    auto r = run_cli({"lm", "generate", "--model", dir, "--ids", dir + "/io.safetensors", "--max-new-tokens", "16",
                      "--temperature", "1.5", "--top-p", "0.95", "--seed", seed, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["ids"].get<std::vector<int64_t>>();
  };
  EXPECT_EQ(run("3"), run("3"));
  EXPECT_NE(run("3"), run("4"));
  expect_failure(run_cli({"lm", "generate", "--model", dir, "--ids", dir + "/io.safetensors", "--max-new-tokens", "2",
                          "--greedy", "--temperature", "0.7"}),
                 "--greedy");
}

// A LLaMA of random weights whose vocabulary fits the test SentencePiece model.
struct TokenizedModel {
  testing::TempDir dir;
  TokenizedModel() {
    nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                             {"hidden_act", "silu"}, {"hidden_size", 64}, {"intermediate_size", 96},
                             {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                             {"rms_norm_eps", 1e-5}, {"vocab_size", testing::kSpmVocabSize},
                             {"max_position_embeddings", 64}, {"bos_token_id", 1}, {"eos_token_id", 2}};
    const lm::LmModel m = lm::random_lm(config, DType::F32, 5);
    write_file_atomic(dir / "config.json", config.dump());
    write_safetensors(dir / "model.safetensors", m.tensors());
    write_file_atomic(dir / "tokenizer.model", testing::llama_like_spm_model());
  }
};

TEST(LmCli, PromptTextThroughFolderAndGguf) {
  TokenizedModel m;
  const std::string dir = m.dir.path().string(), gguf = (m.dir / "m.gguf").string();
  auto r = run_cli({"lm", "generate", "--model", dir, "--prompt", "hello world", "--max-new-tokens", "6",
                    "--ignore-eos", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"].size(), 6u);
  ASSERT_TRUE(j["text"].is_string());
  // Streaming (no --json) prints the same text.
  auto s = run_cli({"lm", "generate", "--model", dir, "--prompt", "hello world", "--max-new-tokens", "6",
                    "--ignore-eos"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, j["text"].get<std::string>() + "\n");

  // The GGUF carries the tokenizer: same prompt, same greedy continuation.
  auto c = run_cli({"convert", "--to", "gguf", "--quant", "f16", "--model", dir, "--out", gguf, "--json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  auto g = run_cli({"lm", "generate", "--model", gguf, "--prompt", "hello world", "--max-new-tokens", "6",
                    "--ignore-eos", "--json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_TRUE(nlohmann::json::parse(g.out)["text"].is_string());

  // Prompt plus new tokens beyond max_position_embeddings (64): generation
  // ends at the context's end with finish_reason "length".
  r = run_cli({"lm", "generate", "--model", dir, "--prompt", "hello world", "--max-new-tokens", "64", "--ignore-eos",
               "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto full = nlohmann::json::parse(r.out);
  EXPECT_EQ(full["finish_reason"], "length");
  EXPECT_LT(full["ids"].size(), 64u);
  // A prompt longer than the context is refused, naming the field.
  std::string long_prompt;
  for (int i = 0; i < 80; ++i) long_prompt += "hello world ";
  expect_failure(run_cli({"lm", "generate", "--model", dir, "--prompt", long_prompt, "--max-new-tokens", "4"}),
                 "max_position_embeddings");
}

TEST(LmCli, ConvertToGgufAndLoadBack) {
  testing::TempDir tmp;
  const auto dir = testing::fixture("openelm-tiny").string();
  const auto want = SafetensorsFile::open(testing::fixture("openelm-tiny/io.safetensors")).get("logits");
  // q5_k: the fixture's rows are shorter than a k-quant super-block (256) and become q8_0.
  for (const auto& [quant, bound] :
       std::vector<std::pair<std::string, double>>{{"f16", 2e-3}, {"q8_0", 0.03}, {"q4_0", 0.35}, {"q5_k", 0.03}}) {
    const std::string out = (tmp / (quant + ".gguf")).string();
    auto c = run_cli({"convert", "--to", "gguf", "--quant", quant, "--model", dir, "--out", out, "--json"});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_EQ(nlohmann::json::parse(c.out)["quant"], quant);
    auto l = run_cli({"lm", "logits", "--model", out, "--ids", dir + "/io.safetensors", "--out", (tmp / "l.st").string()});
    ASSERT_EQ(l.exit_code, 0) << l.err;
    EXPECT_LE(testing::rel_error(SafetensorsFile::open(tmp / "l.st").get("logits"), want), bound) << quant;
    auto g = run_cli({"lm", "generate", "--model", out, "--ids", dir + "/io.safetensors", "--max-new-tokens", "3", "--json"});
    EXPECT_EQ(g.exit_code, 0) << g.err;
  }
  expect_failure(run_cli({"convert", "--to", "gguf", "--quant", "q3_k", "--model", dir, "--out", (tmp / "x.gguf").string()}),
                 "--quant");
  expect_failure(run_cli({"convert", "--to", "onnx", "--quant", "f16", "--model", dir, "--out", (tmp / "x.gguf").string()}),
                 "--to");
}

TEST(LmCli, BenchPrintsTheContractFields) {
  auto r = run_cli({"lm", "bench", "--arch", "openelm-270m", "--random-weights", "--dtype", "q8_0", "--prompt-tokens",
                    "4", "--gen-tokens", "2", "--json", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"prefill_tokens_per_s", "decode_tokens_per_s", "weight_bytes_per_token", "read_bandwidth_gb_s"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
  }
  EXPECT_EQ(j["arch"], "openelm-270m");
  // Bandwidth probed before the prefill and after each decode chunk (2 tokens: 2 chunks); the bound is the
  // best copy probe, the read bound the best read probe.
  ASSERT_EQ(j["copy_bandwidth_probes_gb_s"].size(), 3u);
  ASSERT_EQ(j["read_bandwidth_probes_gb_s"].size(), 3u);
  ASSERT_EQ(j["decode_chunk_tokens_per_s"].size(), 2u);
  double best_copy = 0.0;
  for (const auto& p : j["copy_bandwidth_probes_gb_s"]) best_copy = std::max(best_copy, p.get<double>());
  EXPECT_EQ(j["copy_bandwidth_gb_s"].get<double>(), best_copy);
  const double bytes = j["weight_bytes_per_token"].get<double>(), tps = j["decode_tokens_per_s"].get<double>();
  EXPECT_NEAR(j["decode_fraction_of_bound"].get<double>(), tps * bytes / (best_copy * 1e9), 1e-9);
  EXPECT_NEAR(j["decode_fraction_of_read_bound"].get<double>(),
              tps * bytes / (j["read_bandwidth_gb_s"].get<double>() * 1e9), 1e-9);
  expect_failure(run_cli({"lm", "bench", "--arch", "gpt-5", "--random-weights", "--json"}), "gpt-5");
  expect_failure(run_cli({"lm", "bench", "--arch", "phi-2", "--random-weights", "--dtype", "q2_k"}), "--dtype");
  expect_failure(run_cli({"lm", "bench", "--arch", "phi-2", "--random-weights", "--compute", "fp8"}), "--compute");
  // bf16 prefill products where the CPU has them: the field says which ran.
  if (has_native_bf16_linear()) {
    r = run_cli({"lm", "bench", "--arch", "openelm-270m", "--random-weights", "--dtype", "q8_0", "--prompt-tokens",
                 "16", "--gen-tokens", "2", "--json", "--threads", "1", "--compute", "bf16"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["prefill_compute"], "bf16");
  }
  EXPECT_EQ(j["prefill_compute"], "f32");
}

// --save-checkpoint writes the random model's F32 tensors under their Hugging Face names and the preset as
// config.json (what bench/peers/llamacpp_speed.sh converts to GGUF), then benchmarks it loaded back.
TEST(LmCli, BenchSavesTheRandomCheckpoint) {
  testing::TempDir tmp;
  const std::string dir = (tmp / "openelm").string();
  auto r = run_cli({"lm", "bench", "--arch", "openelm-270m", "--random-weights", "--seed", "3", "--save-checkpoint", dir,
                    "--dtype", "q8_0", "--prompt-tokens", "2", "--gen-tokens", "1", "--json", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["checkpoint"], dir);
  EXPECT_EQ(j["dtype"], "q8_0");
  EXPECT_NE(r.err.find("wrote " + dir), std::string::npos) << r.err;
  std::ifstream config_file(tmp / "openelm/config.json");
  EXPECT_EQ(nlohmann::json::parse(config_file), lm::lm_preset_config("openelm-270m"));

  const lm::LmModel expected = lm::random_lm(lm::lm_preset_config("openelm-270m"), DType::F32, /*seed=*/3);
  const auto file = SafetensorsFile::open(tmp / "openelm/model.safetensors");
  ASSERT_EQ(file.entries().size(), expected.tensors().size());
  for (const auto& [name, t] : expected.tensors()) {
    ASSERT_TRUE(file.contains(name)) << name;
    const Tensor saved = file.get(name);
    ASSERT_EQ(saved.dtype(), DType::F32) << name;
    ASSERT_EQ(saved.shape(), t.shape()) << name;
    ASSERT_EQ(std::memcmp(saved.raw(), t.raw(), t.nbytes()), 0) << name;
  }
  expect_failure(run_cli({"lm", "bench", "--model", dir, "--save-checkpoint", (tmp / "again").string()}), "not both");
}

// Bad input: clear error naming the problem, non-zero exit, no crash.
TEST(LmCli, BadModelsAndInputsAreRefused) {
  testing::TempDir tmp;
  const auto llama = testing::fixture("llama-tiny");
  const std::string ids = (llama / "io.safetensors").string();
  auto logits = [&](const std::string& model, const std::string& ids_file) {
    return run_cli({"lm", "logits", "--model", model, "--ids", ids_file, "--out", (tmp / "o.st").string()});
  };
  // Missing tensor.
  {
    const auto d = tmp / "missing";
    std::filesystem::create_directories(d);
    std::filesystem::copy_file(llama / "config.json", d / "config.json");
    const auto st = SafetensorsFile::open(llama / "model.safetensors");
    NamedTensors t;
    for (const auto& e : st.entries())
      if (e.name != "model.norm.weight") t.emplace_back(e.name, st.get(e.name));
    write_safetensors(d / "model.safetensors", t);
    expect_failure(logits(d.string(), ids), "model.norm.weight");
  }
  // Unknown architecture and inconsistent config.
  for (const auto& [edit, needle] : std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>>{
           {[](nlohmann::json& j) { j["architectures"] = {"MambaForCausalLM"}; }, "MambaForCausalLM"},
           {[](nlohmann::json& j) { j["num_key_value_heads"] = 3; }, "num_key_value_heads"},
           {[](nlohmann::json& j) { j["hidden_size"] = 96; }, "model.embed_tokens.weight"}}) {
    const auto d = tmp / "cfg";
    std::filesystem::create_directories(d);
    auto j = nlohmann::json::parse(read_file(llama / "config.json"));
    edit(j);
    write_file_atomic(d / "config.json", j.dump());
    std::filesystem::copy_file(llama / "model.safetensors", d / "model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    expect_failure(logits(d.string(), ids), needle);
  }
  // Token ids out of range, bad id files.
  write_safetensors(tmp / "bad_ids.st", {{"input_ids", Tensor::from_vector<int64_t>({3}, {1, 320, 2})}});
  expect_failure(logits(llama.string(), (tmp / "bad_ids.st").string()), "token id 320 at position 1");
  write_safetensors(tmp / "float_ids.st", {{"input_ids", Tensor::from_vector<float>({2}, {1.0f, 2.0f})}});
  expect_failure(logits(llama.string(), (tmp / "float_ids.st").string()), "integer token ids");
  expect_failure(run_cli({"lm", "logits", "--model", llama.string(), "--ids", ids, "--key", "nope", "--out",
                          (tmp / "o.st").string()}),
                 "\"nope\"");
  // Prompt longer than the context.
  {
    const auto d = tmp / "short";
    std::filesystem::create_directories(d);
    auto j = nlohmann::json::parse(read_file(llama / "config.json"));
    j["max_position_embeddings"] = 8;
    write_file_atomic(d / "config.json", j.dump());
    std::filesystem::copy_file(llama / "model.safetensors", d / "model.safetensors");
    expect_failure(logits(d.string(), ids), "context of 8");
    expect_failure(run_cli({"lm", "generate", "--model", d.string(), "--ids", ids, "--max-new-tokens", "1"}),
                   "max_position_embeddings");
  }
  // Corrupt and foreign GGUF files.
  auto c = run_cli({"convert", "--to", "gguf", "--quant", "q8_0", "--model", llama.string(), "--out",
                    (tmp / "ok.gguf").string()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const std::string bytes = read_file(tmp / "ok.gguf");
  write_file_atomic(tmp / "cut.gguf", bytes.substr(0, bytes.size() / 2));
  expect_failure(logits((tmp / "cut.gguf").string(), ids), "cut.gguf");
  write_file_atomic(tmp / "junk.gguf", std::string(100, 'x'));
  expect_failure(logits((tmp / "junk.gguf").string(), ids), "not a GGUF file");
  // A prompt needs a tokenizer.
  expect_failure(run_cli({"lm", "generate", "--model", llama.string(), "--prompt", "hi", "--max-new-tokens", "1"}),
                 "llama-tiny");
  expect_failure(run_cli({"lm", "generate", "--model", llama.string(), "--max-new-tokens", "1"}), "--prompt");
  expect_failure(logits((tmp / "nowhere").string(), ids), "nowhere");
}

}  // namespace
}  // namespace tinyemo
