// Feature loading: TinyEmo's folder layout and feature shards, order, and
// the errors (each must name the offending file or folder).
#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "core/dtype.h"
#include "io/pytorch.h"
#include "models/projector/dataset.h"
#include "testing/testing.h"

namespace tinyemo::projector {
namespace {

namespace fs = std::filesystem;

void write_feature(const fs::path& file, const std::vector<float>& values, DType dtype = DType::F16) {
  fs::create_directories(file.parent_path());
  save_pytorch_tensor(file, Tensor::from_vector<float>({static_cast<int64_t>(values.size())}, values).to(dtype));
}

// Expects `fn` to throw a tinyemo::Error whose message contains `needle`.
template <class Fn>
void expect_error_naming(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one naming " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ProjectorDataset, FolderLayoutOrderAndLabels) {
  testing::TempDir tmp;
  const fs::path root = tmp / "features";
  write_feature(root / "sadness" / "2.pt", {1, 2, 3});
  write_feature(root / "sadness" / "10.pt", {4, 5, 6});
  write_feature(root / "anger" / "7.pt", {7, 8, 9}, DType::F32);
  fs::create_directories(root / ".cache");                 // hidden: skipped
  std::ofstream(root / "sadness" / "notes.txt") << "x";    // not a .pt: skipped
  std::ofstream(root / "README") << "x";                   // not a folder: skipped
  const FeatureSet set = load_features(root);
  EXPECT_EQ(set.labels, (std::vector<std::string>{"anger", "sadness"}));
  // Sorted by name as Python's sorted(glob(...)) does: "10.pt" < "2.pt".
  EXPECT_EQ(set.files, (std::vector<std::string>{"anger/7", "sadness/10", "sadness/2"}));
  EXPECT_EQ(set.label_ids, (std::vector<int64_t>{0, 1, 1}));
  ASSERT_EQ(set.features.shape(), Shape({3, 3}));
  EXPECT_EQ(set.features.to_f32_vector(), (std::vector<float>{7, 8, 9, 4, 5, 6, 1, 2, 3}));
}

TEST(ProjectorDataset, RealEmotion6FeaturesLoad) {
  const FeatureSet set = load_features(testing::data("emotion6-clip-vit-l-14/train"), 768);
  EXPECT_EQ(set.size(), 1386);
  EXPECT_EQ(set.dim(), 768);
  EXPECT_EQ(set.labels, (std::vector<std::string>{"anger", "disgust", "fear", "joy", "sadness", "surprise"}));
}

TEST(ProjectorDataset, EmptyLabelFolderIsNamed) {
  testing::TempDir tmp;
  write_feature(tmp / "f" / "joy" / "1.pt", {1, 2});
  fs::create_directories(tmp / "f" / "fear");
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f" / "fear").string());
}

TEST(ProjectorDataset, NoLabelFolders) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "f");
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f").string());
}

TEST(ProjectorDataset, WrongDimensionNamesTheFile) {
  testing::TempDir tmp;
  write_feature(tmp / "f" / "joy" / "1.pt", {1, 2, 3});
  write_feature(tmp / "f" / "joy" / "2.pt", {1, 2});
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f" / "joy" / "2.pt").string());
  // Against an expected dimension (the model's), the first file already fails.
  expect_error_naming([&] { load_features(tmp / "f", 768); }, (tmp / "f" / "joy" / "1.pt").string());
}

TEST(ProjectorDataset, UnreadableFileIsNamed) {
  testing::TempDir tmp;
  write_feature(tmp / "f" / "joy" / "1.pt", {1, 2});
  std::ofstream(tmp / "f" / "joy" / "2.pt") << "not a zip archive";
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f" / "joy" / "2.pt").string());
  // A truncated archive.
  const std::string good = [&] {
    std::ifstream in(tmp / "f" / "joy" / "1.pt", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::ofstream(tmp / "f" / "joy" / "2.pt", std::ios::binary) << good.substr(0, good.size() / 2);
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f" / "joy" / "2.pt").string());
}

TEST(ProjectorDataset, MissingPath) {
  testing::TempDir tmp;
  expect_error_naming([&] { load_features(tmp / "nope"); }, (tmp / "nope").string());
}

TEST(ProjectorDataset, HostilePickleIsRefusedNamingTheFile) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "f" / "joy");
  fs::copy_file(testing::fixture("hostile/os_system.pt"), tmp / "f" / "joy" / "1.pt");
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f" / "joy" / "1.pt").string());
}

TEST(ProjectorDataset, NonFiniteFeaturesAreRefusedNamingTheFile) {
  testing::TempDir tmp;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  write_feature(tmp / "f" / "joy" / "1.pt", {1, 2});
  write_feature(tmp / "f" / "joy" / "2.pt", {1, nan});
  expect_error_naming([&] { load_features(tmp / "f"); }, (tmp / "f" / "joy" / "2.pt").string());
  write_feature(tmp / "f" / "joy" / "2.pt", {1, 2});
  FeatureSet set = load_features(tmp / "f");
  set.features.mutable_data<float>()[3] = -inf;
  save_feature_shard(tmp / "shard.safetensors", set);
  expect_error_naming([&] { load_features(tmp / "shard.safetensors"); }, (tmp / "shard.safetensors").string());
  expect_error_naming([&] { load_features(tmp / "shard.safetensors"); }, "features[1, 1] (joy/2)");
}

TEST(ProjectorDataset, ShardRoundTripAndSubset) {
  testing::TempDir tmp;
  write_feature(tmp / "f" / "b" / "1.pt", {1, 2});
  write_feature(tmp / "f" / "a" / "1.pt", {3, 4});
  write_feature(tmp / "f" / "a" / "2.pt", {5, 6});
  const FeatureSet set = load_features(tmp / "f");
  save_feature_shard(tmp / "shard.safetensors", set);
  const FeatureSet back = load_features(tmp / "shard.safetensors", 2);
  EXPECT_EQ(back.labels, set.labels);
  EXPECT_EQ(back.files, set.files);
  EXPECT_EQ(back.label_ids, set.label_ids);
  EXPECT_EQ(back.features.to_f32_vector(), set.features.to_f32_vector());
  const FeatureSet sub = set.subset({2, 0});
  EXPECT_EQ(sub.files, (std::vector<std::string>{"b/1", "a/1"}));
  EXPECT_EQ(sub.features.to_f32_vector(), (std::vector<float>{1, 2, 3, 4}));
  expect_error_naming([&] { load_features(tmp / "shard.safetensors", 3); }, (tmp / "shard.safetensors").string());
}

TEST(ProjectorDataset, RemapLabelsToTheModelsOrder) {
  testing::TempDir tmp;
  write_feature(tmp / "f" / "joy" / "1.pt", {1});
  write_feature(tmp / "f" / "fear" / "1.pt", {2});
  FeatureSet set = load_features(tmp / "f");  // labels: fear, joy
  remap_labels(set, {"joy", "anger", "fear"});
  EXPECT_EQ(set.label_ids, (std::vector<int64_t>{2, 0}));
  FeatureSet other = load_features(tmp / "f");
  expect_error_naming([&] { remap_labels(other, {"joy"}); }, "fear");
}

}  // namespace
}  // namespace tinyemo::projector
