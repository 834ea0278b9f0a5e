// No silent wrong answers from the projector's files: non-finite weights or
// anchors, negative BatchNorm variances, a missing softmax temperature and
// duplicate label names are refused by name on load; feature folders are
// walked by io/walk.h (links followed, what is passed over listed);
// training that cannot fit in memory is refused before allocating.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <limits>

#include "io/file.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/projector/classify.h"
#include "models/projector/dataset.h"
#include "models/projector/model.h"
#include "models/projector/train.h"
#include "testing/testing.h"

namespace tinyemo::projector {
namespace {

namespace fs = std::filesystem;

using testing::error_of;

// A small saved model with labels a, b, c and random weights.
ProjectorModel small_model() {
  ProjectorConfig c;
  c.dims = {8, 4};
  ProjectorModel m(c, {"a", "b", "c"});
  MlpWeights w(m.layout());
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = static_cast<float>((i * 37) % 11) / 11.0f - 0.5f;
  m.set_members({w});
  std::vector<float> anchors(12);
  for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = static_cast<float>((i * 5) % 7) - 3.0f;
  m.set_anchors({"a", "b", "c"}, anchors);
  return m;
}

// The saved model with `edit` applied to its tensors and metadata.
fs::path edited(const testing::TempDir& tmp, const std::function<void(NamedTensors&, std::map<std::string, std::string>&)>& edit) {
  small_model().save(tmp / "good.safetensors");
  const auto st = SafetensorsFile::open(tmp / "good.safetensors");
  NamedTensors tensors;
  for (const auto& e : st.entries()) tensors.emplace_back(e.name, st.get(e.name).clone());
  std::map<std::string, std::string> meta = st.metadata();
  edit(tensors, meta);
  write_safetensors(tmp / "bad.safetensors", tensors, meta);
  return tmp / "bad.safetensors";
}

Tensor& tensor(NamedTensors& t, const std::string& name) {
  for (auto& [n, v] : t)
    if (n == name) return v;
  throw std::runtime_error("no tensor " + name);
}

TEST(ProjectorHostile, NonFiniteValuesAndNegativeVariancesAreRefusedByName) {
  testing::TempDir tmp;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string name;
    int64_t index;
    float value;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{{"anchors", 5, nan, "\"anchors\" holds nan at flat index 5"},
                                         {"model.0.weight", 3, nan, "\"model.0.weight\" holds nan"},
                                         {"model.4.bias", 1, -inf, "\"model.4.bias\" holds -inf"},
                                         {"model.1.running_mean", 0, inf, "\"model.1.running_mean\" holds inf"},
                                         {"model.1.running_var", 2, nan, "\"model.1.running_var\" holds nan"},
                                         {"model.1.running_var", 2, -0.5f, "running_var\"[2] = -0.5 is negative"}}) {
    const fs::path bad = edited(tmp, [&](NamedTensors& t, auto&) { tensor(t, c.name).mutable_data<float>()[c.index] = c.value; });
    const std::string e = error_of([&] { ProjectorModel::load(bad); });
    EXPECT_NE(e.find(bad.string()), std::string::npos) << e;
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.name << ": " << e;
  }
  // A zero variance is a unit that never varied: var + eps > 0, accepted.
  const fs::path zero = edited(tmp, [](NamedTensors& t, auto&) { tensor(t, "model.1.running_var").mutable_data<float>()[0] = 0.0f; });
  EXPECT_NO_THROW(ProjectorModel::load(zero));
  // Anchor files too.
  AnchorSet a{{"x", "y"}, {1, 2, std::numeric_limits<float>::quiet_NaN(), 4}, 2};
  save_anchors(tmp / "anchors.safetensors", a);
  EXPECT_NE(error_of([&] { load_anchors(tmp / "anchors.safetensors"); }).find("anchor of \"y\" holds nan"),
            std::string::npos);
}

TEST(ProjectorHostile, MissingTemperatureIsRefused) {
  testing::TempDir tmp;
  const fs::path no_temp = edited(tmp, [](NamedTensors&, std::map<std::string, std::string>& meta) {
    auto c = nlohmann::json::parse(meta.at("config"));
    c.erase("temperature");
    meta["config"] = c.dump();
  });
  EXPECT_NE(error_of([&] { ProjectorModel::load(no_temp); }).find("no \"temperature\""), std::string::npos);
  const fs::path no_config = edited(tmp, [](NamedTensors&, std::map<std::string, std::string>& meta) { meta.erase("config"); });
  EXPECT_NE(error_of([&] { ProjectorModel::load(no_config); }).find("no \"config\""), std::string::npos);
  const fs::path zero = edited(tmp, [](NamedTensors&, std::map<std::string, std::string>& meta) {
    auto c = nlohmann::json::parse(meta.at("config"));
    c["temperature"] = 0.0;
    meta["config"] = c.dump();
  });
  EXPECT_NE(error_of([&] { ProjectorModel::load(zero); }).find("temperature (0) must be positive"), std::string::npos);
}

TEST(ProjectorHostile, DuplicateLabelsAreRefusedEverywhere) {
  testing::TempDir tmp;
  const fs::path model = edited(tmp, [](NamedTensors&, std::map<std::string, std::string>& meta) {
    meta["labels"] = R"(["a","b","a"])";
  });
  EXPECT_NE(error_of([&] { ProjectorModel::load(model); }).find("\"a\" is listed twice"), std::string::npos);
  write_safetensors(tmp / "anchors.safetensors", {{"anchors", Tensor::zeros(DType::F32, {2, 4})}},
                    {{"labels", R"(["joy","joy"])"}});
  EXPECT_NE(error_of([&] { load_anchors(tmp / "anchors.safetensors"); }).find("\"joy\" is listed twice"),
            std::string::npos);
  EXPECT_THROW(save_anchors(tmp / "a2.safetensors", AnchorSet{{"joy", "joy"}, std::vector<float>(8), 4}), Error);
  // A shard whose labels say happy twice (evaluated 0.55 instead of 0.45).
  write_safetensors(tmp / "shard.safetensors",
                    {{"features", Tensor::zeros(DType::F32, {2, 3})},
                     {"label_ids", Tensor::from_vector<int64_t>({2}, {0, 1})}},
                    {{"labels", R"(["happy","happy"])"}, {"files", R"(["happy/1","happy/2"])"}});
  EXPECT_NE(error_of([&] { load_feature_shard(tmp / "shard.safetensors"); }).find("\"happy\" is listed twice"),
            std::string::npos);
  write_safetensors(tmp / "files.safetensors",
                    {{"features", Tensor::zeros(DType::F32, {2, 3})},
                     {"label_ids", Tensor::from_vector<int64_t>({2}, {0, 1})}},
                    {{"labels", R"(["happy","sad"])"}, {"files", R"(["x/1","x/1"])"}});
  EXPECT_NE(error_of([&] { load_feature_shard(tmp / "files.safetensors"); }).find("\"x/1\" is listed twice"),
            std::string::npos);
  // Label lists given on the command line (restrict_labels, set_anchors).
  ProjectorModel m = small_model();
  EXPECT_NE(error_of([&] { restrict_labels(m, {"a", "b", "a"}); }).find("\"a\" is listed twice"), std::string::npos);
  EXPECT_THROW(m.set_anchors({"joy", "joy"}, std::vector<float>(8)), Error);
}

TEST(ProjectorHostile, AnOverflowingProjectionIsRefusedNotPredicted) {
  // Finite weights and features whose product overflows: the first layer
  // gives +inf, the second inf - inf = NaN, which would compare false and
  // predict the first label.
  ProjectorModel m = small_model();
  MlpWeights w(m.layout());
  const auto p = MlpParamsView<float>::at(w.params.data(), m.layout());
  std::fill(p.w1, p.w1 + 4 * 8, 1.0f);
  std::fill(p.gamma, p.gamma + 4, 1.0f);
  for (int i = 0; i < 16; ++i) p.w2[i] = i % 2 ? 1.0f : -1.0f;
  m.set_members({w});
  std::vector<float> x(8, 3e38f);
  EXPECT_NE(error_of([&] { classify(m, x.data(), 1); }).find("not finite"), std::string::npos);
}

void write_feature(const fs::path& file, const std::vector<float>& values) {
  fs::create_directories(file.parent_path());
  save_pytorch_tensor(file, Tensor::from_vector<float>({static_cast<int64_t>(values.size())}, values));
}

TEST(ProjectorHostile, FeatureFoldersAreWalkedOneWay) {
  testing::TempDir tmp;
  const fs::path root = tmp / "features", elsewhere = tmp / "elsewhere";
  write_feature(root / "anger/1.pt", {1, 2});
  write_feature(elsewhere / "joy/2.pt", {3, 4});
  fs::create_directory_symlink(elsewhere / "joy", root / "joy");  // a symlinked label folder: read
  fs::create_symlink(root / "anger/missing.pt", root / "anger/dangling.pt");
  ASSERT_EQ(::mkfifo((root / "anger/fifo.pt").c_str(), 0644), 0);  // never opened
  write_feature(root / "anger/nested/3.pt", {5, 6});                // below the layout
  write_feature(root / "top.pt", {7, 8});                           // outside the label folders
  const FeatureSet set = load_features(root);
  EXPECT_EQ(set.labels, (std::vector<std::string>{"anger", "joy"}));
  EXPECT_EQ(set.files, (std::vector<std::string>{"anger/1", "joy/2"}));
  ASSERT_EQ(set.skipped.size(), 4u);
  std::string all;
  for (const auto& s : set.skipped) all += s + "\n";
  for (const char* needle : {"dangling.pt: a symbolic link to a missing target", "fifo.pt: a FIFO",
                             "nested: a folder below the levels", "top.pt: a feature file outside the label folders"}) {
    EXPECT_NE(all.find(needle), std::string::npos) << needle << " in\n" << all;
  }
}

TEST(ProjectorHostile, AFeatureFileWhereAFolderOrShardBelongsIsNamed) {
  testing::TempDir tmp;
  save_pytorch_tensor(tmp / "one.pt", Tensor::from_vector<float>({4}, {1, 2, 3, 4}));
  const std::string e = error_of([&] { load_features(tmp / "one.pt"); });
  EXPECT_NE(e.find("is not a feature shard (a safetensors file) but one .pt file"), std::string::npos) << e;
  EXPECT_EQ(e.find("header size"), std::string::npos) << e;
}

TEST(ProjectorHostile, TrainingOnOneLabelIsRefused) {
  FeatureSet set;
  set.labels = {"happy", "sad"};
  set.label_ids = {0, 0, 0, 0};
  set.files = {"happy/1", "happy/2", "happy/3", "happy/4"};
  set.features = Tensor::from_vector<float>({4, 2}, {1, 0, 0, 1, 1, 1, 0.5f, 0});
  set.source = "feats";
  TrainOptions o;
  o.hidden = 4;
  o.epochs = 1;
  o.batch = 2;
  const std::string e = error_of([&] { train_projector(set, o); });
  EXPECT_NE(e.find("feats: the training features hold one label (happy)"), std::string::npos) << e;
}

TEST(ProjectorHostile, TrainingThatCannotFitIsRefusedBeforeAllocating) {
  FeatureSet set;
  set.labels = {"a", "b"};
  set.label_ids = {0, 1, 0, 1};
  set.files = {"a/1", "b/1", "a/2", "b/2"};
  set.features = Tensor::zeros(DType::F32, {4, 8});
  set.source = "tiny";
  TrainOptions o;
  o.hidden = 100000000;  // --hidden 1e8: 1e16 parameters
  o.batch = 2;
  const auto run = testing::run_in_child([&] { train_projector(set, o); });
  EXPECT_TRUE(run.threw_error) << "crashed: " << run.crashed;
  EXPECT_NE(run.error.find("hidden size 100000000"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("more than this machine's"), std::string::npos) << run.error;
  EXPECT_LT(run.peak_growth_bytes, int64_t{64} << 20);
}

}  // namespace
}  // namespace tinyemo::projector
