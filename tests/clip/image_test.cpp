// Image decoding: Pillow's modes per file kind, and refusal of bad input
// (truncated/corrupt JPEG and PNG, empty files, non-images, decompression
// bombs) with an error naming the file, never a crash or exit().
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "io/file.h"
#include "io/image.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::filesystem::path test_image(const std::string& name) {
  return testing::source_dir() / "tests/data/clip/images" / name;
}

std::string bytes_of(const std::filesystem::path& p) { return read_file(p); }

// Decoding must fail with a tinyemo::Error whose message contains `name` and `what`.
void expect_refused(const std::string& bytes, const std::string& what, const ImageLimits& limits = {}) {
  const std::string name = "bad-image.bin";
  try {
    decode_image(bytes.data(), bytes.size(), name, limits);
    ADD_FAILURE() << "decoded without error; expected: " << what;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(ImageDecode, ModesFollowPillow) {
  struct Case {
    const char* file;
    ImageMode mode;
    bool nearest;
    ImageFormat format;
  };
  const Case cases[] = {
      {"rgb.png", ImageMode::RGB, false, ImageFormat::Png},
      {"grey.png", ImageMode::L, false, ImageFormat::Png},
      {"grey1.png", ImageMode::L, true, ImageFormat::Png},
      {"grey4.png", ImageMode::L, false, ImageFormat::Png},
      {"grey16.png", ImageMode::I16, false, ImageFormat::Png},
      {"la.png", ImageMode::LA, false, ImageFormat::Png},
      {"rgba.png", ImageMode::RGBA, false, ImageFormat::Png},
      {"rgb16.png", ImageMode::RGB, false, ImageFormat::Png},
      {"palette.png", ImageMode::RGB, true, ImageFormat::Png},
      {"palette4_trns.png", ImageMode::RGB, true, ImageFormat::Png},
      {"grey.jpg", ImageMode::L, false, ImageFormat::Jpeg},
      {"cmyk.jpg", ImageMode::CMYK, false, ImageFormat::Jpeg},
      {"progressive.jpg", ImageMode::RGB, false, ImageFormat::Jpeg},
      {"rgb.webp", ImageMode::RGB, false, ImageFormat::WebP},
      {"rgba.webp", ImageMode::RGBA, false, ImageFormat::WebP},
  };
  for (const Case& c : cases) {
    const Image img = load_image(test_image(c.file));
    EXPECT_EQ(img.mode, c.mode) << c.file;
    EXPECT_EQ(img.nearest_resize_only, c.nearest) << c.file;
    EXPECT_EQ(img.format, c.format) << c.file;
    const size_t expect = static_cast<size_t>(img.width * img.height * (img.mode == ImageMode::I16 ? 0 : img.channels()));
    EXPECT_EQ(img.pixels.size(), expect) << c.file;
  }
  EXPECT_EQ(load_image(test_image("rgb.png")).width, 61);
  EXPECT_EQ(load_image(test_image("rgb.png")).height, 45);
}

TEST(ImageDecode, EmptyFileAndNonImage) {
  expect_refused("", "empty file");
  expect_refused("GIF89a not supported here", "not a JPEG, PNG or WebP");
  expect_refused(std::string("\x89PNG\r\n\x1a\n", 8), "PNG");  // signature only
  testing::TempDir dir;
  write_file_atomic(dir / "zero.jpg", "");
  try {
    load_image(dir / "zero.jpg");
    ADD_FAILURE() << "zero-byte file decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zero.jpg"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_image(dir / "does-not-exist.png"), Error);
}

TEST(ImageDecode, TruncatedFilesAreRefused) {
  for (const char* file : {"rgb420.jpg", "progressive.jpg", "rgb.png", "palette.png", "rgb.webp"}) {
    const std::string full = bytes_of(test_image(file));
    for (const double frac : {0.1, 0.5, 0.9}) {
      SCOPED_TRACE(std::string(file) + " cut at " + std::to_string(frac));
      const std::string cut = full.substr(0, static_cast<size_t>(full.size() * frac));
      EXPECT_THROW(decode_image(cut.data(), cut.size(), file), Error);
    }
  }
  const std::string jpeg = bytes_of(testing::fixture("clip-preprocess/rocket.jpg"));
  expect_refused(jpeg.substr(0, jpeg.size() / 2), "truncated");
}

TEST(ImageDecode, CorruptDataIsRefused) {
  // A flipped byte inside PNG image data breaks the chunk CRC / zlib stream.
  std::string png = bytes_of(test_image("rgb.png"));
  const size_t idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  png[idat + 40] = static_cast<char>(png[idat + 40] ^ 0x5A);
  expect_refused(png, "not a readable PNG");
  // A JPEG whose SOF claims 0 components / garbage after the header.
  std::string jpeg = bytes_of(test_image("rgb420.jpg"));
  const size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  jpeg[sof + 9] = 0;  // number of components
  expect_refused(jpeg, "JPEG");
}

// Rewrites a file's declared size in its header.
std::string with_png_size(std::string png, uint32_t w, uint32_t h) {
  const size_t ihdr = png.find("IHDR") + 4;
  for (int i = 0; i < 4; ++i) {
    png[ihdr + i] = static_cast<char>(w >> (24 - 8 * i));
    png[ihdr + 4 + i] = static_cast<char>(h >> (24 - 8 * i));
  }
  return png;
}

TEST(ImageDecode, DecompressionBombsAreRefusedFromTheHeader) {
  // 100000 x 100000 declared, with the IHDR CRC recomputed so that libpng
  // accepts the header and the pixel budget is what refuses the file.
  std::string png = with_png_size(bytes_of(test_image("rgb.png")), 100000, 100000);
  {
    const size_t ihdr = png.find("IHDR");
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = ihdr; i < ihdr + 17; ++i) {
      crc ^= static_cast<uint8_t>(png[i]);
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    crc ^= 0xFFFFFFFFu;
    for (int i = 0; i < 4; ++i) png[ihdr + 17 + i] = static_cast<char>(crc >> (24 - 8 * i));
  }
  expect_refused(png, "decompression bomb");
  // JPEG SOF declaring 60000 x 60000.
  std::string jpeg = bytes_of(test_image("rgb420.jpg"));
  const size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  for (size_t off : {sof + 5, sof + 7}) {
    jpeg[off] = static_cast<char>(60000 >> 8);
    jpeg[off + 1] = static_cast<char>(60000 & 0xFF);
  }
  expect_refused(jpeg, "decompression bomb");
  // Any format against a small budget.
  for (const char* file : {"rgb.png", "rgb420.jpg", "rgb.webp"}) {
    expect_refused(bytes_of(test_image(file)), "more than the limit of 100", ImageLimits{100});
  }
}

TEST(ImageDecode, FormatIsSniffedNotTakenFromTheName) {
  testing::TempDir dir;
  write_file_atomic(dir / "actually_png.jpg", bytes_of(test_image("rgb.png")));
  EXPECT_EQ(load_image(dir / "actually_png.jpg").format, ImageFormat::Png);
  EXPECT_TRUE(has_image_extension("a/b/C.JPEG"));
  EXPECT_TRUE(has_image_extension("x.webp"));
  EXPECT_FALSE(has_image_extension("x.txt"));
}

}  // namespace
}  // namespace tinyemo
