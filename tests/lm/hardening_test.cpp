// LM files that would give silently wrong answers: non-finite weights (in
// every stored dtype, quantised scales included) are refused by tensor name;
// the tokenizer of an LM is found one way (a folder's files, a .gguf's own,
// or --tokenizer), never guessed from files beside a .gguf.
#include <gtest/gtest.h>

#include <limits>

#include "io/file.h"
#include "io/safetensors.h"
#include "models/lm/gguf_model.h"
#include "models/lm/model.h"
#include "models/lm/presets.h"
#include "tokenizer_spm_training.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;

using testing::error_of;

TEST(LmHardening, NonFiniteWeightsAreRefusedByName) {
  const auto src = SafetensorsFile::open(testing::fixture("phi-tiny/model.safetensors"));
  for (const std::string poisoned : {"model.layers.1.mlp.fc1.weight", "model.final_layernorm.weight"}) {
    for (const DType d : {DType::F32, DType::BF16}) {
      testing::TempDir dir;
      fs::copy_file(testing::fixture("phi-tiny/config.json"), dir / "config.json");
      NamedTensors tensors;
      for (const auto& e : src.entries()) {
        Tensor t = src.get(e.name).clone();
        if (e.name == poisoned) {
          t.mutable_data<float>()[9] = std::numeric_limits<float>::quiet_NaN();
          t = t.to(d);
        }
        tensors.emplace_back(e.name, t);
      }
      write_safetensors(dir / "model.safetensors", tensors);
      const std::string e = error_of([&] { lm::LmModel::load(dir.path()); });
      EXPECT_NE(e.find(poisoned), std::string::npos) << e;
      EXPECT_NE(e.find("non-finite value at flat index 9"), std::string::npos) << e;
    }
  }
}

TEST(LmHardening, OneTokenizerLookupForFoldersAndGguf) {
  testing::TempDir dir;
  const nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_act", "silu"}, {"hidden_size", 32},
      {"intermediate_size", 64}, {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 2},
      {"rms_norm_eps", 1e-5}, {"vocab_size", testing::kSpmVocabSize}, {"max_position_embeddings", 64},
      {"bos_token_id", 1}, {"eos_token_id", 2}};
  fs::create_directories(dir / "hf");
  fs::create_directories(dir / "bare");
  write_file_atomic(dir / "hf/config.json", config.dump());
  write_safetensors(dir / "hf/model.safetensors", lm::random_lm(config, DType::F32, 1).tensors());
  write_file_atomic(dir / "hf/tokenizer.model", testing::llama_like_spm_model());
  save_lm_gguf(lm::LmModel::load(dir / "hf"), dir / "with.gguf");
  write_file_atomic(dir / "bare/config.json", config.dump());
  write_safetensors(dir / "bare/model.safetensors", lm::random_lm(config, DType::F32, 1).tensors());
  save_lm_gguf(lm::LmModel::load(dir / "bare"), dir / "hf/without.gguf");  // beside a tokenizer it does not carry

  const std::vector<int32_t> want = lm::load_lm_tokenizer(dir / "hf")->encode("hello world", true);
  EXPECT_EQ(lm::load_lm_tokenizer(dir / "with.gguf")->encode("hello world", true), want);
  const std::string e = error_of([&] { lm::load_lm_tokenizer(dir / "hf/without.gguf"); });
  EXPECT_NE(e.find("embeds no tokenizer"), std::string::npos) << e;
  EXPECT_NE(e.find("--tokenizer"), std::string::npos) << e;
  // An explicit tokenizer: a file, a folder or another .gguf.
  EXPECT_EQ(lm::load_lm_tokenizer(dir / "hf/without.gguf", dir / "hf/tokenizer.model")->encode("hello world", true), want);
  EXPECT_EQ(lm::load_lm_tokenizer(dir / "hf/without.gguf", dir / "hf")->encode("hello world", true), want);
  EXPECT_EQ(lm::load_lm_tokenizer(dir / "hf/without.gguf", dir / "with.gguf")->encode("hello world", true), want);
}

}  // namespace
}  // namespace tinyemo
