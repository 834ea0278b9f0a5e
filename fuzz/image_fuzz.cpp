// fuzz-link: tinyemo_clip
// Image loader: JPEG/PNG/WebP decoding (libjpeg/libpng error paths return
// through longjmp into tinyemo::Error), then CLIP preprocessing of whatever
// decoded, which exercises Pillow-exact resampling for every mode and odd
// sizes. The pixel budget is small so one input stays fast.
#include "fuzz_input.h"
#include "io/image.h"
#include "models/clip/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tinyemo::Image image = tinyemo::decode_image(data, size, "fuzz-input", tinyemo::ImageLimits{1 << 20});
    const tinyemo::Tensor pixels = tinyemo::clip::clip_preprocess(image, 24);
    tinyemo::fuzz::consume(tinyemo::fuzz::touch(pixels));
  } catch (const tinyemo::Error&) {
    // refused cleanly: what the loader must do with bad input
  }
  return 0;
}
