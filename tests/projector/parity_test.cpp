// Parity with TinyEmo: its own checkpoint (pytorch_model.bin + anchors),
// imported and run on the Emotion6 features of the fixture, must give the
// fixture's projected vectors, distances and predictions.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "models/projector/classify.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo::projector {
namespace {

using testing::fixture;
using testing::rel_error;

struct ImportedFixture {
  ProjectorModel model = ProjectorModel::import_tinyemo(fixture("tinyemo-projector/pytorch_model.bin"),
                                                        fixture("tinyemo-projector/anchors.safetensors"));
  SafetensorsFile io = SafetensorsFile::open(fixture("tinyemo-projector/io.safetensors"));
};

void expect_matches_fixture(const ProjectorModel& model, const SafetensorsFile& io) {
  const Tensor features = io.get("features");
  const int64_t n = features.dim(0);
  const std::vector<float> x = features.to_f32_vector();
  const Scores s = classify(model, x.data(), n);
  EXPECT_LT(rel_error(s.projected, io.get("projected").to_f32_vector()), 1e-5);
  EXPECT_LT(rel_error(s.distances, io.get("distances").to_f32_vector()), 1e-5);
  const Tensor predicted = io.get("predicted");
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(s.predicted[i], predicted.data<int64_t>()[i]) << "sample " << i;
}

TEST(ProjectorParity, ImportedTinyEmoCheckpointReproducesFixture) {
  ImportedFixture f;
  EXPECT_EQ(f.model.input_dim(), 768);
  EXPECT_EQ(f.model.hidden_dim(), 256);
  EXPECT_EQ(f.model.labels(), (std::vector<std::string>{"anger", "disgust", "fear", "joy", "sadness", "surprise"}));
  EXPECT_EQ(f.model.member(0).num_batches_tracked, 60);
  expect_matches_fixture(f.model, f.io);
}

TEST(ProjectorParity, SavedModelReloadsToTheSameOutputs) {
  ImportedFixture f;
  testing::TempDir tmp;
  f.model.save(tmp / "model.safetensors");
  const ProjectorModel back = ProjectorModel::load(tmp / "model.safetensors");
  EXPECT_EQ(back.member(0).num_batches_tracked, 60);
  expect_matches_fixture(back, f.io);
}

TEST(ProjectorParity, OpenTaxonomySubsetKeepsDistances) {
  ImportedFixture f;
  ProjectorModel sub = f.model;
  restrict_labels(sub, {"sadness", "joy"});
  const Tensor features = f.io.get("features");
  const std::vector<float> x = features.to_f32_vector();
  const Scores all = classify(f.model, x.data(), features.dim(0));
  const Scores two = classify(sub, x.data(), features.dim(0));
  for (int64_t i = 0; i < features.dim(0); ++i) {
    EXPECT_FLOAT_EQ(two.distances[i * 2 + 0], all.distances[i * 6 + 4]);
    EXPECT_FLOAT_EQ(two.distances[i * 2 + 1], all.distances[i * 6 + 3]);
    EXPECT_EQ(two.predicted[i], all.distances[i * 6 + 4] <= all.distances[i * 6 + 3] ? 0 : 1);
    EXPECT_NEAR(two.probabilities[i * 2] + two.probabilities[i * 2 + 1], 1.0, 1e-6);
  }
  EXPECT_THROW(restrict_labels(sub, {"awe"}), Error);
}

}  // namespace
}  // namespace tinyemo::projector
