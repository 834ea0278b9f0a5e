// CLIP preprocessing against OpenAI's transform (torchvision + Pillow): the
// shared fixture (PNG RGB/grey, JPEG at 224 and 336) and, from
// tests/data/clip/preprocess_modes.safetensors (tools/clip_preprocess_reference.py),
// every mode Pillow distinguishes: palette, 1-bit, grey+alpha, RGBA, 16-bit,
// CMYK and grey JPEG, WebP, upscaling.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/image.h"
#include "io/safetensors.h"
#include "models/clip/preprocess.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

void expect_matches_reference(const std::filesystem::path& image_path, const Tensor& expected, double tolerance) {
  const Image image = load_image(image_path);
  const int64_t size = expected.dim(-1);
  const Tensor got = clip::clip_preprocess(image, size);
  ASSERT_EQ(shape_str(got.shape()), shape_str(expected.shape())) << image_path;
  const double diff = testing::max_abs_diff(got.to_f32_vector(), expected.to_f32_vector());
  EXPECT_LE(diff, tolerance) << image_path << " at " << size;
}

class FixturePreprocess : public ::testing::TestWithParam<int> {};

TEST_P(FixturePreprocess, MatchesOpenAITransform) {
  const int size = GetParam();
  const auto ref = SafetensorsFile::open(testing::fixture(fmt::format("clip-preprocess/expected_{}.safetensors", size)));
  ASSERT_FALSE(ref.entries().empty());
  for (const auto& e : ref.entries()) {
    // Bit-exact resampling leaves only float rounding (and libjpeg builds) between us and the reference.
    expect_matches_reference(testing::fixture("clip-preprocess/" + e.name), ref.get(e.name), 1e-5);
  }
}
INSTANTIATE_TEST_SUITE_P(Sizes, FixturePreprocess, ::testing::Values(224, 336));

TEST(Preprocess, EveryPillowModeMatchesReference) {
  const auto ref = SafetensorsFile::open(testing::source_dir() / "tests/data/clip/preprocess_modes.safetensors");
  const auto files = nlohmann::json::parse(ref.metadata().at("files"));
  ASSERT_GE(files.size(), 10u);
  for (const auto& [key, file] : files.items()) {
    SCOPED_TRACE(key);
    expect_matches_reference(testing::source_dir() / "tests/data/clip" / file.get<std::string>(), ref.get(key), 1e-5);
  }
}

TEST(Preprocess, ResizedSizeFollowsTorchvision) {
  int64_t w = 0, h = 0;
  clip::clip_resized_size(640, 427, 224, &w, &h);
  EXPECT_EQ(w, 335);  // int(224 * 640 / 427) = int(335.737...)
  EXPECT_EQ(h, 224);
  clip::clip_resized_size(300, 451, 224, &w, &h);
  EXPECT_EQ(w, 224);
  EXPECT_EQ(h, 336);  // int(336.746...)
  clip::clip_resized_size(224, 224, 224, &w, &h);
  EXPECT_EQ(w, 224);
  EXPECT_EQ(h, 224);
}

TEST(Preprocess, CenterCropRoundsHalfToEven) {
  EXPECT_EQ(clip::center_crop_offset(224, 224), 0);
  EXPECT_EQ(clip::center_crop_offset(225, 224), 0);  // round(0.5) = 0
  EXPECT_EQ(clip::center_crop_offset(227, 224), 2);  // round(1.5) = 2
  EXPECT_EQ(clip::center_crop_offset(229, 224), 2);  // round(2.5) = 2
  EXPECT_EQ(clip::center_crop_offset(335, 224), 56);  // round(55.5) = 56
  EXPECT_EQ(clip::center_crop_offset(336, 224), 56);
}

TEST(Preprocess, WindowedResizeEqualsCroppedFullResize) {
  Image img;
  img.width = 37;
  img.height = 23;
  img.mode = ImageMode::RGB;
  for (int64_t i = 0; i < img.width * img.height * 3; ++i) img.pixels.push_back(static_cast<uint8_t>((i * 73) % 251));
  for (auto [w, h] : {std::pair<int64_t, int64_t>{11, 7}, {90, 51}, {37, 9}, {15, 23}}) {
    const Image full = clip::resize_like_pillow(img, w, h);
    const clip::PixelRect win{w / 3, h / 4, w / 2 + 1, h / 2 + 1};
    const Image part = clip::resize_like_pillow(img, w, h, win);
    for (int64_t y = 0; y < win.height; ++y) {
      for (int64_t x = 0; x < win.width; ++x) {
        for (int c = 0; c < 3; ++c) {
          ASSERT_EQ(part.pixels[(y * win.width + x) * 3 + c], full.pixels[((y + win.y) * w + x + win.x) * 3 + c])
              << w << "x" << h << " at " << x << "," << y;
        }
      }
    }
  }
}

}  // namespace
}  // namespace tinyemo
