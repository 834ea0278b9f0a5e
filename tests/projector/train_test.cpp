// Training end to end on small synthetic features: it learns, it is
// deterministic for a seed, ensembles and fixed anchors behave, the held-out
// split is stratified, and the metrics are right.
#include <gtest/gtest.h>

#include <set>

#include "models/projector/classify.h"
#include "core/rng.h"
#include "models/projector/train.h"
#include "testing/testing.h"

namespace tinyemo::projector {
namespace {

// Three Gaussian clusters in D dimensions (well separated, with noise).
FeatureSet clusters(int64_t per_class, int64_t D, uint64_t seed) {
  Rng rng(seed);
  FeatureSet set;
  set.labels = {"anger", "joy", "fear"};
  set.source = "synthetic";
  std::vector<std::vector<double>> centers(3, std::vector<double>(D));
  for (auto& c : centers) {
    for (auto& v : c) v = rng.normal() * 2.0;
  }
  std::vector<float> x;
  for (int64_t l = 0; l < 3; ++l) {
    for (int64_t i = 0; i < per_class; ++i) {
      for (int64_t d = 0; d < D; ++d) x.push_back(static_cast<float>(centers[l][d] + rng.normal()));
      set.label_ids.push_back(l);
      set.files.push_back(set.labels[l] + "/" + std::to_string(i));
    }
  }
  set.features = Tensor::from_vector<float>({3 * per_class, D}, x);
  return set;
}

double accuracy(const ProjectorModel& m, const FeatureSet& set) {
  const Scores s = classify(m, set.features.data<float>(), set.size());
  int64_t correct = 0;
  for (int64_t i = 0; i < set.size(); ++i) correct += s.predicted[i] == set.label_ids[i];
  return static_cast<double>(correct) / static_cast<double>(set.size());
}

TrainOptions small_options(LossKind loss) {
  TrainOptions o;
  o.hidden = 24;
  o.batch = 16;
  o.epochs = 8;
  o.loss = {loss, default_temperature(loss), 0.0};
  o.schedule.max_lr = 3e-3;
  return o;
}

TEST(ProjectorTrain, EveryLossLearnsSeparableClusters) {
  // 40 samples per class to train on, 20 held out.
  const FeatureSet all = clusters(60, 12, 1);
  std::vector<int64_t> train_rows, held_rows;
  for (int64_t i = 0; i < all.size(); ++i) (i % 60 < 40 ? train_rows : held_rows).push_back(i);
  const FeatureSet train = all.subset(train_rows), held = all.subset(held_rows);
  for (LossKind loss : {LossKind::InfoNCE, LossKind::Cosine, LossKind::NTXent, LossKind::SoftmaxCE}) {
    const ProjectorModel m = train_projector(train, small_options(loss));
    EXPECT_GE(accuracy(m, held), 0.9) << loss_name(loss);
    EXPECT_EQ(m.member(0).num_batches_tracked, 8 * (120 / 16)) << loss_name(loss);
  }
}

TEST(ProjectorTrain, DeterministicForASeed) {
  const FeatureSet train = clusters(20, 8, 3);
  TrainOptions o = small_options(LossKind::InfoNCE);
  o.epochs = 2;
  const ProjectorModel a = train_projector(train, o), b = train_projector(train, o);
  EXPECT_EQ(a.member(0).params, b.member(0).params);
  EXPECT_EQ(a.member(0).running_var, b.member(0).running_var);
  EXPECT_EQ(a.anchors(), b.anchors());
  o.seed = 1;
  const ProjectorModel c = train_projector(train, o);
  EXPECT_NE(a.member(0).params, c.member(0).params);
}

TEST(ProjectorTrain, FixedAnchorsStayAndLearnedAnchorsMove) {
  const FeatureSet train = clusters(20, 8, 4);
  TrainOptions o = small_options(LossKind::Cosine);
  o.epochs = 2;
  AnchorSet anchors;
  anchors.labels = {"fear", "joy", "anger", "surprise"};  // any order, extra labels allowed
  anchors.hidden = o.hidden;
  Rng rng(9);
  for (int64_t i = 0; i < 4 * o.hidden; ++i) anchors.rows.push_back(static_cast<float>(rng.normal()));
  o.anchors = anchors;
  const ProjectorModel fixed = train_projector(train, o);
  EXPECT_EQ(fixed.labels(), anchors.labels);
  EXPECT_EQ(fixed.anchors(), anchors.rows);
  o.anchors.reset();
  const ProjectorModel learned = train_projector(train, o);
  EXPECT_EQ(learned.labels(), train.labels);
  o.epochs = 1;  // same initialisation, one epoch fewer of anchor updates
  EXPECT_NE(train_projector(train, o).anchors(), learned.anchors());
  o.epochs = 2;
  o.anchors = anchors;
  o.anchors->hidden = 5;
  EXPECT_THROW(train_projector(train, o), Error);
}

TEST(ProjectorTrain, EnsembleSharesAnchorsAndRoundTrips) {
  const FeatureSet train = clusters(30, 10, 5);
  TrainOptions o = small_options(LossKind::Cosine);
  o.members = 3;
  o.input_norm = InputNorm::L2;
  const ProjectorModel m = train_projector(train, o);
  ASSERT_EQ(m.members().size(), 3u);
  EXPECT_NE(m.member(0).params, m.member(1).params);
  EXPECT_GE(accuracy(m, train), 0.95);
  testing::TempDir tmp;
  m.save(tmp / "ens.safetensors");
  const ProjectorModel back = ProjectorModel::load(tmp / "ens.safetensors");
  ASSERT_EQ(back.members().size(), 3u);
  EXPECT_EQ(back.config().input_norm, InputNorm::L2);
  const Scores s1 = classify(m, train.features.data<float>(), train.size());
  const Scores s2 = classify(back, train.features.data<float>(), train.size());
  EXPECT_EQ(s1.projected, s2.projected);
  // The projection of an ensemble is the mean of unit vectors: norm <= 1.
  for (int64_t i = 0; i < train.size(); ++i) {
    double n2 = 0;
    for (int64_t h = 0; h < m.hidden_dim(); ++h) n2 += std::pow(s1.projected[i * m.hidden_dim() + h], 2);
    EXPECT_LE(n2, 1.0 + 1e-5);
  }
}

TEST(ProjectorTrain, StratifiedDeterministicSplit) {
  const FeatureSet set = clusters(50, 4, 6);
  const Split a = split_train_val(set, 0.2, 0), b = split_train_val(set, 0.2, 0), c = split_train_val(set, 0.2, 1);
  EXPECT_EQ(a.val, b.val);
  EXPECT_NE(a.val, c.val);
  EXPECT_EQ(a.val.size(), 30u);
  EXPECT_EQ(a.train.size(), 120u);
  std::vector<int> per_label(3, 0);
  for (int64_t i : a.val) ++per_label[set.label_ids[i]];
  EXPECT_EQ(per_label, (std::vector<int>{10, 10, 10}));
  std::set<int64_t> all(a.train.begin(), a.train.end());
  for (int64_t i : a.val) EXPECT_TRUE(all.insert(i).second) << "index in both parts";
  EXPECT_EQ(all.size(), 150u);
  EXPECT_TRUE(split_train_val(set, 0.0, 0).val.empty());
  EXPECT_THROW(split_train_val(set, 1.0, 0), Error);
}

TEST(ProjectorTrain, EvaluationMetrics) {
  // truth/predicted over 3 labels; label 2 is never true nor predicted.
  const std::vector<int64_t> truth = {0, 0, 0, 1, 1}, pred = {0, 0, 1, 1, 0};
  const Evaluation e = evaluate(truth, pred, {"a", "b", "c"});
  EXPECT_DOUBLE_EQ(e.accuracy, 0.6);
  EXPECT_EQ(e.confusion, (std::vector<std::vector<int64_t>>{{2, 1, 0}, {1, 1, 0}, {0, 0, 0}}));
  EXPECT_DOUBLE_EQ(e.precision[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(e.recall[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(e.precision[1], 0.5);
  EXPECT_DOUBLE_EQ(e.recall[1], 0.5);
  EXPECT_EQ(e.support, (std::vector<int64_t>{3, 2, 0}));
  // Macro over the labels present (a, b): (2/3 + 1/2) / 2.
  EXPECT_DOUBLE_EQ(e.macro_f1, (2.0 / 3.0 + 0.5) / 2.0);
  const auto j = evaluation_json(e);
  EXPECT_EQ(j["per_class"]["b"]["n"], 2);
  EXPECT_EQ(j["confusion"][0][1], 1);
}

}  // namespace
}  // namespace tinyemo::projector
