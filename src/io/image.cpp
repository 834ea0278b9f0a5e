#include "io/image.h"

// jpeglib.h needs size_t and FILE declared first.
#include <cstdio>
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>
#include <webp/decode.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>

#include "core/error.h"
#include "io/file.h"

namespace tinyemo {

int image_mode_channels(ImageMode mode) {
  switch (mode) {
    case ImageMode::L:
    case ImageMode::I16: return 1;
    case ImageMode::LA: return 2;
    case ImageMode::RGB: return 3;
    case ImageMode::RGBA:
    case ImageMode::CMYK: return 4;
  }
  return 0;
}

std::string_view image_mode_name(ImageMode mode) {
  switch (mode) {
    case ImageMode::L: return "L";
    case ImageMode::LA: return "LA";
    case ImageMode::RGB: return "RGB";
    case ImageMode::RGBA: return "RGBA";
    case ImageMode::CMYK: return "CMYK";
    case ImageMode::I16: return "I;16";
  }
  return "?";
}

ImageFormat sniff_image_format(const void* data, size_t size) {
  const auto* b = static_cast<const uint8_t*>(data);
  if (size >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::Jpeg;
  static constexpr uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(b, kPng, 8) == 0) return ImageFormat::Png;
  if (size >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) return ImageFormat::WebP;
  return ImageFormat::Unknown;
}

std::string_view image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::WebP: return "WebP";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

bool has_image_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".jpe" || ext == ".jfif" || ext == ".png" || ext == ".webp";
}

namespace {

void check_declared_size(const std::string& name, std::string_view format, int64_t width, int64_t height,
                         const ImageLimits& limits) {
  TE_CHECK(width > 0 && height > 0, "{}: {} header declares an empty image ({} x {})", name, format, width, height);
  if (width > limits.max_pixels / height) {
    throw TooLargeError(fmt::format(
        "{}: {} header declares {} x {} = {} pixels, more than the limit of {} (decompression bomb?)", name, format,
        width, height, width * height, limits.max_pixels));
  }
}

// ---- JPEG -------------------------------------------------------------------
// libjpeg reports fatal errors through error_exit, whose default calls exit();
// ours longjmps back into decode_jpeg. Nothing with a destructor lives in the
// frames that longjmp skips (libjpeg's C frames and the callback).

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

[[noreturn]] void jpeg_fatal(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (e.g. extraneous bytes between markers) are ignored, as Pillow
// does, except the one libjpeg gives when the data ends early: Pillow refuses
// truncated files ("image file is truncated"), so do we.
void jpeg_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->truncated = true;
}

void decode_jpeg(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits,
                 Image& image) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_fatal;
  err.pub.emit_message = jpeg_message;
  err.truncated = false;
  err.message[0] = '\0';
  // Set when a check below fails between setjmp and the end, so the error is
  // thrown after jpeg_destroy_decompress (a static string: no destructor).
  const char* volatile refusal = nullptr;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    fail("{}: not a readable JPEG: {}", name, err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const int64_t width = cinfo.image_width, height = cinfo.image_height;
  if (width <= 0 || height <= 0 || width > limits.max_pixels / height) {
    jpeg_destroy_decompress(&cinfo);
    check_declared_size(name, "JPEG", width, height, limits);
  }
  // Pillow's choices: 1 component -> "L", 3 -> "RGB" (libjpeg converts
  // YCbCr), 4 -> "CMYK" read as Adobe-inverted ("CMYK;I"). Default decoder
  // settings otherwise: ISLOW DCT, fancy upsampling (as Pillow outside draft mode).
  const int components = cinfo.num_components;
  switch (components) {
    case 1:
      cinfo.out_color_space = JCS_GRAYSCALE;
      image.mode = ImageMode::L;
      break;
    case 3:
      cinfo.out_color_space = JCS_RGB;
      image.mode = ImageMode::RGB;
      break;
    case 4:
      cinfo.out_color_space = JCS_CMYK;
      image.mode = ImageMode::CMYK;
      break;
    default: refusal = "unsupported number of colour components";
  }
  if (refusal != nullptr) {
    jpeg_destroy_decompress(&cinfo);
    fail("{}: not a supported JPEG: {} ({})", name, refusal, components);
  }
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  image.width = cinfo.output_width;
  image.height = cinfo.output_height;
  const size_t stride = static_cast<size_t>(image.width) * cinfo.output_components;
  image.pixels.resize(stride * static_cast<size_t>(image.height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image.pixels.data() + stride * cinfo.output_scanline;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
    if (err.truncated) break;
  }
  const bool truncated = err.truncated || cinfo.output_scanline < cinfo.output_height;
  jpeg_destroy_decompress(&cinfo);
  TE_CHECK(!truncated, "{}: JPEG data is truncated", name);
  if (image.mode == ImageMode::CMYK) {
    for (uint8_t& v : image.pixels) v = static_cast<uint8_t>(255 - v);
  }
}

// ---- PNG --------------------------------------------------------------------

struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
};

[[noreturn]] void png_fatal(png_structp png, png_const_charp msg) {
  auto* reader = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(reader->message, sizeof(reader->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_warn(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > reader->size - reader->pos) png_error(png, "file is truncated");
  std::memcpy(out, reader->data + reader->pos, n);
  reader->pos += n;
}

// libpng reports fatal errors through png_error, which longjmps back into
// read_png_rows; as for JPEG, the buffers live in the caller's frame so that
// nothing with a destructor is skipped.
struct PngHeader {
  int64_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  png_color palette[256];
  int palette_size = 0;
};

// Reads the header into `header` (then checks the budget) and the rows,
// after the transforms below, into `raw`.
void read_png_rows(PngReader& reader, const std::string& name, const ImageLimits& limits, PngHeader& header,
                   std::vector<uint8_t>& raw, std::vector<png_bytep>& rows) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_fatal, png_warn);
  TE_CHECK(png != nullptr, "{}: cannot create a PNG decoder", name);
  png_infop info = png_create_info_struct(png);
  const char* volatile refusal = nullptr;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail("{}: not a readable PNG: {}", name, reader.message);
  }
  if (info == nullptr) png_error(png, "out of memory");
  png_set_read_fn(png, &reader, png_read_memory);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  // our own pixel budget applies instead
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  png_get_IHDR(png, info, &w, &h, &header.bit_depth, &header.color_type, nullptr, nullptr, nullptr);
  header.width = w;
  header.height = h;
  if (header.width <= 0 || header.height <= 0 || header.width > limits.max_pixels / header.height) {
    png_destroy_read_struct(&png, &info, nullptr);
    check_declared_size(name, "PNG", header.width, header.height, limits);
  }
  if (header.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_colorp palette = nullptr;
    if (png_get_PLTE(png, info, &palette, &header.palette_size) == 0) {
      refusal = "palette image without a PLTE chunk";
    } else {
      header.palette_size = std::clamp(header.palette_size, 0, 256);
      std::copy(palette, palette + header.palette_size, header.palette);
    }
  }
  if (header.color_type == PNG_COLOR_TYPE_GRAY && header.bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (header.color_type == PNG_COLOR_TYPE_PALETTE && header.bit_depth < 8) png_set_packing(png);  // index per byte
  const bool grey16 = header.color_type == PNG_COLOR_TYPE_GRAY && header.bit_depth == 16;
  if (header.bit_depth == 16 && !grey16) png_set_strip_16(png);  // keeps the high byte, as Pillow's ";16B" unpackers
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  const int samples = header.color_type == PNG_COLOR_TYPE_PALETTE ? 1 : png_get_channels(png, info);
  const size_t expect = static_cast<size_t>(header.width) * samples * (grey16 ? 2 : 1);
  if (refusal == nullptr && row_bytes != expect) refusal = "unexpected row size after transforms";
  if (refusal != nullptr) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail("{}: not a supported PNG: {}", name, refusal);
  }
  try {
    raw.resize(row_bytes * static_cast<size_t>(header.height));
    rows.resize(static_cast<size_t>(header.height));
  } catch (const std::bad_alloc&) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail("{}: out of memory for a {} x {} PNG", name, header.width, header.height);
  }
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = raw.data() + row_bytes * y;
  png_read_image(png, rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
}

// Pillow's modes for PNG (PngImagePlugin._MODES): grey 1 bit -> "1", 2/4/8 ->
// "L" (scaled to 0..255), 16 -> "I"; RGB(A) 16 -> high bytes; palette -> "P"
// (converted to RGB from the palette, transparency ignored); grey+alpha -> "LA";
// tRNS chunks of grey/RGB images only go to Image.info, never into pixels.
void decode_png(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits,
                Image& image) {
  PngReader reader{data, size, 0, {0}};
  PngHeader header;
  std::vector<uint8_t> raw;
  std::vector<png_bytep> rows;
  read_png_rows(reader, name, limits, header, raw, rows);
  image.width = header.width;
  image.height = header.height;
  const size_t n = static_cast<size_t>(header.width) * static_cast<size_t>(header.height);
  switch (header.color_type) {
    case PNG_COLOR_TYPE_GRAY:
      if (header.bit_depth == 16) {
        image.mode = ImageMode::I16;
        image.samples16.resize(n);
        for (size_t i = 0; i < n; ++i) image.samples16[i] = static_cast<uint16_t>(raw[2 * i] << 8 | raw[2 * i + 1]);
        return;
      }
      image.mode = ImageMode::L;
      image.nearest_resize_only = header.bit_depth == 1;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: image.mode = ImageMode::LA; break;
    case PNG_COLOR_TYPE_RGB: image.mode = ImageMode::RGB; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: image.mode = ImageMode::RGBA; break;
    case PNG_COLOR_TYPE_PALETTE: {
      // Pillow's palettes start as a grey ramp, so indices past the PLTE
      // entries read as (i, i, i).
      image.mode = ImageMode::RGB;
      image.nearest_resize_only = true;
      image.pixels.resize(n * 3);
      for (size_t i = 0; i < n; ++i) {
        const int index = raw[i];
        uint8_t* px = image.pixels.data() + 3 * i;
        if (index < header.palette_size) {
          px[0] = header.palette[index].red, px[1] = header.palette[index].green, px[2] = header.palette[index].blue;
        } else {
          px[0] = px[1] = px[2] = static_cast<uint8_t>(index);
        }
      }
      return;
    }
    default: fail("{}: not a supported PNG: colour type {}", name, header.color_type);
  }
  image.pixels = std::move(raw);
}

// ---- WebP -------------------------------------------------------------------

void decode_webp(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits,
                 Image& image) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(data, size, &features);
  TE_CHECK(status == VP8_STATUS_OK, "{}: not a readable WebP (status {})", name, static_cast<int>(status));
  TE_CHECK(!features.has_animation, "{}: animated WebP files are not supported", name);
  check_declared_size(name, "WebP", features.width, features.height, limits);
  image.width = features.width;
  image.height = features.height;
  // Pillow: "RGBA" when the file declares alpha, "RGB" otherwise.
  image.mode = features.has_alpha ? ImageMode::RGBA : ImageMode::RGB;
  const int channels = image.channels();
  const size_t stride = static_cast<size_t>(image.width) * channels;
  image.pixels.resize(stride * static_cast<size_t>(image.height));
  const uint8_t* ok = features.has_alpha
                          ? WebPDecodeRGBAInto(data, size, image.pixels.data(), image.pixels.size(), static_cast<int>(stride))
                          : WebPDecodeRGBInto(data, size, image.pixels.data(), image.pixels.size(), static_cast<int>(stride));
  TE_CHECK(ok != nullptr, "{}: WebP data is corrupt or truncated", name);
}

}  // namespace

Image decode_image(const void* data, size_t size, const std::string& name, const ImageLimits& limits) {
  TE_CHECK(size > 0, "{}: empty file", name);
  const auto* bytes = static_cast<const uint8_t*>(data);
  Image image;
  image.format = sniff_image_format(data, size);
  switch (image.format) {
    case ImageFormat::Jpeg: decode_jpeg(bytes, size, name, limits, image); break;
    case ImageFormat::Png: decode_png(bytes, size, name, limits, image); break;
    case ImageFormat::WebP: decode_webp(bytes, size, name, limits, image); break;
    case ImageFormat::Unknown: fail("{}: not a JPEG, PNG or WebP image", name);
  }
  return image;
}

Image load_image(const std::filesystem::path& path, const ImageLimits& limits) {
  const std::string bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size(), path.string(), limits);
}

}  // namespace tinyemo
