#include "models/clip/image_processor.h"

#include <algorithm>

#include "core/error.h"
#include "models/clip/preprocess.h"

namespace tinyemo::clip {

namespace {

constexpr int kPillowBicubic = 3;

// HF's get_size_dict for a `size` / `crop_size` field: an int is a shorter
// side (`size` of CLIP) or a square (`crop_size`, SigLIP's `size`).
void read_size(const JsonObject& c, const std::string& key, bool int_is_shortest_edge, int64_t* shortest_edge,
               int64_t* height, int64_t* width) {
  if (!c.has(key)) return;
  const nlohmann::json& v = c.json().at(key);
  if (v.is_number_integer()) {
    const int64_t n = v.get<int64_t>();
    if (int_is_shortest_edge) {
      *shortest_edge = n;
      *height = *width = 0;
    } else {
      *shortest_edge = 0;
      *height = *width = n;
    }
    return;
  }
  const JsonObject size = c.object(key);
  if (size.has("shortest_edge")) {
    TE_CHECK(shortest_edge != nullptr, "{}: \"{}\" cannot be a shortest_edge", c.where(), key);
    TE_CHECK(!size.has("longest_edge"), "{}: \"{}\" with longest_edge is not supported", c.where(), key);
    *shortest_edge = size.get<int64_t>("shortest_edge");
    *height = *width = 0;
    return;
  }
  TE_CHECK(size.has("height") && size.has("width"), "{}: \"{}\" needs shortest_edge or height and width", c.where(),
           key);
  if (shortest_edge != nullptr) *shortest_edge = 0;
  *height = size.get<int64_t>("height");
  *width = size.get<int64_t>("width");
}

std::array<double, 3> read_triple(const JsonObject& c, const std::string& key, const std::array<double, 3>& fallback) {
  if (!c.has(key)) return fallback;
  const nlohmann::json& v = c.json().at(key);
  if (v.is_number()) return {v.get<double>(), v.get<double>(), v.get<double>()};
  const auto list = c.get<std::vector<double>>(key);
  TE_CHECK(list.size() == 3, "{}: \"{}\" has {} values, expected 3 (one per RGB channel)", c.where(), key, list.size());
  return {list[0], list[1], list[2]};
}

// Output sides beyond this are not an image processor for a vision tower.
constexpr int64_t kMaxSide = 16384;

void validate(const ImageProcessorConfig& p, const std::string& where) {
  if (p.do_resize) {
    TE_CHECK((p.shortest_edge > 0 && p.shortest_edge <= kMaxSide) ||
                 (p.height > 0 && p.width > 0 && p.height <= kMaxSide && p.width <= kMaxSide),
             "{}: the resize size must be in 1 .. {}", where, kMaxSide);
  }
  if (p.do_center_crop) {
    TE_CHECK(p.crop_height > 0 && p.crop_width > 0 && p.crop_height <= kMaxSide && p.crop_width <= kMaxSide,
             "{}: crop_size must be in 1 .. {}", where, kMaxSide);
  }
  if (p.do_normalize) {
    for (int c = 0; c < 3; ++c) TE_CHECK(p.image_std[c] != 0.0, "{}: image_std[{}] is 0", where, c);
  }
}

}  // namespace

void ImageProcessorConfig::output_size(int64_t w, int64_t h, int64_t* out_width, int64_t* out_height) const {
  if (do_resize && shortest_edge > 0) {
    clip_resized_size(w, h, shortest_edge, &w, &h);  // HF's get_resize_output_image_size, default_to_square=False
  } else if (do_resize) {
    w = width;
    h = height;
  }
  if (do_center_crop) {
    w = crop_width;
    h = crop_height;
  }
  *out_width = w;
  *out_height = h;
}

nlohmann::json ImageProcessorConfig::to_json() const {
  nlohmann::json j{{"image_processor_type", type},
                   {"do_resize", do_resize},
                   {"resample", kPillowBicubic},
                   {"do_center_crop", do_center_crop},
                   {"do_rescale", do_rescale},
                   {"rescale_factor", rescale_factor},
                   {"do_normalize", do_normalize},
                   {"image_mean", image_mean},
                   {"image_std", image_std}};
  j["size"] = shortest_edge > 0 ? nlohmann::json{{"shortest_edge", shortest_edge}}
                                : nlohmann::json{{"height", height}, {"width", width}};
  if (do_center_crop) j["crop_size"] = {{"height", crop_height}, {"width", crop_width}};
  return j;
}

ImageProcessorConfig default_image_processor(const VisionConfig& vision) {
  ImageProcessorConfig p;
  if (vision.family == VisionFamily::Siglip) {
    p.type = "SiglipImageProcessor";
    p.height = p.width = vision.image_size;
    p.image_mean = {0.5, 0.5, 0.5};
    p.image_std = {0.5, 0.5, 0.5};
  } else {
    p.type = "CLIPImageProcessor";
    p.shortest_edge = vision.image_size;
    p.do_center_crop = true;
    p.crop_height = p.crop_width = vision.image_size;
    for (int c = 0; c < 3; ++c) {
      p.image_mean[c] = kClipMean[c];
      p.image_std[c] = kClipStd[c];
    }
  }
  return p;
}

ImageProcessorConfig image_processor_from_hf(const JsonObject& c) {
  const std::string type =
      c.get_or<std::string>("image_processor_type", c.get_or<std::string>("feature_extractor_type", ""));
  ImageProcessorConfig p;
  bool siglip = false;
  if (type == "CLIPImageProcessor" || type == "CLIPFeatureExtractor") {
    // HF's defaults: shortest_edge 224, center crop 224, OpenAI's mean/std.
    VisionConfig clip;
    clip.image_size = 224;
    p = default_image_processor(clip);
  } else if (type == "SiglipImageProcessor") {
    VisionConfig siglip_tower;
    siglip_tower.family = VisionFamily::Siglip;
    siglip_tower.image_size = 224;
    p = default_image_processor(siglip_tower);
    siglip = true;
  } else {
    fail("{}: image_processor_type \"{}\" is not supported (CLIPImageProcessor, SiglipImageProcessor)", c.where(),
         type);
  }
  p.type = type == "CLIPFeatureExtractor" ? "CLIPImageProcessor" : type;
  p.do_resize = c.get_or<bool>("do_resize", p.do_resize);
  read_size(c, "size", !siglip, siglip ? nullptr : &p.shortest_edge, &p.height, &p.width);
  const int resample = c.get_or<int>("resample", kPillowBicubic);
  TE_CHECK(resample == kPillowBicubic, "{}: resample {} is not supported (3, bicubic, as CLIP and SigLIP use)",
           c.where(), resample);
  if (!siglip) {
    p.do_center_crop = c.get_or<bool>("do_center_crop", p.do_center_crop);
    read_size(c, "crop_size", false, nullptr, &p.crop_height, &p.crop_width);
  } else {
    TE_CHECK(!c.get_or<bool>("do_center_crop", false), "{}: SiglipImageProcessor does not crop (do_center_crop)",
             c.where());
  }
  p.do_rescale = c.get_or<bool>("do_rescale", p.do_rescale);
  p.rescale_factor = c.get_or<double>("rescale_factor", p.rescale_factor);
  p.do_normalize = c.get_or<bool>("do_normalize", p.do_normalize);
  p.image_mean = read_triple(c, "image_mean", p.image_mean);
  p.image_std = read_triple(c, "image_std", p.image_std);
  validate(p, c.where());
  return p;
}

Image expand_to_square(const Image& rgb, const std::array<uint8_t, 3>& background) {
  TE_CHECK(rgb.mode == ImageMode::RGB && rgb.width > 0 && rgb.height > 0,
           "expand_to_square: expected a non-empty RGB image, got {} x {} {}", rgb.width, rgb.height,
           image_mode_name(rgb.mode));
  if (rgb.width == rgb.height) return rgb;
  const int64_t side = std::max(rgb.width, rgb.height);
  // A long thin image would square into far more pixels than it has.
  TE_CHECK(side <= ImageLimits{}.max_pixels / side,
           "expand_to_square: a {} x {} image would become {} x {}, more than the {} pixels an image may have",
           rgb.width, rgb.height, side, side, ImageLimits{}.max_pixels);
  const int64_t x0 = rgb.width < side ? (side - rgb.width) / 2 : 0;
  const int64_t y0 = rgb.height < side ? (side - rgb.height) / 2 : 0;
  Image out;
  out.width = out.height = side;
  out.mode = ImageMode::RGB;
  out.format = rgb.format;
  out.pixels.resize(static_cast<size_t>(side * side * 3));
  for (int64_t i = 0; i < side * side; ++i) std::copy(background.begin(), background.end(), out.pixels.begin() + 3 * i);
  for (int64_t y = 0; y < rgb.height; ++y) {
    const uint8_t* src = rgb.pixels.data() + y * rgb.width * 3;
    std::copy(src, src + rgb.width * 3, out.pixels.data() + ((y0 + y) * side + x0) * 3);
  }
  return out;
}

Tensor hf_preprocess(const Image& image, const ImageProcessorConfig& p) {
  validate(p, "image processor");
  Image rgb = image.mode == ImageMode::RGB ? image : convert_to_rgb_like_pillow(image);
  rgb.nearest_resize_only = false;  // RGB now: Pillow's resize is the plain bicubic one
  int64_t w = rgb.width, h = rgb.height;
  if (p.do_resize && p.shortest_edge > 0) {
    clip_resized_size(rgb.width, rgb.height, p.shortest_edge, &w, &h);
  } else if (p.do_resize) {
    w = p.width;
    h = p.height;
  }
  // HF's center_crop takes (extent - crop) // 2; only that window of the
  // resized image is computed (a long thin image never lives at full size).
  PixelRect window{0, 0, w, h};
  if (p.do_center_crop) {
    TE_CHECK(p.crop_width <= w && p.crop_height <= h,
             "image processor: crop {} x {} is larger than the resized image {} x {}", p.crop_width, p.crop_height, w,
             h);
    window = {(w - p.crop_width) / 2, (h - p.crop_height) / 2, p.crop_width, p.crop_height};
  }
  TE_CHECK(window.width <= kMaxSide && window.height <= kMaxSide,
           "image processor: the output would be {} x {} (do_resize off on a large image)", window.width,
           window.height);
  // (At the image's own size this is Pillow's copy, cropped to the window.)
  if (w != rgb.width || h != rgb.height || window.width != w || window.height != h) {
    rgb = resize_like_pillow(rgb, w, h, window);
  }
  const int64_t out_w = rgb.width, out_h = rgb.height;
  Tensor out = Tensor::empty(DType::F32, {3, out_h, out_w});
  float* o = out.mutable_data<float>();
  for (int ch = 0; ch < 3; ++ch) {
    const float mean = static_cast<float>(p.image_mean[ch]), std = static_cast<float>(p.image_std[ch]);
    for (int64_t y = 0; y < out_h; ++y) {
      const uint8_t* row = rgb.pixels.data() + y * rgb.width * 3 + ch;
      float* dst = o + (ch * out_h + y) * out_w;
      for (int64_t x = 0; x < out_w; ++x) {
        float v = static_cast<float>(row[3 * x]);
        if (p.do_rescale) v = static_cast<float>(static_cast<double>(row[3 * x]) * p.rescale_factor);
        if (p.do_normalize) v = (v - mean) / std;
        dst[x] = v;
      }
    }
  }
  return out;
}

}  // namespace tinyemo::clip
