// CLIP's image transform exactly as OpenAI's clip.load() builds it
// (torchvision on a Pillow image): Resize(N, BICUBIC) of the shorter side,
// CenterCrop(N), convert("RGB"), ToTensor (/255), Normalize(CLIP mean, std).
// Pillow's resampling is reproduced bit for bit: separable bicubic (a = -0.5)
// widened by the scale when shrinking (antialias), 22-bit fixed-point
// coefficients, an 8-bit rounded and clipped intermediate after the
// horizontal pass, premultiplied alpha for LA/RGBA, nearest neighbour for
// palette and 1-bit images, resizing before the conversion to RGB.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "io/image.h"

namespace tinyemo::clip {

inline constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

// A rectangle of pixels: columns [x, x + width), rows [y, y + height).
struct PixelRect {
  int64_t x = 0, y = 0, width = 0, height = 0;
};

// Pillow's Image.resize((width, height), Resampling.BICUBIC) for the image's
// mode (with Pillow's own substitutions: premultiplied alpha, nearest
// neighbour for "P"/"1"), keeping only the pixels inside `window` of the
// resized image (the rest is never computed). The result has the input's mode.
Image resize_like_pillow(const Image& image, int64_t width, int64_t height, const PixelRect& window);
inline Image resize_like_pillow(const Image& image, int64_t width, int64_t height) {
  return resize_like_pillow(image, width, height, PixelRect{0, 0, width, height});
}

// Pillow's Image.convert("RGB"): alpha dropped, grey replicated, CMYK
// converted with Pillow's formula, 16-bit grey clipped to 0..255.
Image convert_to_rgb_like_pillow(const Image& image);

// torchvision's Resize(size) output size for an image: the shorter side
// becomes `size`, the longer int(size * long / short).
void clip_resized_size(int64_t width, int64_t height, int64_t size, int64_t* out_width, int64_t* out_height);
// torchvision's CenterCrop(size) offset along a side of `extent` pixels:
// int(round((extent - size) / 2)), Python's round (half to even).
int64_t center_crop_offset(int64_t extent, int64_t size);

// The whole transform into `out` ([3, size, size] floats, channel-major).
void clip_preprocess_into(const Image& image, int64_t size, float* out);
// Same, as an owned F32 tensor [3, size, size].
Tensor clip_preprocess(const Image& image, int64_t size);

}  // namespace tinyemo::clip
