// `tinyemo projector train|eval|classify|import` end to end, and their errors
// on bad input (each must name the file and exit non-zero).
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/file.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/lm/embeddings.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"
#include "core/rng.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;
using testing::fixture;
using testing::run_cli;

void write_feature(const fs::path& file, const std::vector<float>& v) {
  fs::create_directories(file.parent_path());
  save_pytorch_tensor(file, Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v).to(DType::F16));
}

// TinyEmo layout: 3 labels x `per_class` files of `dim` separable features.
void write_clusters(const fs::path& root, int per_class, int64_t dim) {
  Rng rng(3);
  const char* labels[] = {"anger", "fear", "joy"};
  for (int l = 0; l < 3; ++l) {
    std::vector<double> center(static_cast<size_t>(dim));
    for (auto& c : center) c = rng.normal() * 2.0;
    for (int i = 0; i < per_class; ++i) {
      std::vector<float> v(static_cast<size_t>(dim));
      for (int64_t d = 0; d < dim; ++d) v[d] = static_cast<float>(center[d] + rng.normal() * 0.5);
      write_feature(root / labels[l] / (std::to_string(i) + ".pt"), v);
    }
  }
}

// Runs a command that must fail: non-zero exit, one "tinyemo: error:" line naming `needle`.
void expect_failure_naming(const std::vector<std::string>& args, const std::string& needle) {
  const auto r = run_cli(args);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("tinyemo: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr does not name " << needle << ":\n" << r.err;
}

struct ImportedModel {
  testing::TempDir tmp;
  fs::path model = tmp / "tinyemo.safetensors";
  SafetensorsFile io = SafetensorsFile::open(fixture("tinyemo-projector/io.safetensors"));
  ImportedModel() {
    const auto r = run_cli({"projector", "import", "--bin", fixture("tinyemo-projector/pytorch_model.bin").string(),
                            "--anchors", fixture("tinyemo-projector/anchors.safetensors").string(), "--out",
                            model.string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["hidden_dim"], 256);
  }
  // The fixture's features as TinyEmo feature files, foldered by their true label.
  std::vector<fs::path> write_features(const fs::path& root, int64_t count) const {
    const Tensor f = io.get("features");
    const Tensor truth = io.get("true");
    const char* labels[] = {"anger", "disgust", "fear", "joy", "sadness", "surprise"};
    std::vector<fs::path> files;
    for (int64_t i = 0; i < count; ++i) {
      const auto row = f.row(i).to_f32_vector();
      const fs::path file = root / labels[truth.data<int64_t>()[i]] / (std::to_string(i) + ".pt");
      fs::create_directories(file.parent_path());
      save_pytorch_tensor(file, Tensor::from_vector<float>({static_cast<int64_t>(row.size())}, row));
      files.push_back(file);
    }
    return files;
  }
};

TEST(ProjectorCli, ImportThenClassifyMatchesTinyEmo) {
  ImportedModel m;
  const auto files = m.write_features(m.tmp / "features", 8);
  std::vector<std::string> args = {"projector", "classify", "--model", m.model.string(), "--top-k", "2", "--json"};
  for (const auto& f : files) args.push_back(f.string());
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 8u);
  const Tensor predicted = m.io.get("predicted");
  const Tensor distances = m.io.get("distances");
  for (int64_t i = 0; i < 8; ++i) {
    const auto& res = j["results"][i];
    EXPECT_EQ(res["predicted"], j["labels"][predicted.data<int64_t>()[i]]);
    ASSERT_EQ(res["top"].size(), 2u);
    EXPECT_EQ(res["top"][0]["label"], res["predicted"]);
    EXPECT_NEAR(res["top"][0]["distance"].get<double>(), distances.data<float>()[i * 6 + predicted.data<int64_t>()[i]],
                1e-5);
    EXPECT_GE(res["top"][0]["probability"].get<double>(), res["top"][1]["probability"].get<double>());
  }
}

TEST(ProjectorCli, EvalJsonOnTheFixture) {
  ImportedModel m;
  m.write_features(m.tmp / "features", 61);
  const auto r = run_cli({"projector", "eval", "--model", m.model.string(), "--features",
                          (m.tmp / "features").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const Tensor predicted = m.io.get("predicted"), truth = m.io.get("true");
  int64_t correct = 0;
  for (int64_t i = 0; i < 61; ++i) correct += predicted.data<int64_t>()[i] == truth.data<int64_t>()[i];
  EXPECT_EQ(j["n"], 61);
  EXPECT_NEAR(j["accuracy"].get<double>(), correct / 61.0, 1e-12);
  EXPECT_EQ(j["labels"].size(), 6u);
  ASSERT_EQ(j["confusion"].size(), 6u);
  int64_t total = 0, diagonal = 0;
  for (size_t t = 0; t < 6; ++t) {
    for (size_t p = 0; p < 6; ++p) total += j["confusion"][t][p].get<int64_t>();
    diagonal += j["confusion"][t][t].get<int64_t>();
  }
  EXPECT_EQ(total, 61);
  EXPECT_EQ(diagonal, correct);
  for (const auto& label : j["labels"]) {
    const auto& pc = j["per_class"][label.get<std::string>()];
    for (const char* k : {"precision", "recall", "f1", "n"}) EXPECT_TRUE(pc.contains(k)) << k;
  }
  EXPECT_TRUE(j.contains("macro_f1"));
}

TEST(ProjectorCli, TrainRecordsTheHeldOutSplitForEval) {
  testing::TempDir tmp;
  write_clusters(tmp / "features", 20, 16);
  const std::string model = (tmp / "m.safetensors").string();
  const auto r = run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out", model, "--hidden",
                          "32", "--epochs", "20", "--batch", "8", "--val-fraction", "0.25", "--seed", "7", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["train"], 45);
  EXPECT_EQ(summary["val"], 15);
  EXPECT_EQ(summary["val_evaluation"]["n"], 15);

  auto eval = [&](const std::string& split) {
    const auto e = run_cli({"projector", "eval", "--model", model, "--features", (tmp / "features").string(),
                            "--split", split, "--json"});
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return nlohmann::json::parse(e.out);
  };
  const auto val = eval("val");
  EXPECT_EQ(val["n"], 15);
  EXPECT_EQ(val["accuracy"], summary["val_evaluation"]["accuracy"]);
  EXPECT_GE(val["accuracy"].get<double>(), 0.9);  // separable clusters
  EXPECT_EQ(eval("train")["n"], 45);
  EXPECT_EQ(eval("all")["n"], 60);

  // Same seed, same model: training is deterministic.
  const std::string again = (tmp / "again.safetensors").string();
  ASSERT_EQ(run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out", again, "--hidden", "32",
                     "--epochs", "20", "--batch", "8", "--val-fraction", "0.25", "--seed", "7"})
                .exit_code,
            0);
  const SafetensorsFile a = SafetensorsFile::open(model), b = SafetensorsFile::open(again);
  EXPECT_EQ(a.get("model.4.weight").to_f32_vector(), b.get("model.4.weight").to_f32_vector());

  // The best recipe trains an ensemble.
  const std::string best = (tmp / "best.safetensors").string();
  ASSERT_EQ(run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out", best, "--hidden", "32",
                     "--batch", "8", "--recipe", "best"})
                .exit_code,
            0);
  EXPECT_TRUE(SafetensorsFile::open(best).contains("members.4.model.0.weight"));
}

TEST(ProjectorCli, ABatchLargerThanTheDataWarnsAndOneLabelIsRefused) {
  testing::TempDir tmp;
  write_clusters(tmp / "features", 6, 8);
  const auto r = run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out",
                          (tmp / "m.safetensors").string(), "--hidden", "8", "--epochs", "1", "--batch", "32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the batch size 32 is larger than the 15 training features"), std::string::npos)
      << r.err;
  fs::remove_all(tmp / "features" / "fear");
  fs::remove_all(tmp / "features" / "joy");
  const auto one = run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out",
                            (tmp / "one.safetensors").string(), "--hidden", "8", "--epochs", "1", "--batch", "2"});
  EXPECT_EQ(one.exit_code, 1);
  EXPECT_NE(one.err.find("hold one label (anger)"), std::string::npos) << one.err;
  EXPECT_FALSE(fs::exists(tmp / "one.safetensors"));
}

TEST(ProjectorCli, EvalSaysWhichSplitAndNeverMixesTrainingFilesUnasked) {
  testing::TempDir tmp;
  write_clusters(tmp / "features", 8, 16);
  const std::string model = (tmp / "m.safetensors").string();
  ASSERT_EQ(run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out", model, "--hidden", "16",
                     "--epochs", "2", "--batch", "4", "--val-fraction", "0.25"})
                .exit_code,
            0);
  // No --split on the training features: the held-out files only, said so.
  const auto j = run_cli({"projector", "eval", "--model", model, "--features", (tmp / "features").string(), "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto e = nlohmann::json::parse(j.out);
  EXPECT_EQ(e["split"], "val");
  EXPECT_EQ(e["n"], 6);
  EXPECT_NE(e["split_note"].get<std::string>().find("held out"), std::string::npos) << e["split_note"];
  // Text: the split and the confusion matrix.
  const auto t = run_cli({"projector", "eval", "--model", model, "--features", (tmp / "features").string()});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("split val: the 6 files the model held out"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("confusion (rows: true, columns: predicted)"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(" 1 anger"), std::string::npos) << t.out;
  // --split all says it includes the training files.
  const auto all = run_cli({"projector", "eval", "--model", model, "--features", (tmp / "features").string(),
                            "--split", "all", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const auto a = nlohmann::json::parse(all.out);
  EXPECT_EQ(a["n"], 24);
  EXPECT_NE(a["split_note"].get<std::string>().find("including those the model was trained on"), std::string::npos);
  // Other data (none of the model's files): all of it, as other data.
  write_clusters(tmp / "other", 2, 16);
  for (const char* label : {"anger", "fear", "joy"}) {
    for (int i = 0; i < 2; ++i) {
      fs::rename(tmp / "other" / label / (std::to_string(i) + ".pt"),
                 tmp / "other" / label / ("new" + std::to_string(i) + ".pt"));
    }
  }
  const auto o = run_cli({"projector", "eval", "--model", model, "--features", (tmp / "other").string(), "--json"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["split"], "all");
  EXPECT_EQ(nlohmann::json::parse(o.out)["n"], 6);
}

TEST(ProjectorCli, HelpDescribesTheHeldOutSplit) {
  const auto r = run_cli({"projector", "eval", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--split"), std::string::npos);
  EXPECT_NE(r.out.find("held out"), std::string::npos);
}

TEST(ProjectorCli, EmptyClassFolderIsNamed) {
  testing::TempDir tmp;
  write_clusters(tmp / "features", 3, 8);
  fs::create_directories(tmp / "features" / "surprise");
  expect_failure_naming({"projector", "train", "--features", (tmp / "features").string(), "--out",
                         (tmp / "m.safetensors").string()},
                        (tmp / "features" / "surprise").string());
  EXPECT_FALSE(fs::exists(tmp / "m.safetensors"));
}

TEST(ProjectorCli, FeatureDimsThatDoNotMatchTheModel) {
  ImportedModel m;
  write_feature(m.tmp / "wrong" / "joy" / "1.pt", std::vector<float>(512, 0.5f));
  expect_failure_naming({"projector", "eval", "--model", m.model.string(), "--features", (m.tmp / "wrong").string()},
                        (m.tmp / "wrong" / "joy" / "1.pt").string());
  expect_failure_naming({"projector", "classify", "--model", m.model.string(),
                         (m.tmp / "wrong" / "joy" / "1.pt").string()},
                        (m.tmp / "wrong" / "joy" / "1.pt").string());
}

TEST(ProjectorCli, MissingFiles) {
  ImportedModel m;
  expect_failure_naming({"projector", "eval", "--model", m.model.string(), "--features", (m.tmp / "nope").string()},
                        (m.tmp / "nope").string());
  expect_failure_naming({"projector", "classify", "--model", m.model.string(), (m.tmp / "nope.pt").string()},
                        (m.tmp / "nope.pt").string());
  expect_failure_naming({"projector", "eval", "--model", (m.tmp / "nope.safetensors").string(), "--features",
                         (m.tmp / "nope").string()},
                        (m.tmp / "nope.safetensors").string());
}

TEST(ProjectorCli, ClassifyReportsAMissingFileAndGoesOn) {
  ImportedModel m;
  const auto files = m.write_features(m.tmp / "features", 2);
  const auto r = run_cli({"projector", "classify", "--model", m.model.string(), files[0].string(),
                          (m.tmp / "nope.pt").string(), files[1].string(), "--jsonl"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find((m.tmp / "nope.pt").string()), std::string::npos) << r.err;
  std::vector<nlohmann::json> lines;
  std::istringstream out(r.out);
  for (std::string line; std::getline(out, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0]["file"], files[0].string());
  EXPECT_TRUE(lines[0].contains("scores"));  // the keys of `tinyemo classify`
  EXPECT_TRUE(lines[0]["top"][0].contains("probability"));
  EXPECT_EQ(lines[1]["file"], (m.tmp / "nope.pt").string());
  EXPECT_TRUE(lines[1].contains("error"));
  EXPECT_TRUE(lines[2].contains("predicted"));
  // CSV: a header and one row per file.
  const auto c = run_cli({"projector", "classify", "--model", m.model.string(), files[0].string(),
                          (m.tmp / "nope.pt").string(), "--csv"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(c.out.starts_with("image,predicted,")) << c.out;
  EXPECT_EQ(std::count(c.out.begin(), c.out.end(), '\n'), 3) << c.out;
}

TEST(ProjectorCli, ModelFileMissingATensor) {
  ImportedModel m;
  const SafetensorsFile full = SafetensorsFile::open(m.model);
  NamedTensors kept;
  for (const auto& e : full.entries()) {
    if (e.name != "model.4.weight") kept.emplace_back(e.name, full.get(e.name));
  }
  const fs::path broken = m.tmp / "broken.safetensors";
  write_safetensors(broken, kept, full.metadata());
  const auto files = m.write_features(m.tmp / "features", 1);
  const auto r = run_cli({"projector", "classify", "--model", broken.string(), files[0].string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(broken.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("model.4.weight"), std::string::npos) << r.err;
}

TEST(ProjectorCli, BadImportInputs) {
  testing::TempDir tmp;
  const std::string anchors = fixture("tinyemo-projector/anchors.safetensors").string();
  for (const char* hostile : {"hostile/truncated.bin", "hostile/os_system.pt"}) {
    expect_failure_naming({"projector", "import", "--bin", fixture(hostile).string(), "--anchors", anchors, "--out",
                           (tmp / "m.safetensors").string()},
                          fixture(hostile).string());
  }
  // Anchors of another width than the checkpoint's output.
  const fs::path narrow = tmp / "narrow.safetensors";
  write_safetensors(narrow, {{"anchors", Tensor::zeros(DType::F32, {6, 128})}},
                    {{"labels", R"(["anger","disgust","fear","joy","sadness","surprise"])"}});
  expect_failure_naming({"projector", "import", "--bin", fixture("tinyemo-projector/pytorch_model.bin").string(),
                         "--anchors", narrow.string(), "--out", (tmp / "m.safetensors").string()},
                        narrow.string());
  EXPECT_FALSE(fs::exists(tmp / "m.safetensors"));
}

TEST(ProjectorCli, FixedAnchorsMustCoverTheLabels) {
  testing::TempDir tmp;
  write_clusters(tmp / "features", 4, 8);
  const fs::path anchors = tmp / "anchors.safetensors";
  write_safetensors(anchors, {{"anchors", Tensor::zeros(DType::F32, {2, 16})}}, {{"labels", R"(["anger","fear"])"}});
  expect_failure_naming({"projector", "train", "--features", (tmp / "features").string(), "--out",
                         (tmp / "m.safetensors").string(), "--hidden", "16", "--anchors", anchors.string()},
                        anchors.string());
}

TEST(ProjectorCli, HeldOutSplitNeedsTheModelsFiles) {
  ImportedModel m;  // an imported model records no held-out files
  m.write_features(m.tmp / "features", 6);
  expect_failure_naming({"projector", "eval", "--model", m.model.string(), "--features",
                         (m.tmp / "features").string(), "--split", "val"},
                        m.model.string());
}

TEST(ProjectorCli, OpenTaxonomyLabelsSubset) {
  ImportedModel m;
  const auto files = m.write_features(m.tmp / "features", 3);
  const auto r = run_cli({"projector", "classify", "--model", m.model.string(), "--labels", "joy,sadness", "--json",
                          files[0].string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["labels"], nlohmann::json({"joy", "sadness"}));
  expect_failure_naming({"projector", "classify", "--model", m.model.string(), "--labels", "awe", files[0].string()},
                        "awe");
}

// An LM folder the GPT-2 tokenizer fits: llama-tiny's weights with a random
// 50257-row embedding table, config.json to match, GPT-2's tokenizer.json.
fs::path write_lm_with_gpt2_vocab(const fs::path& dir) {
  fs::create_directories(dir);
  const SafetensorsFile src = SafetensorsFile::open(fixture("llama-tiny/model.safetensors"));
  NamedTensors tensors;
  for (const auto& e : src.entries()) {
    if (e.name != "model.embed_tokens.weight" && e.name != "lm_head.weight") tensors.emplace_back(e.name, src.get(e.name));
  }
  Rng rng(5);
  std::vector<float> rows(50257 * 64);
  for (auto& v : rows) v = static_cast<float>(rng.normal());
  const Tensor table = Tensor::from_vector<float>({50257, 64}, rows);
  tensors.emplace_back("model.embed_tokens.weight", table);
  tensors.emplace_back("lm_head.weight", table);
  write_safetensors(dir / "model.safetensors", tensors);
  auto config = nlohmann::json::parse(read_file(fixture("llama-tiny/config.json")));
  config["vocab_size"] = 50257;
  write_file_atomic(dir / "config.json", config.dump());
  fs::copy_file(fixture("gpt2-bpe/tokenizer.json"), dir / "tokenizer.json");
  return dir;
}

TEST(ProjectorCli, AnchorsFromAnLmsInputEmbeddings) {
  testing::TempDir tmp;
  const fs::path lm = write_lm_with_gpt2_vocab(tmp / "lm");
  write_clusters(tmp / "features", 12, 16);
  const std::string model = (tmp / "m.safetensors").string(), grounding = "a scene evoking {label} to viewers";
  const auto r = run_cli({"projector", "train", "--features", (tmp / "features").string(), "--out", model,
                          "--anchors-lm", lm.string(), "--grounding", grounding, "--epochs", "2", "--batch", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The anchors are the LM's label anchors of the grounding texts, fixed during training.
  const lm::LmModel lm_model = lm::LmModel::load(lm);
  const auto tokenizer = lm::Tokenizer::load(lm);
  const SafetensorsFile m = SafetensorsFile::open(model);
  const Tensor anchors = m.get("anchors");
  ASSERT_EQ(anchors.shape(), Shape({3, 64}));
  const char* labels[] = {"anger", "fear", "joy"};
  for (int l = 0; l < 3; ++l) {
    const auto want = label_anchor(lm_model, *tokenizer, "a scene evoking " + std::string(labels[l]) + " to viewers");
    EXPECT_EQ(anchors.row(l).to_f32_vector(), want.to_f32_vector()) << labels[l];
  }
  // A new label list at inference (open taxonomy), and anchors written for --anchors.
  const fs::path feature = tmp / "features" / "joy" / "0.pt";
  const auto c = run_cli({"projector", "classify", "--model", model, "--anchors-lm", lm.string(), "--labels",
                          "awe,joy,contentment", "--json", feature.string()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(nlohmann::json::parse(c.out)["labels"], nlohmann::json({"awe", "joy", "contentment"}));
  const std::string anchors_file = (tmp / "anchors.safetensors").string();
  ASSERT_EQ(run_cli({"projector", "anchors", "--anchors-lm", lm.string(), "--labels", "awe,joy", "--out",
                     anchors_file})
                .exit_code,
            0);
  const auto c2 = run_cli({"projector", "classify", "--model", model, "--anchors", anchors_file, "--json",
                           feature.string()});
  ASSERT_EQ(c2.exit_code, 0) << c2.err;
  EXPECT_EQ(nlohmann::json::parse(c2.out)["labels"], nlohmann::json({"awe", "joy"}));
  // The projector's width must be the LM's.
  expect_failure_naming({"projector", "train", "--features", (tmp / "features").string(), "--out",
                         (tmp / "bad.safetensors").string(), "--anchors-lm", lm.string(), "--hidden", "32"},
                        lm.string());
}

}  // namespace
}  // namespace tinyemo
