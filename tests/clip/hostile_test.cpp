// Hostile images and checkpoints for the CLIP side: memory and time bounded
// by the file's real size (an 81-byte PNG declaring a 2 GB text chunk, a short
// file declaring a large image, a progressive JPEG of hundreds of scans), the
// default pixel budget, non-finite weights and pixels refused by name,
// integer config values that must be integers, and a batch never larger than
// the images there are.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
// clang-format on
#include <zlib.h>

#include <limits>

#include "io/file.h"
#include "io/image.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip/embed_images.h"
#include "models/clip/vision_model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using clip::VisionModel;

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// One PNG chunk with its CRC (`length` may lie about the data that follows).
std::string chunk(const std::string& type, const std::string& data, uint32_t length) {
  const std::string body = type + data;
  const auto crc = static_cast<uint32_t>(::crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size()));
  return be32(length) + body + be32(crc);
}
std::string chunk(const std::string& type, const std::string& data) {
  return chunk(type, data, static_cast<uint32_t>(data.size()));
}

const std::string kPngSignature("\x89PNG\r\n\x1a\n", 8);

std::string ihdr(uint32_t w, uint32_t h) {
  return chunk("IHDR", be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5));  // 8-bit RGB
}

using testing::error_of;

TEST(HostileImages, OversizedTextChunkIsRefusedQuicklyInBoundedMemory) {
  // The 81-byte file of the report: a tEXt chunk declaring 0x7ffffff0 bytes.
  const std::string png = kPngSignature + ihdr(1, 1) + chunk("tEXt", "Comment\0x", 0x7ffffff0u) +
                          chunk("IDAT", std::string("\x78\x9c\x63\x60\x60\x60\x00\x00\x00\x04\x00\x01", 12)) +
                          chunk("IEND", "");
  const auto run = testing::run_in_child([&] { decode_image(png.data(), png.size(), "text.png"); });
  EXPECT_TRUE(run.threw_error) << "accepted or crashed";
  EXPECT_FALSE(run.crashed);
  EXPECT_LT(run.peak_growth_bytes, int64_t{64} << 20) << "peak growth " << run.peak_growth_bytes;
  EXPECT_LT(run.seconds, 2.0);
  EXPECT_NE(run.error.find("text.png"), std::string::npos) << run.error;
}

TEST(HostileImages, ShortFilesDeclaringLargeImagesAreRefusedBeforeAllocating) {
  // 5000 x 5000 RGB (75 MB decoded, inside the pixel budget) in a few bytes.
  const std::string png = kPngSignature + ihdr(5000, 5000) +
                          chunk("IDAT", std::string("\x78\x9c\x63\x60\x00\x00", 6)) + chunk("IEND", "");
  auto run = testing::run_in_child([&] { decode_image(png.data(), png.size(), "short.png"); });
  EXPECT_TRUE(run.threw_error);
  EXPECT_LT(run.peak_growth_bytes, int64_t{32} << 20) << "peak growth " << run.peak_growth_bytes;
  EXPECT_NE(run.error.find("truncated"), std::string::npos) << run.error;

  // A baseline JPEG whose SOF says 5000 x 5000 with only a small image's scan behind it.
  std::string jpeg = read_file(testing::source_dir() / "tests/data/clip/images/rgb420.jpg");
  const size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  for (size_t off : {sof + 5, sof + 7}) {
    jpeg[off] = static_cast<char>(5000 >> 8);
    jpeg[off + 1] = static_cast<char>(5000 & 0xFF);
  }
  run = testing::run_in_child([&] { decode_image(jpeg.data(), jpeg.size(), "short.jpg"); });
  EXPECT_TRUE(run.threw_error);
  EXPECT_LT(run.peak_growth_bytes, int64_t{32} << 20) << "peak growth " << run.peak_growth_bytes;
  EXPECT_NE(run.error.find("short.jpg"), std::string::npos) << run.error;
}

TEST(HostileImages, DefaultPixelBudgetRefusesWhatClipCannotUse) {
  // 12000 x 12000 (144 M pixels): the report's 420 KB PNG took 855 MB.
  const std::string png = kPngSignature + ihdr(12000, 12000) +
                          chunk("IDAT", std::string("\x78\x9c\x63\x60\x00\x00", 6)) + chunk("IEND", "");
  const std::string e = error_of([&] { decode_image(png.data(), png.size(), "huge.png"); });
  EXPECT_NE(e.find("more than the limit of 33554432"), std::string::npos) << e;
  EXPECT_NE(e.find("--max-pixels"), std::string::npos) << e;
  EXPECT_EQ(ImageLimits{}.max_pixels, int64_t{1} << 25);
  // An 8K UHD frame is inside the budget.
  EXPECT_LE(int64_t{7680} * 4320, ImageLimits{}.max_pixels);
}

// A 16 x 16 progressive JPEG written with `scans` scans: the DC scan, then
// every AC coefficient of every component alone, refined bit by bit.
std::string progressive_jpeg(int scans) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &out, &size);
  c.image_width = 16;
  c.image_height = 16;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  std::vector<jpeg_scan_info> script;
  for (int comp = 0; comp < 3; ++comp) script.push_back({1, {comp}, 0, 0, 0, 0});  // DC of each component
  for (int al = 6; al >= 0 && static_cast<int>(script.size()) < scans; --al) {
    for (int comp = 0; comp < 3 && static_cast<int>(script.size()) < scans; ++comp) {
      for (int k = 1; k < 64 && static_cast<int>(script.size()) < scans; ++k) {
        script.push_back({1, {comp}, k, k, al == 6 ? 0 : al + 1, al});
      }
    }
  }
  c.scan_info = script.data();
  c.num_scans = static_cast<int>(script.size());
  jpeg_start_compress(&c, TRUE);
  std::vector<unsigned char> row(16 * 3);
  for (int y = 0; y < 16; ++y) {
    for (int x = 0; x < 48; ++x) row[x] = static_cast<unsigned char>((x * 7 + y * 13) & 0xff);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string bytes(reinterpret_cast<const char*>(out), size);
  std::free(out);
  return bytes;
}

TEST(HostileImages, ProgressiveJpegsWithTooManyScansAreRefused) {
  const std::string many = progressive_jpeg(600);
  const std::string e = error_of([&] { decode_image(many.data(), many.size(), "scans.jpg"); });
  EXPECT_NE(e.find("scans.jpg"), std::string::npos) << e;
  EXPECT_NE(e.find("more than 500 scans"), std::string::npos) << e;
  ImageLimits generous;
  generous.max_jpeg_scans = 1000;
  EXPECT_EQ(decode_image(many.data(), many.size(), "scans.jpg", generous).width, 16);
  const std::string few = progressive_jpeg(40);
  EXPECT_EQ(decode_image(few.data(), few.size(), "few.jpg").height, 16);
}

TEST(HostileCheckpoints, ConfigIntegersMustBeIntegers) {
  auto config = nlohmann::json::parse(read_file(testing::fixture("clip-vision-small/config.json")));
  config["vision_config"]["hidden_size"] = 64.5;
  const std::string e = error_of([&] { clip::vision_config_from_hf(JsonObject(config, "config.json")); });
  EXPECT_NE(e.find("\"hidden_size\" must be an integer, got 64.5"), std::string::npos) << e;
}

TEST(HostileCheckpoints, NonFiniteWeightsAreRefusedByName) {
  testing::TempDir dir;
  const auto src = SafetensorsFile::open(testing::fixture("clip-vision-small/model.safetensors"));
  const std::string poisoned = "vision_model.encoder.layers.1.self_attn.k_proj.weight";
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    for (const DType d : {DType::F32, DType::F16, DType::BF16}) {
      NamedTensors tensors;
      for (const auto& e : src.entries()) {
        Tensor t = src.get(e.name).to(e.name == poisoned ? DType::F32 : src.get(e.name).dtype());
        if (e.name == poisoned) {
          t.mutable_data<float>()[17] = bad;
          t = t.to(d);
        }
        tensors.emplace_back(e.name, t);
      }
      write_safetensors(dir / "model.safetensors", tensors);
      write_file_atomic(dir / "config.json", read_file(testing::fixture("clip-vision-small/config.json")));
      const std::string e = error_of([&] { VisionModel::load(dir.path()); });
      EXPECT_NE(e.find(poisoned), std::string::npos) << e;
      EXPECT_NE(e.find("non-finite value at flat index 17"), std::string::npos) << e;
    }
  }
}

TEST(HostileCheckpoints, PixelValuesMustBeFiniteFloats) {
  clip::VisionConfig cfg;
  cfg.hidden_size = 32;
  cfg.intermediate_size = 64;
  cfg.num_layers = 1;
  cfg.num_heads = 2;
  cfg.image_size = 32;
  cfg.patch_size = 16;
  cfg.projection_dim = 8;
  const VisionModel m = VisionModel::random(cfg, DType::F32, 3);
  Tensor pixels = Tensor::zeros(DType::F32, {1, 3, 32, 32});
  EXPECT_EQ(m.forward(pixels).image_embeds.numel(), 8);
  pixels.mutable_data<float>()[100] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { m.forward(pixels); }).find("non-finite value at flat index 100"), std::string::npos);
  const Tensor ids = Tensor::zeros(DType::I64, {1, 3, 32, 32});
  EXPECT_NE(error_of([&] { m.forward(ids); }).find("dtype i64"), std::string::npos) << error_of([&] { m.forward(ids); });
}

TEST(HostileBatches, ABatchNeverHoldsMoreImagesThanThereAre) {
  const VisionModel m = VisionModel::load(testing::fixture("clip-vision-tiny"));
  const auto images = testing::source_dir() / "tests/data/clip/images";
  const std::vector<std::filesystem::path> files = {images / "rgb.png", images / "grey.jpg"};
  auto embed = [&](int64_t batch) {
    std::vector<std::vector<float>> out(files.size());
    clip::embed_image_files(m, files, batch, ImageLimits{}, [&](size_t i, const float* e, const std::string& error) {
      EXPECT_NE(e, nullptr) << error;
      if (e != nullptr) out[i].assign(e, e + m.config().projection_dim);
      return true;
    });
    return out;
  };
  // --batch 2^40 on two images: before, one buffer of 2^40 images was allocated.
  const auto huge = embed(int64_t{1} << 40);
  const auto pair = embed(2);
  EXPECT_EQ(huge, pair);
}

}  // namespace
}  // namespace tinyemo
