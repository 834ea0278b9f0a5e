// The images-to-emotions pipeline: the same scores whatever the batch size,
// from files or decoded images, as the projector gives on the embeddings; an
// unreadable file reported in its place; a callback that stops the run.
#include <gtest/gtest.h>

#include <cmath>

#include "io/file.h"
#include "models/clip/embed_images.h"
#include "pipeline/classify.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::fixture;

projector::ProjectorModel small_projector() {
  projector::ProjectorConfig config;
  config.dims = {48, 16};
  projector::ProjectorModel model(config, {"anger", "joy", "fear"});
  projector::MlpWeights w(model.layout());
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = 0.3f * std::sin(0.7f * static_cast<float>(i) + 0.1f);
  model.set_members({w});
  std::vector<float> anchors(3 * 16);
  for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = std::cos(1.3f * static_cast<float>(i));
  model.set_anchors({"anger", "joy", "fear"}, anchors);
  return model;
}

struct Row {
  int64_t predicted = -1;
  std::vector<float> probabilities;
  std::string error;
};

std::vector<Row> run_files(const clip::VisionModel& clip, const projector::ProjectorModel& p,
                           const std::vector<std::filesystem::path>& files, int64_t batch) {
  std::vector<Row> rows(files.size());
  std::vector<size_t> order;
  pipeline::classify_files(clip, p, files, batch, {},
                           [&](size_t i, const projector::Scores* s, int64_t row, const std::string& error) {
                             order.push_back(i);
                             if (s == nullptr) {
                               rows[i].error = error;
                             } else {
                               rows[i].predicted = s->predicted[row];
                               rows[i].probabilities.assign(s->probabilities.begin() + row * s->labels,
                                                            s->probabilities.begin() + (row + 1) * s->labels);
                             }
                             return true;
                           });
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i) << "results come in input order";
  EXPECT_EQ(order.size(), files.size());
  return rows;
}

TEST(ClassifyPipeline, BatchSizeFilesAndImagesAgreeWithTheProjector) {
  const auto clip = clip::VisionModel::load(fixture("clip-vision-small"));
  const auto p = small_projector();
  testing::TempDir dir;
  write_file_atomic(dir / "broken.png", "\x89PNG\r\n\x1a\n garbage");
  const std::vector<std::filesystem::path> files = {fixture("clip-preprocess/rocket.jpg"), dir / "broken.png",
                                                    fixture("clip-preprocess/chelsea.png"),
                                                    fixture("clip-preprocess/camera.png")};
  const auto one = run_files(clip, p, files, 1);
  const auto three = run_files(clip, p, files, 3);
  EXPECT_NE(one[1].error.find("broken.png"), std::string::npos) << one[1].error;
  EXPECT_EQ(one[1].predicted, -1);

  // The reference: embeddings one by one, then the projector on each.
  std::vector<Image> images;
  for (size_t i : {0, 2, 3}) images.push_back(load_image(files[i]));
  std::vector<const Image*> decoded;
  for (const auto& im : images) decoded.push_back(&im);
  std::vector<float> embeddings;
  clip::embed_decoded_images(clip, decoded, 1, [&](size_t, const float* e, const std::string&) {
    embeddings.insert(embeddings.end(), e, e + 48);
    return true;
  });
  const projector::Scores want = projector::classify(p, embeddings.data(), 3);
  size_t row = 0;
  for (size_t i : {0, 2, 3}) {
    for (const auto* got : {&one[i], &three[i]}) {
      EXPECT_EQ(got->predicted, want.predicted[row]) << i;
      ASSERT_EQ(got->probabilities.size(), 3u);
      for (int l = 0; l < 3; ++l) EXPECT_NEAR(got->probabilities[l], want.probabilities[row * 3 + l], 1e-5) << i;
    }
    ++row;
  }

  // Decoded images through the pipeline: the same.
  size_t seen = 0;
  pipeline::classify_images(clip, p, decoded, 2, [&](size_t i, const projector::Scores* s, int64_t r, const std::string&) {
    EXPECT_EQ(s->predicted[r], want.predicted[i]);
    ++seen;
    return true;
  });
  EXPECT_EQ(seen, 3u);
}

TEST(ClassifyPipeline, TheCallbackStopsTheRun) {
  const auto clip = clip::VisionModel::load(fixture("clip-vision-small"));
  const auto p = small_projector();
  const std::vector<std::filesystem::path> files(5, fixture("clip-preprocess/rocket.jpg"));
  size_t calls = 0;
  const bool finished = pipeline::classify_files(clip, p, files, 2, {},
                                                 [&](size_t, const projector::Scores*, int64_t, const std::string&) {
                                                   return ++calls < 2;
                                                 });
  EXPECT_FALSE(finished);
  EXPECT_EQ(calls, 2u);
}

TEST(ClassifyPipeline, MismatchedWidthsAreRefusedByName) {
  const auto clip = clip::VisionModel::load(fixture("clip-vision-small"));
  projector::ProjectorConfig config;
  config.dims = {768, 16};
  projector::ProjectorModel p(config, {"a", "b"});
  try {
    pipeline::check_clip_fits_projector(clip, "CLIP-DIR", p, "P.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CLIP-DIR gives 48-d"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("P.safetensors takes 768-d"), std::string::npos) << e.what();
  }
}

TEST(ClassifyPipeline, LabelListsDropEmptyItems) {
  EXPECT_EQ(pipeline::split_label_list("joy,,fear,"), (std::vector<std::string>{"joy", "fear"}));
  EXPECT_TRUE(pipeline::split_label_list("").empty());
}

}  // namespace
}  // namespace tinyemo
