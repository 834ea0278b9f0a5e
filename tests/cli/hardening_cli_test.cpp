// The hardening of issue 18 seen from the command line: FIFOs named like
// inputs are reported, not waited on; symlinked label folders are read and
// what a folder walk passes over is reported (exit 2); outputs are refused
// inside their input folder; a .safetensors --out is a shard; LM weights keep
// their stored types; a .gguf's own tokenizer serves --anchors-lm; generation
// ends at the context with finish_reason "length".
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../lm/tokenizer_spm_training.h"
#include "io/file.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/lm/presets.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;
using testing::fixture;
using testing::run_cli;

class ImageFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto src = fixture("clip-preprocess");
    fs::create_directories(images_ / "joy");
    fs::create_directories(elsewhere_ / "fear");
    fs::copy_file(src / "rocket.jpg", images_ / "joy" / "rocket.jpg");
    fs::copy_file(src / "coffee.png", elsewhere_ / "fear" / "coffee.png");
    fs::create_directory_symlink(elsewhere_ / "fear", images_ / "fear");  // a symlinked label folder
    ASSERT_EQ(::mkfifo((images_ / "joy" / "x.png").c_str(), 0644), 0);   // would block a reader
    fs::create_symlink(images_ / "joy" / "gone.jpg", images_ / "joy" / "dangling.jpg");
  }
  std::vector<std::string> features(const fs::path& out) const {
    return {"features", "--model", fixture("clip-vision-small").string(), "--images", images_.string(), "--out",
            out.string(), "--threads", "2"};
  }
  testing::TempDir dir_;
  fs::path images_ = dir_ / "images", elsewhere_ = dir_ / "elsewhere";
};

TEST_F(ImageFolder, FeaturesFollowLinksReportWhatTheyPassOverAndInferAShard) {
  const fs::path shard = dir_ / "out" / "features.safetensors";
  const auto r = run_cli(features(shard), 60.0);
  ASSERT_FALSE(r.timed_out) << "features hung on a FIFO";
  EXPECT_EQ(r.exit_code, 2) << r.err;  // entries skipped
  EXPECT_NE(r.err.find("x.png: a FIFO (named pipe), not a regular file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("dangling.jpg: a symbolic link to a missing target"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 entries skipped"), std::string::npos) << r.err;
  // No --format: the .safetensors name makes a shard file, not a folder named x.safetensors.
  ASSERT_TRUE(fs::is_regular_file(shard));
  const auto st = SafetensorsFile::open(shard);
  EXPECT_EQ(nlohmann::json::parse(st.metadata().at("files")), nlohmann::json({"fear/coffee", "joy/rocket"}));
}

TEST_F(ImageFolder, OutputsInsideTheInputFolderAreRefused) {
  const auto r = run_cli(features(images_ / "joy" / "features"), 60.0);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("inside --images"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(images_ / "joy" / "features"));
}

TEST_F(ImageFolder, ClassifyReportsAFifoAndGoesOn) {
  testing::TempDir tmp;
  projector::ProjectorConfig c;
  c.dims = {48, 8};
  projector::ProjectorModel m(c, {"fear", "joy"});
  projector::MlpWeights w(m.layout());
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = static_cast<float>(i % 7) * 0.01f;
  m.set_members({w});
  std::vector<float> anchors(16);
  for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = static_cast<float>(i % 5) - 2.0f;
  m.set_anchors({"fear", "joy"}, anchors);
  m.save(tmp / "p.safetensors");
  const auto r = run_cli({"classify", "--clip", fixture("clip-vision-small").string(), "--projector",
                          (tmp / "p.safetensors").string(), (images_ / "joy" / "x.png").string(),
                          (images_ / "joy" / "rocket.jpg").string(), "--json"},
                         60.0);
  ASSERT_FALSE(r.timed_out) << "classify hung on a FIFO";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["results"][0].contains("error"));
  EXPECT_TRUE(j["results"][1].contains("predicted"));
}

TEST(ProjectorOutputs, TrainingIntoItsOwnFeaturesIsRefused) {
  testing::TempDir tmp;
  for (const char* label : {"happy", "sad"}) {
    for (int i = 0; i < 4; ++i) {
      const fs::path f = tmp / "features" / label / (std::to_string(i) + ".pt");
      fs::create_directories(f.parent_path());
      save_pytorch_tensor(f, Tensor::from_vector<float>({4}, {float(i), 1.0f, label[0] == 'h' ? 1.0f : -1.0f, 0.5f}));
    }
  }
  const fs::path out = tmp / "features" / "happy" / "model.pt";
  const auto r = run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out", out.string(),
                          "--hidden", "8", "--epochs", "1", "--batch", "4"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("inside --features"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// A LLaMA of random weights with a SentencePiece tokenizer, as a folder and
// as a .gguf (carrying the tokenizer) in a folder of its own.
struct TokenizedLm {
  testing::TempDir dir;
  fs::path folder = dir / "hf", gguf = dir / "alone" / "lm.gguf";
  TokenizedLm() {
    const nlohmann::json config = {
        {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_act", "silu"},
        {"hidden_size", 64}, {"intermediate_size", 96}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
        {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5}, {"vocab_size", testing::kSpmVocabSize},
        {"max_position_embeddings", 64}, {"bos_token_id", 1}, {"eos_token_id", 2}};
    const LmModel m = random_lm(config, DType::F32, 5);
    fs::create_directories(folder);
    write_file_atomic(folder / "config.json", config.dump());
    write_safetensors(folder / "model.safetensors", m.tensors());
    write_file_atomic(folder / "tokenizer.model", testing::llama_like_spm_model());
  }
  void convert(const std::string& quant) const {
    const auto c = run_cli({"convert", "--to", "gguf", "--quant", quant, "--model", folder.string(), "--out",
                            gguf.string()});
    ASSERT_EQ(c.exit_code, 0) << c.err;
  }
};

TEST(LmHardening, AGgufCarriesTheTokenizerForAnchors) {
  TokenizedLm lm;
  lm.convert("f16");
  const fs::path anchors = lm.dir / "anchors.safetensors";
  const auto r = run_cli({"projector", "anchors", "--anchors-lm", lm.gguf.string(), "--labels", "joy,fear", "--out",
                          anchors.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto from_gguf = projector::load_anchors(anchors);
  EXPECT_EQ(from_gguf.labels, (std::vector<std::string>{"joy", "fear"}));
  // The folder's tokenizer gives the same anchors (the weights are the f16 copy's, so nearly the same).
  const auto f = run_cli({"projector", "anchors", "--anchors-lm", lm.folder.string(), "--labels", "joy,fear", "--out",
                          (lm.dir / "folder.safetensors").string()});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_LT(testing::rel_error(from_gguf.rows, projector::load_anchors(lm.dir / "folder.safetensors").rows), 1e-2);
  // Labels given twice on the command line.
  const auto twice = run_cli({"projector", "anchors", "--anchors-lm", lm.gguf.string(), "--labels", "joy,joy", "--out",
                              (lm.dir / "twice.safetensors").string()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("\"joy\" is listed twice"), std::string::npos) << twice.err;
}

TEST(LmHardening, BenchKeepsTheFilesWeightTypes) {
  TokenizedLm lm;
  lm.convert("q8_0");
  const auto r = run_cli({"lm", "bench", "--model", lm.gguf.string(), "--prompt-tokens", "4", "--gen-tokens", "2",
                          "--json", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["dtype"], "q8_0");
  const auto f = run_cli({"lm", "bench", "--model", lm.gguf.string(), "--dtype", "f32", "--prompt-tokens", "4",
                          "--gen-tokens", "2", "--json", "--threads", "1"});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(nlohmann::json::parse(f.out)["dtype"], "f32");
}

TEST(LmHardening, GenerationEndsAtTheContextWithLength) {
  TokenizedLm lm;
  const auto r = run_cli({"lm", "generate", "--model", lm.folder.string(), "--prompt", "hello world",
                          "--max-new-tokens", "1000000000", "--ignore-eos", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["finish_reason"], "length");
  const auto prompt = run_cli({"tokenize", "--tokenizer", (lm.folder / "tokenizer.model").string(), "--json",
                               "--add-special", "--text", "hello world"});
  ASSERT_EQ(prompt.exit_code, 0) << prompt.err;
  const size_t prompt_len = nlohmann::json::parse(prompt.out)["ids"].size();
  EXPECT_EQ(j["ids"].size() + prompt_len, 64u);  // up to max_position_embeddings
}

}  // namespace
}  // namespace tinyemo
