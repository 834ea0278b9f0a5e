// The hardening of issue 18 seen from the command line: FIFOs named like
// inputs are reported, not waited on; symlinked label folders are read and
// what a folder walk passes over is reported (exit 2); outputs are refused
// inside their input folder; a .safetensors --out is a shard; LM weights keep
// their stored types; a .gguf's own tokenizer serves --anchors-lm; generation
// ends at the context with finish_reason "length".
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "../lm/tokenizer_spm_training.h"
#include "io/file.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/lm/presets.h"
#include "models/projector/dataset.h"
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
  // --json: the same counts on stdout.
  const auto again = run_cli([&] {
    auto args = features(shard);
    args.push_back("--json");
    return args;
  }(), 60.0);
  const auto j = nlohmann::json::parse(again.out);
  EXPECT_EQ(j["images"], 2);
  EXPECT_EQ(j["existing"], 2);
  EXPECT_EQ(j["written"], 0);
  EXPECT_EQ(j["skipped"], 2);
  EXPECT_EQ(j["skipped_entries"].size(), 2u);
  EXPECT_EQ(j["out"], shard.string());
  // No --format: the .safetensors name makes a shard file, not a folder named x.safetensors.
  ASSERT_TRUE(fs::is_regular_file(shard));
  const auto st = SafetensorsFile::open(shard);
  EXPECT_EQ(nlohmann::json::parse(st.metadata().at("files")), nlohmann::json({"fear/coffee", "joy/rocket"}));
}

TEST_F(ImageFolder, OutputsInsideTheInputFolderAreRefused) {
  const auto r = run_cli(features(images_ / "joy" / "features"), 60.0);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("inside the image folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(images_ / "joy" / "features"));
}

// A projector over clip-vision-small's 48-d embeddings with labels fear, joy.
fs::path small_projector(const testing::TempDir& tmp) {
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
  return tmp / "p.safetensors";
}

TEST_F(ImageFolder, ClassifyReportsAFifoAndGoesOn) {
  testing::TempDir tmp;
  const auto r = run_cli({"classify", "--clip", fixture("clip-vision-small").string(), "--projector",
                          small_projector(tmp).string(), (images_ / "joy" / "x.png").string(),
                          (images_ / "joy" / "rocket.jpg").string(), "--json"},
                         60.0);
  ASSERT_FALSE(r.timed_out) << "classify hung on a FIFO";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["results"][0].contains("error"));
  EXPECT_TRUE(j["results"][1].contains("predicted"));
}

TEST_F(ImageFolder, ClassifyWalksFoldersAndStreamsJsonLines) {
  testing::TempDir tmp;
  write_file_atomic(images_ / "joy" / "broken.png", "not a png");
  const auto r = run_cli({"classify", "--clip", fixture("clip-vision-small").string(), "--projector",
                          small_projector(tmp).string(), images_.string(), "--jsonl"},
                         60.0);
  ASSERT_FALSE(r.timed_out) << "classify hung on a FIFO";
  EXPECT_EQ(r.exit_code, 2) << r.err;  // one image failed, two entries skipped
  // One line per image of the folder (links followed, sorted), each a whole JSON object.
  std::vector<nlohmann::json> lines;
  std::istringstream out(r.out);
  for (std::string line; std::getline(out, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0]["image"], (images_ / "fear" / "coffee.png").string());
  EXPECT_TRUE(lines[0].contains("predicted"));
  EXPECT_EQ(lines[1]["image"], (images_ / "joy" / "broken.png").string());
  EXPECT_TRUE(lines[1].contains("error"));
  EXPECT_EQ(lines[2]["image"], (images_ / "joy" / "rocket.jpg").string());
  EXPECT_TRUE(lines[2]["scores"].contains("joy"));
  EXPECT_NE(r.err.find("x.png: a FIFO (named pipe), not a regular file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 images: 2 classified, 1 failed; 2 entries skipped"), std::string::npos) << r.err;
}

TEST_F(ImageFolder, ClassifyStreamsCsv) {
  testing::TempDir tmp;
  fs::remove(images_ / "joy" / "x.png");
  fs::remove(images_ / "joy" / "dangling.jpg");
  const auto r = run_cli({"classify", "--clip", fixture("clip-vision-small").string(), "--projector",
                          small_projector(tmp).string(), images_.string(), "--csv"},
                         60.0);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream out(r.out);
  std::string header, first, second, extra;
  std::getline(out, header);
  std::getline(out, first);
  std::getline(out, second);
  EXPECT_FALSE(std::getline(out, extra));
  EXPECT_EQ(header, "image,predicted,fear,joy,error");
  EXPECT_TRUE(first.starts_with((images_ / "fear" / "coffee.png").string() + ",")) << first;
  EXPECT_TRUE(second.ends_with(",")) << second;  // no error
  // The probabilities of a row sum to one.
  std::vector<std::string> cells;
  std::istringstream row(second);
  for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
  ASSERT_EQ(cells.size(), 4u) << second;
  EXPECT_NEAR(std::stod(cells[2]) + std::stod(cells[3]), 1.0, 1e-5);
  // --json with --jsonl is refused.
  EXPECT_NE(run_cli({"classify", "--clip", "x", "--projector", "y", "z", "--json", "--jsonl"}).exit_code, 0);
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
  EXPECT_NE(r.err.find("inside the features"), std::string::npos) << r.err;
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
    const lm::LmModel m = lm::random_lm(config, DType::F32, 5);
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

TEST(OptionErrors, RangesReadAsWords) {
  const auto k = run_cli({"classify", "--clip", "c", "--projector", "p", "x.png", "--top-k", "0"});
  EXPECT_NE(k.exit_code, 0);
  EXPECT_NE(k.err.find("--top-k: must be ≥ 1, got 0"), std::string::npos) << k.err;
  EXPECT_EQ(k.err.find("179769"), std::string::npos) << k.err;
  const auto v = run_cli({"projector", "train", "--features", "f", "--out", "o.safetensors", "--val-fraction", "2"});
  EXPECT_NE(v.err.find("--val-fraction: must be 0 .. 0.95, got 2"), std::string::npos) << v.err;
  const auto p = run_cli({"lm", "generate", "--model", "m", "--prompt", "x", "--top-p", "0"});
  EXPECT_NE(p.err.find("--top-p: must be > 0 and ≤ 1, got 0"), std::string::npos) << p.err;
  const auto n = run_cli({"features", "--model", "m", "--images", "i", "--out", "o", "--batch", "two"});
  EXPECT_NE(n.err.find("--batch: must be a number, got \"two\""), std::string::npos) << n.err;
}

TEST(LmHardening, GenerateTakesATokenizerAndHasADefaultLength) {
  TokenizedLm lm;
  const fs::path tokenizer = lm.dir / "tok" / "tokenizer.model";
  fs::create_directories(tokenizer.parent_path());
  fs::rename(lm.folder / "tokenizer.model", tokenizer);
  // Without a tokenizer in the folder, --prompt needs --tokenizer.
  EXPECT_NE(run_cli({"lm", "generate", "--model", lm.folder.string(), "--prompt", "hello"}).exit_code, 0);
  const auto r = run_cli({"lm", "generate", "--model", lm.folder.string(), "--tokenizer", tokenizer.string(),
                          "--prompt", "hello world", "--ignore-eos", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["text"].is_string());
  EXPECT_EQ(j["finish_reason"], "length");  // no --max-new-tokens: the default, cut at the 64-position context
  EXPECT_GT(j["ids"].size(), 32u);
}

TEST(FeaturesIdentity, ResumingWithAnotherModelIsRefused) {
  testing::TempDir dir;
  const auto src = fixture("clip-preprocess");
  fs::create_directories(dir / "images" / "joy");
  fs::copy_file(src / "rocket.jpg", dir / "images" / "joy" / "rocket.jpg");
  const fs::path f32 = fixture("clip-vision-small") / "model.safetensors";
  const fs::path f16 = fixture("clip-vision-small") / "model.f16.safetensors";
  for (const fs::path& out : {dir / "shard.safetensors", dir / "folder"}) {
    auto features = [&](const fs::path& model) {
      return run_cli({"features", "--model", model.string(), "--images", (dir / "images").string(), "--out",
                      out.string()});
    };
    ASSERT_EQ(features(f32).exit_code, 0) << out;
    fs::copy_file(src / "coffee.png", dir / "images" / "joy" / "coffee.png", fs::copy_options::overwrite_existing);
    // The same weights in F16 give other features of the same width: refused, nothing added.
    const auto other = features(f16);
    EXPECT_EQ(other.exit_code, 1) << other.err;
    EXPECT_NE(other.err.find("holds features of another CLIP model"), std::string::npos) << other.err;
    EXPECT_FALSE(fs::exists(dir / "folder" / "joy" / "coffee.pt"));
    // The same model resumes.
    const auto same = features(f32);
    EXPECT_EQ(same.exit_code, 0) << same.err;
    EXPECT_NE(same.err.find("1 written, 1 already done"), std::string::npos) << same.err;
    fs::remove(dir / "images" / "joy" / "coffee.png");
  }
  // The shard records the model and keeps its first source.
  const auto st = SafetensorsFile::open(dir / "shard.safetensors");
  EXPECT_NE(st.metadata().at("model").find("weights f32"), std::string::npos) << st.metadata().at("model");
  // A feature folder's record is hidden from readers of the folder.
  EXPECT_TRUE(fs::exists(dir / "folder" / ".tinyemo-features.json"));
  EXPECT_EQ(projector::load_features(dir / "folder").size(), 2);
}

TEST(LmHardening, TokenizeReadsAGgufShowsTokensAndDecodes) {
  TokenizedLm lm;
  lm.convert("f16");
  const auto folder = run_cli({"tokenize", "--tokenizer", (lm.folder / "tokenizer.model").string(), "--text",
                               "hello world", "--json"});
  const auto gguf = run_cli({"tokenize", "--tokenizer", lm.gguf.string(), "--text", "hello world", "--json"});
  ASSERT_EQ(gguf.exit_code, 0) << gguf.err;
  const auto j = nlohmann::json::parse(gguf.out);
  EXPECT_EQ(j["ids"], nlohmann::json::parse(folder.out)["ids"]);
  ASSERT_EQ(j["tokens"].size(), j["ids"].size());
  std::string ids;
  for (const auto& id : j["ids"]) {
    if (!ids.empty()) ids += ',';
    ids += std::to_string(id.get<int>());
  }
  const auto back = run_cli({"tokenize", "--tokenizer", lm.gguf.string(), "--ids", ids, "--json"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(nlohmann::json::parse(back.out)["text"], "hello world");
  const auto bad = run_cli({"tokenize", "--tokenizer", lm.gguf.string(), "--ids", "1,x"});
  EXPECT_NE(bad.err.find("--ids: \"x\" is not a token id"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace tinyemo

namespace tinyemo {
namespace {

// Every command that writes a file says so on stderr, naming the file and
// what is in it (stdout stays the command's data).
TEST(CommandOutputs, CommandsThatWriteFilesSayWhatTheyWrote) {
  testing::TempDir dir;
  const auto out = [&](const char* name) { return (dir.path() / name).string(); };
  const std::string vocab = testing::data("bpe_simple_vocab_16e6.txt.gz").string();
  const std::string zero_shot = fixture("clip-zeroshot-tiny").string();
  const struct {
    std::vector<std::string> args;
    std::string file, detail;
  } cases[] = {
      {{"clip", "preprocess", "--image", fixture("clip-preprocess/rocket.jpg").string(), "--out", out("p.st")},
       out("p.st"),
       "pixel_values [3, 224, 224]"},
      {{"clip", "encode", "--model", fixture("clip-vision-tiny").string(), "--pixels",
        fixture("clip-vision-tiny/io.safetensors").string(), "--out", out("e.st")},
       out("e.st"),
       "last_hidden_state ["},
      {{"clip", "encode-text", "--model", zero_shot, "--vocab", vocab, "--text", "joy", "--text", "fear", "--out",
        out("t.st")},
       out("t.st"),
       "input_ids [2, 77], text_embeds [2, 24]"},
      {{"projector", "anchors", "--labels", "joy,fear,anger", "--clip-text", zero_shot, "--vocab", vocab, "--out",
        out("a.st")},
       out("a.st"),
       "3 labels x 24"},
      {{"lm", "logits", "--model", fixture("llama-tiny").string(), "--ids",
        fixture("llama-tiny/io.safetensors").string(), "--out", out("l.st")},
       out("l.st"),
       "logits ["},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    ASSERT_EQ(r.exit_code, 0) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_TRUE(fs::is_regular_file(c.file)) << c.file;
    EXPECT_NE(r.err.find("wrote " + c.file + " (" + c.detail), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace tinyemo
