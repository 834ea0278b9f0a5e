#include "models/clip/preprocess.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace tinyemo::clip {

namespace {

// Pillow keeps 8-bit resampling sums in int32 with this many fractional bits
// (two spare bits for filters whose partial sums leave 0..1).
constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
constexpr double kBicubicSupport = 2.0;

// Pillow's (float) box edges: sizes pass through float before the scale is taken.
double as_pillow_box(int64_t extent) { return static_cast<double>(static_cast<float>(extent)); }

// Filter taps of output samples [begin, end) along one axis: output sample i
// reads inputs first[i] .. first[i] + count[i] - 1 with the given weights.
struct Taps {
  int64_t begin = 0, end = 0, ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<double> weight;  // (end - begin) * ksize, normalised to sum 1
  std::vector<int32_t> fixed;  // the same in 8-bit fixed point

  int64_t lowest_input() const { return first.front(); }
  int64_t highest_input() const { return first.back() + count.back(); }  // exclusive
};

Taps bicubic_taps(int64_t in_size, int64_t out_size, int64_t begin, int64_t end) {
  Taps t;
  t.begin = begin;
  t.end = end;
  const double scale = as_pillow_box(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = kBicubicSupport * filterscale;
  t.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  const int64_t n = end - begin;
  t.first.resize(n);
  t.count.resize(n);
  t.weight.assign(static_cast<size_t>(n * t.ksize), 0.0);
  t.fixed.assign(static_cast<size_t>(n * t.ksize), 0);
  const double ss = 1.0 / filterscale;
  for (int64_t i = 0; i < n; ++i) {
    const double center = (static_cast<double>(begin + i) + 0.5) * scale;
    // C's truncating casts, as Pillow rounds these bounds.
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    const int64_t hi = std::min<int64_t>(in_size, static_cast<int64_t>(center + support + 0.5));
    const int64_t count = std::max<int64_t>(0, hi - lo);
    double* k = t.weight.data() + i * t.ksize;
    double total = 0.0;
    for (int64_t x = 0; x < count; ++x) {
      k[x] = bicubic((static_cast<double>(x + lo) - center + 0.5) * ss);
      total += k[x];
    }
    if (total != 0.0) {
      for (int64_t x = 0; x < count; ++x) k[x] /= total;
    }
    int32_t* kf = t.fixed.data() + i * t.ksize;
    for (int64_t x = 0; x < count; ++x) {
      const double v = k[x] * (1 << kPrecisionBits);
      kf[x] = static_cast<int32_t>(k[x] < 0 ? v - 0.5 : v + 0.5);
    }
    t.first[i] = lo;
    t.count[i] = count;
  }
  return t;
}

// One output sample from `count` inputs `stride` apart: 8-bit samples use
// Pillow's fixed point (round, then clip to 0..255); 32-bit ("I") samples
// use doubles rounded half away from zero.
template <class T>
T resample_one(const T* in, int64_t stride, const Taps& taps, int64_t i) {
  const int64_t count = taps.count[i];
  if constexpr (std::is_same_v<T, uint8_t>) {
    const int32_t* k = taps.fixed.data() + i * taps.ksize;
    int32_t acc = 1 << (kPrecisionBits - 1);
    for (int64_t x = 0; x < count; ++x) acc += static_cast<int32_t>(in[x * stride]) * k[x];
    return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255));
  } else {
    const double* k = taps.weight.data() + i * taps.ksize;
    double acc = 0.0;
    for (int64_t x = 0; x < count; ++x) acc += static_cast<double>(in[x * stride]) * k[x];
    return static_cast<int32_t>(acc >= 0.0 ? acc + 0.5 : acc - 0.5);
  }
}

// Planar view of interleaved samples: width x height pixels of `channels`.
template <class T>
struct Plane {
  std::vector<T> data;
  int64_t width = 0, height = 0, channels = 0;
  T* row(int64_t y) { return data.data() + y * width * channels; }
  const T* row(int64_t y) const { return data.data() + y * width * channels; }
};

// Rows [row0, row1) of `src`, resampled horizontally to the taps' columns.
template <class T>
Plane<T> horizontal_pass(const Plane<T>& src, int64_t row0, int64_t row1, const Taps& taps) {
  Plane<T> out;
  out.width = taps.end - taps.begin;
  out.height = row1 - row0;
  out.channels = src.channels;
  out.data.resize(static_cast<size_t>(out.width * out.height * out.channels));
  const int64_t c = src.channels;
  for (int64_t y = 0; y < out.height; ++y) {
    const T* in = src.row(row0 + y);
    T* o = out.row(y);
    for (int64_t i = 0; i < out.width; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) o[i * c + ch] = resample_one(in + taps.first[i] * c + ch, c, taps, i);
    }
  }
  return out;
}

// Output rows of the taps, resampled vertically from `src` whose row 0 is input row `row0`.
template <class T>
Plane<T> vertical_pass(const Plane<T>& src, int64_t row0, const Taps& taps) {
  Plane<T> out;
  out.width = src.width;
  out.height = taps.end - taps.begin;
  out.channels = src.channels;
  out.data.resize(static_cast<size_t>(out.width * out.height * out.channels));
  const int64_t stride = src.width * src.channels;
  for (int64_t i = 0; i < out.height; ++i) {
    const T* in = src.row(taps.first[i] - row0);
    T* o = out.row(i);
    for (int64_t x = 0; x < stride; ++x) o[x] = resample_one(in + x, stride, taps, i);
  }
  return out;
}

template <class T>
Plane<T> crop(const Plane<T>& src, const PixelRect& r) {
  Plane<T> out;
  out.width = r.width;
  out.height = r.height;
  out.channels = src.channels;
  out.data.resize(static_cast<size_t>(r.width * r.height * src.channels));
  for (int64_t y = 0; y < r.height; ++y) {
    const T* in = src.row(r.y + y) + r.x * src.channels;
    std::copy(in, in + r.width * src.channels, out.row(y));
  }
  return out;
}

// Pillow's two-pass separable resize (ImagingResampleInner): horizontal pass
// over only the input rows the vertical pass reads, then the vertical pass;
// a pass is skipped when its axis keeps its size.
template <class T>
Plane<T> bicubic_resize(const Plane<T>& src, int64_t out_w, int64_t out_h, const PixelRect& window) {
  const bool need_h = out_w != src.width, need_v = out_h != src.height;
  Taps vtaps;
  int64_t row0 = window.y, row1 = window.y + window.height;
  if (need_v) {
    vtaps = bicubic_taps(src.height, out_h, window.y, window.y + window.height);
    row0 = vtaps.lowest_input();
    row1 = vtaps.highest_input();
  }
  Plane<T> rows;
  if (need_h) {
    rows = horizontal_pass(src, row0, row1, bicubic_taps(src.width, out_w, window.x, window.x + window.width));
  } else {
    rows = crop(src, PixelRect{window.x, row0, window.width, row1 - row0});
  }
  return need_v ? vertical_pass(rows, row0, vtaps) : rows;
}

// Pillow's nearest-neighbour scale (ImagingScaleAffine): source positions
// accumulate in doubles from the first output sample.
std::vector<int64_t> nearest_sources(int64_t in_size, int64_t out_size, int64_t begin, int64_t end) {
  const double step = as_pillow_box(in_size) / static_cast<double>(out_size);
  std::vector<int64_t> src(static_cast<size_t>(end - begin), -1);
  double pos = step * 0.5;
  for (int64_t i = 0; i < end; ++i, pos += step) {
    if (i < begin) continue;
    const int64_t s = pos < 0.0 ? -1 : static_cast<int64_t>(pos);
    if (s < in_size) src[i - begin] = s;
  }
  return src;
}

Plane<uint8_t> nearest_resize(const Plane<uint8_t>& src, int64_t out_w, int64_t out_h, const PixelRect& window) {
  const auto xs = nearest_sources(src.width, out_w, window.x, window.x + window.width);
  const auto ys = nearest_sources(src.height, out_h, window.y, window.y + window.height);
  Plane<uint8_t> out;
  out.width = window.width;
  out.height = window.height;
  out.channels = src.channels;
  out.data.assign(static_cast<size_t>(out.width * out.height * out.channels), 0);  // Pillow fills misses with 0
  const int64_t c = src.channels;
  for (int64_t y = 0; y < out.height; ++y) {
    if (ys[y] < 0) continue;
    const uint8_t* in = src.row(ys[y]);
    uint8_t* o = out.row(y);
    for (int64_t x = 0; x < out.width; ++x) {
      if (xs[x] >= 0) std::copy(in + xs[x] * c, in + xs[x] * c + c, o + x * c);
    }
  }
  return out;
}

// Pillow's MULDIV255: a * b / 255 rounded, in integers.
inline uint8_t muldiv255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// RGBA -> RGBa / LA -> La (Pillow's rgbA2rgba, lA2la): alpha is the last channel.
void premultiply(Plane<uint8_t>& p) {
  const int64_t c = p.channels;
  for (size_t i = 0; i < p.data.size(); i += c) {
    const unsigned alpha = p.data[i + c - 1];
    for (int64_t ch = 0; ch + 1 < c; ++ch) p.data[i + ch] = muldiv255(p.data[i + ch], alpha);
  }
}

// RGBa -> RGBA / La -> LA (Pillow's rgba2rgbA, la2lA).
void unpremultiply(Plane<uint8_t>& p) {
  const int64_t c = p.channels;
  for (size_t i = 0; i < p.data.size(); i += c) {
    const unsigned alpha = p.data[i + c - 1];
    if (alpha == 0 || alpha == 255) continue;
    for (int64_t ch = 0; ch + 1 < c; ++ch) p.data[i + ch] = static_cast<uint8_t>(std::min(255u, 255u * p.data[i + ch] / alpha));
  }
}

}  // namespace

Image resize_like_pillow(const Image& image, int64_t width, int64_t height, const PixelRect& window) {
  TE_CHECK(width > 0 && height > 0, "resize: output size {} x {} is empty", width, height);
  TE_CHECK(window.x >= 0 && window.y >= 0 && window.width > 0 && window.height > 0 &&
               window.x + window.width <= width && window.y + window.height <= height,
           "resize: window ({}, {}) + {} x {} is not inside the {} x {} output", window.x, window.y, window.width,
           window.height, width, height);
  Image out;
  out.width = window.width;
  out.height = window.height;
  out.mode = image.mode;
  out.format = image.format;
  out.nearest_resize_only = image.nearest_resize_only;
  const bool same_size = width == image.width && height == image.height;  // Pillow returns a copy

  if (image.mode == ImageMode::I16) {
    Plane<int32_t> src{std::vector<int32_t>(image.samples16.begin(), image.samples16.end()), image.width,
                       image.height, 1};
    const Plane<int32_t> r = same_size ? crop(src, window) : bicubic_resize(src, width, height, window);
    out.samples16.resize(r.data.size());
    for (size_t i = 0; i < r.data.size(); ++i) out.samples16[i] = static_cast<uint16_t>(std::clamp(r.data[i], 0, 65535));
    return out;
  }
  Plane<uint8_t> src{image.pixels, image.width, image.height, image.channels()};
  Plane<uint8_t> r;
  if (same_size) {
    r = crop(src, window);
  } else if (image.nearest_resize_only) {
    r = nearest_resize(src, width, height, window);
  } else if (image.mode == ImageMode::LA || image.mode == ImageMode::RGBA) {
    premultiply(src);
    r = bicubic_resize(src, width, height, window);
    unpremultiply(r);
  } else {
    r = bicubic_resize(src, width, height, window);
  }
  out.pixels = std::move(r.data);
  return out;
}

Image convert_to_rgb_like_pillow(const Image& image) {
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.mode = ImageMode::RGB;
  out.format = image.format;
  out.nearest_resize_only = image.nearest_resize_only;
  const size_t n = static_cast<size_t>(image.width * image.height);
  out.pixels.resize(n * 3);
  uint8_t* o = out.pixels.data();
  const uint8_t* in = image.pixels.data();
  switch (image.mode) {
    case ImageMode::RGB: out.pixels = image.pixels; break;
    case ImageMode::L:
    case ImageMode::LA: {
      const int c = image.channels();
      for (size_t i = 0; i < n; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = in[c * i];
      break;
    }
    case ImageMode::RGBA:
      for (size_t i = 0; i < n; ++i) std::copy(in + 4 * i, in + 4 * i + 3, o + 3 * i);
      break;
    case ImageMode::CMYK:
      // Pillow's cmyk2rgb: R = (255 - K) - C * (255 - K) / 255, clipped.
      for (size_t i = 0; i < n; ++i) {
        const int nk = 255 - in[4 * i + 3];
        for (int ch = 0; ch < 3; ++ch) o[3 * i + ch] = static_cast<uint8_t>(std::clamp(nk - muldiv255(in[4 * i + ch], nk), 0, 255));
      }
      break;
    case ImageMode::I16:
      for (size_t i = 0; i < n; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = static_cast<uint8_t>(std::min<int>(image.samples16[i], 255));
      break;
  }
  return out;
}

void clip_resized_size(int64_t width, int64_t height, int64_t size, int64_t* out_width, int64_t* out_height) {
  TE_CHECK(width > 0 && height > 0 && size > 0, "resize: bad sizes ({} x {} to {})", width, height, size);
  const int64_t shorter = std::min(width, height), longer = std::max(width, height);
  // Python: int(size * long / short), a correctly rounded double quotient truncated.
  const auto new_long = static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  *out_width = width <= height ? size : new_long;
  *out_height = width <= height ? new_long : size;
}

int64_t center_crop_offset(int64_t extent, int64_t size) {
  TE_CHECK(extent >= size, "center crop: {} pixels cannot hold a crop of {}", extent, size);
  const int64_t d = extent - size, half = d / 2;
  // An odd d gives half + 0.5, which Python's round() sends to the even neighbour.
  return (d % 2 == 0 || half % 2 == 0) ? half : half + 1;
}

void clip_preprocess_into(const Image& image, int64_t size, float* out) {
  TE_CHECK(size > 0, "preprocess: size must be positive, got {}", size);
  int64_t rw = 0, rh = 0;
  clip_resized_size(image.width, image.height, size, &rw, &rh);
  const PixelRect window{center_crop_offset(rw, size), center_crop_offset(rh, size), size, size};
  const Image rgb = convert_to_rgb_like_pillow(resize_like_pillow(image, rw, rh, window));
  const int64_t plane = size * size;
  for (int ch = 0; ch < 3; ++ch) {
    float* o = out + ch * plane;
    for (int64_t i = 0; i < plane; ++i) {
      // ToTensor then Normalize, in float32 as torch computes them.
      const float v = static_cast<float>(rgb.pixels[3 * i + ch]) / 255.0f;
      o[i] = (v - kClipMean[ch]) / kClipStd[ch];
    }
  }
}

Tensor clip_preprocess(const Image& image, int64_t size) {
  Tensor t = Tensor::empty(DType::F32, {3, size, size});
  clip_preprocess_into(image, size, t.mutable_data<float>());
  return t;
}

}  // namespace tinyemo::clip
