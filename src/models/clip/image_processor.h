// The Hugging Face image processors of the vision towers, as multimodal models
// (TinyLLaVA) run them: CLIPImageProcessor (shorter side to N, center crop) and
// SiglipImageProcessor (resize to H x W, no crop), with every field of a
// preprocessor_config.json honoured. The input is an RGB image (TinyLLaVA opens
// every image with Pillow's convert("RGB") first); resizing is Pillow's bicubic
// (resize_like_pillow), rescaling float32(pixel * rescale_factor) computed in
// double as numpy does, normalisation (x - mean) / std in float32.
//
// This differs from clip_preprocess (OpenAI's torchvision transform) in the
// crop offset (HF: floor((extent - N) / 2); torchvision rounds half to even)
// and in converting to RGB before resizing.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "io/image.h"
#include "io/json.h"
#include "models/clip/config.h"

namespace tinyemo::clip {

struct ImageProcessorConfig {
  std::string type;  // "CLIPImageProcessor" or "SiglipImageProcessor"
  bool do_resize = true;
  // shortest_edge > 0: the shorter side becomes shortest_edge, the longer
  // int(shortest_edge * long / short); otherwise exactly height x width.
  int64_t shortest_edge = 0, height = 0, width = 0;
  bool do_center_crop = false;
  int64_t crop_height = 0, crop_width = 0;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean{}, image_std{};

  // The processor's output size (after resize and crop) for an image.
  void output_size(int64_t width, int64_t height, int64_t* out_width, int64_t* out_height) const;
  nlohmann::json to_json() const;
};

// What the tower's own processor does when no preprocessor_config.json is
// given: CLIP's CLIPImageProcessor for its image size (shorter side and crop
// image_size, OpenAI's mean/std), SigLIP's SiglipImageProcessor (image_size x
// image_size, mean and std 0.5).
ImageProcessorConfig default_image_processor(const VisionConfig& vision);

// A preprocessor_config.json; missing fields take the defaults of its
// image_processor_type (or feature_extractor_type). Other processor types and
// resampling filters other than bicubic (3) are refused by name.
ImageProcessorConfig image_processor_from_hf(const JsonObject& config);

// The processor on an image (converted to RGB first, as TinyLLaVA's loader
// does): F32 [3, H, W].
Tensor hf_preprocess(const Image& image, const ImageProcessorConfig& config);

// TinyLLaVA's expand2square: an RGB image centred on a square canvas of the
// longer side filled with `background` (offset (longer - shorter) / 2, floored,
// as Pillow's paste does); a square image is returned as is.
Image expand_to_square(const Image& rgb, const std::array<uint8_t, 3>& background);

}  // namespace tinyemo::clip
