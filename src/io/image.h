// Image decoding (JPEG via libjpeg-turbo, PNG via libpng, WebP via libwebp)
// into the pixel modes Pillow gives the same file after Image.open(), so
// that CLIP preprocessing can reproduce Pillow's mode-dependent resizing and
// conversion to RGB exactly (see docs/clip.md). The declared size is checked
// against a pixel budget before any pixel is decoded (decompression bombs);
// libjpeg/libpng errors come back as tinyemo::Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo {

// Pillow's image modes that the decoders produce.
enum class ImageMode : uint8_t {
  L,     // 8-bit grey
  LA,    // 8-bit grey + alpha
  RGB,   // 8-bit
  RGBA,  // 8-bit, straight (not premultiplied) alpha
  CMYK,  // 8-bit, ink amounts (JPEG's Adobe polarity already undone)
  I16,   // 16-bit grey (Pillow's 32-bit "I" mode holding 0..65535)
};

int image_mode_channels(ImageMode mode);  // samples per pixel
std::string_view image_mode_name(ImageMode mode);

enum class ImageFormat : uint8_t { Unknown, Jpeg, Png, WebP };

// The format named by the file's first bytes (not its extension).
ImageFormat sniff_image_format(const void* data, size_t size);
std::string_view image_format_name(ImageFormat format);

struct Image {
  int64_t width = 0;
  int64_t height = 0;
  ImageMode mode = ImageMode::RGB;
  ImageFormat format = ImageFormat::Unknown;
  // Pillow opens palette ("P") and 1-bit ("1") files in modes it can only
  // resize with nearest neighbour; their pixels are expanded here to RGB / L
  // (expansion commutes with nearest-neighbour resizing).
  bool nearest_resize_only = false;
  // Interleaved samples, row-major: 8-bit modes use `pixels`
  // (height * width * channels), I16 uses `samples16` (height * width).
  std::vector<uint8_t> pixels;
  std::vector<uint16_t> samples16;

  int channels() const { return image_mode_channels(mode); }
};

struct ImageLimits {
  // Largest width * height accepted, checked on the header before any pixel
  // is decoded. CLIP sees 224 x 224 (336 x 336 for ViT-L/14@336) pixels, so
  // detail beyond a few tens of megapixels is never used, while decoding it
  // costs width x height x channels bytes at once (a 12000 x 12000 PNG of
  // 420 KB: 432 MB per copy). The default, 2^25 = 33.5 M pixels, holds an 8K
  // UHD frame (7680 x 4320) and the 24-30 MP photos of most cameras, at most
  // 134 MB decoded (4 channels); larger files are refused with a message
  // naming --max-pixels, which raises it.
  int64_t max_pixels = kDefaultMaxPixels;
  static constexpr int64_t kDefaultMaxPixels = int64_t{1} << 25;
  // Largest ancillary PNG chunk (text, ICC profile, ...) held in memory and
  // most such chunks per file; JPEG scans per file (progressive files decode
  // every scan: hostile ones declare thousands).
  int64_t max_chunk_bytes = 8 << 20;
  int max_chunks = 256;
  int max_jpeg_scans = 500;
};

// Decodes a whole file held in memory; `name` is used in error messages.
Image decode_image(const void* data, size_t size, const std::string& name, const ImageLimits& limits = {});
Image load_image(const std::filesystem::path& path, const ImageLimits& limits = {});

// File extensions (lower case, with the dot) that load_image is meant for.
bool has_image_extension(const std::filesystem::path& path);

}  // namespace tinyemo
