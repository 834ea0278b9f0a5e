// fuzz-link: tinyemo_clip tinyemo_lm
// config.json readers: the strict JSON parser (repeated keys refused), then
// the CLIP vision config (CLIPModel / CLIPVisionModel layouts) and the LM
// config (LLaMA, Phi, OpenELM and their variants) read from the same object.
// Each must refuse bad values with tinyemo::Error (non-integer sizes, zero or
// negative sizes, unknown activations) and never crash or allocate by a
// value it read (seeds: fuzz/corpus/config_json, the fixtures' configs).
#include <string_view>

#include "core/error.h"
#include "io/json.h"
#include "models/clip/config.h"
#include "models/lm/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const tinyemo::JsonObject config(tinyemo::parse_json_text(text, "config.json"), "config.json");
    try {
      const auto c = tinyemo::clip::vision_config_from_hf(config);
      static volatile double sink;
      sink = c.flop_per_image();
    } catch (const tinyemo::Error&) {
    }
    try {
      const auto c = tinyemo::lm::parse_lm_config(config);
      static volatile int64_t sink;
      sink = c.n_layers();
    } catch (const tinyemo::Error&) {
    }
  } catch (const tinyemo::Error&) {
    // refused cleanly
  }
  return 0;
}
