// The Table VIII protocol on synthetic features whose labels are separable:
// joint training over the union of labels, held-out and official test
// splits, zero-shot datasets, labels without an anchor, the linear probe,
// CLIP zero-shot, the summaries (mean, sd, t and Wilson intervals) and the
// three report formats.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "analysis/statistics.h"
#include "core/error.h"
#include "data/evaluation.h"
#include "data/linear_probe.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kDim = 16;

// A fixed random centre per label name, so one label looks the same in every dataset.
std::vector<float> centre(const std::string& label) {
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(label)));
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> c(kDim);
  for (float& v : c) v = 3.0f * n(rng);
  return c;
}

projector::FeatureSet make_set(const std::vector<std::string>& labels, int per_label, uint32_t seed,
                               const std::string& prefix) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  projector::FeatureSet s;
  s.labels = labels;
  std::vector<float> x;
  for (size_t l = 0; l < labels.size(); ++l) {
    const std::vector<float> c = centre(labels[l]);
    for (int i = 0; i < per_label; ++i) {
      for (float v : c) x.push_back(v + noise(rng));
      s.label_ids.push_back(static_cast<int64_t>(l));
      s.files.push_back(prefix + labels[l] + "/" + std::to_string(i));
    }
  }
  s.features = Tensor::from_vector<float>({s.size(), kDim}, x);
  s.source = prefix;
  return s;
}

const std::vector<std::string> kEkman = {"anger", "disgust", "fear", "joy", "sadness", "surprise"};
const std::vector<std::string> kMikels = {"amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"};

class EvaluationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // emotion6: one "all" shard; fi: train + test shards; artphoto: all (only zero-shot here).
    projector::save_feature_shard(dir_ / "emotion6/all.safetensors", make_set(kEkman, 20, 1, "e6/"));
    projector::save_feature_shard(dir_ / "fi/train.safetensors", make_set(kMikels, 15, 2, "fi/"));
    projector::save_feature_shard(dir_ / "fi/test.safetensors", make_set(kMikels, 5, 3, "fi/t/"));
    projector::save_feature_shard(dir_ / "artphoto/all.safetensors", make_set({"amusement", "sadness", "awe"}, 6, 4, "ap/"));
    for (const char* d : {"emotion6", "fi", "artphoto"}) datasets_.push_back(data::load_eval_dataset(d, dir_ / d));
    options_.seeds = {0, 1, 2};
    options_.training.hidden = 32;
    options_.training.epochs = 20;
    options_.training.batch = 16;
    options_.training.loss = {projector::LossKind::Cosine, 0.1, 0.0};  // converges fast on tiny data
    options_.probe.l2_grid = {1e-3, 1e-1};
  }
  testing::TempDir dir_;
  std::vector<data::EvalDataset> datasets_;
  data::EvalOptions options_;
};

TEST_F(EvaluationTest, JointTrainingHeldOutAndZeroShot) {
  options_.train = {"emotion6", "fi"};
  const data::EvalReport r = data::run_evaluation(datasets_, options_);
  EXPECT_EQ(r.datasets, (std::vector<std::string>{"emotion6", "fi", "artphoto"}));
  EXPECT_EQ(r.methods, (std::vector<std::string>{"tinyemo projector, recipe tinyemo", "linear probe"}));
  const auto& ds = r.protocol.at("datasets");
  // emotion6 (all) is split: round(0.2 x 20) = 4 per label held out.
  EXPECT_EQ(ds.at("emotion6").at("n_eval"), 24);
  EXPECT_EQ(ds.at("emotion6").at("n_train"), 96);
  EXPECT_EQ(ds.at("emotion6").at("held_out_files").size(), 24u);
  EXPECT_EQ(ds.at("fi").at("eval_split"), "test");
  EXPECT_EQ(ds.at("fi").at("n_train"), 120);
  EXPECT_EQ(ds.at("artphoto").at("eval_split"), "all (not trained on)");
  EXPECT_EQ(ds.at("artphoto").at("n_eval"), 18);
  for (const auto& method : r.methods) {
    for (const auto& d : r.datasets) {
      const data::EvalCell* c = r.cell(method, d);
      ASSERT_NE(c, nullptr);
      EXPECT_EQ(c->trained_on, d != "artphoto");
      EXPECT_TRUE(c->labels_without_anchor.empty()) << method << " " << d;
      // Separable clusters (chance: 1/8 to 1/3); 20 epochs of the small projector
      // land at 0.79-1.0 across seeds and shuffle streams.
      for (double a : c->accuracy) EXPECT_GE(a, 0.7) << method << " " << d;
    }
  }
  const data::EvalCell* p = r.cell("tinyemo projector, recipe tinyemo", "fi");
  EXPECT_EQ(p->seeds, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(p->accuracy.size(), 3u);
  EXPECT_EQ(p->labels.size(), 8u);
  EXPECT_EQ(r.cell("linear probe", "fi")->accuracy.size(), 1u);
}

TEST_F(EvaluationTest, LabelsWithoutAnchorCountAsWrongAndAreReported) {
  options_.train = {"emotion6"};
  options_.linear_probe = false;
  options_.seeds = {0};
  const data::EvalReport r = data::run_evaluation(datasets_, options_);
  const data::EvalCell* fi = r.cell("tinyemo projector, recipe tinyemo", "fi");
  ASSERT_NE(fi, nullptr);
  EXPECT_FALSE(fi->trained_on);
  EXPECT_EQ(fi->labels_without_anchor, (std::vector<std::string>{"amusement", "awe", "contentment", "excitement"}));
  EXPECT_EQ(fi->images_without_anchor, 20);
  EXPECT_LE(fi->accuracy[0], 0.5 + 1e-12);  // at most the 20 of 40 images whose labels have anchors
  EXPECT_GE(fi->accuracy[0], 0.4);
  const std::string md = data::report_markdown(r);
  EXPECT_NE(md.find("‡ tinyemo projector, recipe tinyemo on fi: no anchor for amusement, awe, contentment, excitement (20 of 40 images"),
            std::string::npos)
      << md;
}

TEST_F(EvaluationTest, SummariesAndReports) {
  options_.train = {"fi"};
  const data::EvalReport r = data::run_evaluation(datasets_, options_);
  const data::EvalCell* c = r.cell("tinyemo projector, recipe tinyemo", "fi");
  const data::Summary s = data::summarize(*c);
  double mean = 0.0, ss = 0.0;
  for (double a : c->accuracy) mean += a / 3.0;
  for (double a : c->accuracy) ss += (a - mean) * (a - mean);
  const double sd = std::sqrt(ss / 2.0);
  EXPECT_NEAR(s.mean, mean, 1e-12);
  EXPECT_NEAR(s.sd, sd, 1e-12);
  EXPECT_NEAR(s.high - s.mean, 4.302652729911275 * sd / std::sqrt(3.0), 1e-9);  // t(0.975, 2)
  EXPECT_EQ(s.interval, "t over seeds");
  // One run: Wilson's score interval over the images (n = 40, p = 0.9; the formula evaluated in Python).
  data::EvalCell one;
  one.n = 40;
  one.accuracy = {0.9};
  const data::Summary w = data::summarize(one);
  EXPECT_NEAR(w.low, 0.769482247724777, 1e-9);
  EXPECT_NEAR(w.high, 0.9604204713173937, 1e-9);
  EXPECT_EQ(w.interval, "Wilson over images");

  const nlohmann::json j = data::report_json(r);
  EXPECT_EQ(j.at("paper").at("accuracy_percent").at("fi"), 64.16);
  EXPECT_EQ(j.at("paper").at("accuracy_percent").at("emotion6"), 73.4);
  EXPECT_EQ(j.at("cells").size(), 6u);
  EXPECT_EQ(j.at("protocol").at("projector").at("checkpoint_selection"), "none: the last epoch is evaluated");
  const std::string md = data::report_markdown(r);
  EXPECT_NE(md.find("| TinyEmo-700M (paper) | 73.40 | 64.16 | 39.83 |"), std::string::npos) << md;
  EXPECT_NE(md.find("UnbiasedEmo's test set"), std::string::npos);
  EXPECT_NE(md.find(" †"), std::string::npos);  // emotion6 and artphoto are zero-shot here
  const std::string html = data::report_html(r);
  EXPECT_NE(html.find("<table>"), std::string::npos);
  EXPECT_NE(html.find("<td>64.16</td>"), std::string::npos);
  EXPECT_EQ(html.find("<td>tinyemo projector, recipe tinyemo</td><td></td>"), std::string::npos);
}

TEST_F(EvaluationTest, RefusesBadSetups) {
  options_.train = {"webemo"};
  EXPECT_THROW(data::run_evaluation(datasets_, options_), Error);
  options_.train = {};
  EXPECT_THROW(data::run_evaluation(datasets_, options_), Error);
  // A label the taxonomy does not know.
  projector::save_feature_shard(dir_ / "bad/all.safetensors", make_set({"anger", "boredom"}, 3, 5, "b/"));
  try {
    data::load_eval_dataset("emotion6", dir_ / "bad");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label \"boredom\" is not in taxonomy emotion6"), std::string::npos) << e.what();
  }
}

TEST_F(EvaluationTest, TaxonomyLevels) {
  // WEBEmo features with fine labels, evaluated at the 7-label level.
  projector::save_feature_shard(dir_ / "webemo/all.safetensors",
                                make_set({"affection", "lust", "rage", "cheerfullness"}, 4, 9, "w/"));
  const data::EvalDataset w = data::load_eval_dataset("webemo:7", dir_ / "webemo");
  EXPECT_EQ(w.level, "7");
  EXPECT_EQ(w.labels.size(), 7u);
  const projector::FeatureSet& all = w.splits.at("all");
  EXPECT_EQ(all.labels, (std::vector<std::string>{"love", "joy", "anger"}));  // the level's order
  int64_t love = 0;
  for (int64_t id : all.label_ids) love += all.labels[id] == "love";
  EXPECT_EQ(love, 8);  // affection and lust
  EXPECT_THROW(data::load_eval_dataset("webemo:5", dir_ / "webemo"), Error);
}

TEST(EvaluationZeroShot, ClipRowOnFeaturesNearThePrompts) {
  // "Image features" = each label's prompt embedding plus a little noise: CLIP
  // zero-shot must get them right, and the row is zero-shot everywhere.
  const data::ClipTextEncoder clip = data::ClipTextEncoder::load(testing::fixture("clip-zeroshot-tiny"),
                                                                 testing::data("bpe_simple_vocab_16e6.txt.gz"));
  const std::vector<std::string> labels = {"anger", "joy", "fear"};
  const projector::AnchorSet prompts = data::clip_text_anchors(clip, labels, "a photo evoking {}");
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.01f);
  projector::FeatureSet all;
  all.labels = labels;
  std::vector<float> x;
  for (int64_t l = 0; l < 3; ++l) {
    for (int i = 0; i < 10; ++i) {
      for (int64_t k = 0; k < prompts.hidden; ++k) x.push_back(prompts.rows[l * prompts.hidden + k] + noise(rng));
      all.label_ids.push_back(l);
      all.files.push_back(labels[l] + "/" + std::to_string(i));
    }
  }
  all.features = Tensor::from_vector<float>({30, prompts.hidden}, x);
  testing::TempDir dir;
  projector::save_feature_shard(dir / "e6/all.safetensors", all);
  const std::vector<data::EvalDataset> ds = {data::load_eval_dataset("emotion6", dir / "e6")};
  data::EvalOptions o;
  o.train = {"emotion6"};
  o.seeds = {0};
  o.training.hidden = 16;
  o.training.epochs = 2;
  o.training.batch = 8;
  o.linear_probe = false;
  o.clip_zero_shot = &clip;
  const data::EvalReport r = data::run_evaluation(ds, o);
  const data::EvalCell* c = r.cell("CLIP zero-shot", "emotion6");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->trained_on);
  EXPECT_EQ(c->n, 6);  // the held-out part: round(0.2 x 10) per label
  EXPECT_EQ(c->accuracy, std::vector<double>{1.0});
  EXPECT_EQ(r.protocol.at("clip_zero_shot").at("template"), "a photo evoking {}");
}

TEST(LinearProbe, SeparableDataAndRestrictedPrediction) {
  const projector::FeatureSet train = make_set({"a", "b", "c"}, 30, 7, "x/");
  data::LinearProbeOptions o;
  o.l2_grid = {1e-3, 1e-1};
  const data::LinearProbe p = data::train_linear_probe(train, o);
  EXPECT_EQ(p.cv_accuracy.size(), 2u);
  const projector::FeatureSet test = make_set({"a", "b", "c"}, 10, 8, "y/");
  const auto pred = p.predict(test.features.data<float>(), test.size());
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) correct += pred[i] == test.label_ids[i];
  EXPECT_GE(correct, 29);
  // Restricted to labels {0, 2}: never predicts 1.
  for (int64_t k : p.predict(test.features.data<float>(), test.size(), {0, 2})) EXPECT_NE(k, 1);
}

}  // namespace
}  // namespace tinyemo
