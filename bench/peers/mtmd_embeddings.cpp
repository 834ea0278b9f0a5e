// llama.cpp's CLIP encoder (tools/mtmd/clip.cpp, compiled with this file by
// bench/peers/mmproj_check.sh) on pixel values given directly, so llama.cpp
// and tinyemo see the same input (llama.cpp's own resize / pad / normalise is
// bypassed): reads an mmproj .gguf and raw little-endian F32 pixels [3, N, N]
// (planar, already normalised), writes the image embeddings as raw F32
// [tokens, width] and prints "tokens width".
//
//   mtmd_embeddings MMPROJ.gguf PIXELS.f32 N OUT.f32
//
// LLAMA_BINS: the folder of the prebuilt ggml CPU backends (loaded by path).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "clip-impl.h"
#include "clip.h"
#include "ggml-backend.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MMPROJ.gguf PIXELS.f32 N OUT.f32\n", argv[0]);
    return 2;
  }
  if (const char* bins = std::getenv("LLAMA_BINS")) ggml_backend_load_all_from_path(bins);
  const int n = std::atoi(argv[3]);
  std::vector<float> planar(static_cast<size_t>(3) * n * n);
  {
    std::ifstream in(argv[2], std::ios::binary);
    in.read(reinterpret_cast<char*>(planar.data()), static_cast<std::streamsize>(planar.size() * sizeof(float)));
    if (!in || in.peek() != EOF) {
      std::fprintf(stderr, "%s: expected exactly 3 x %d x %d floats\n", argv[2], n, n);
      return 1;
    }
  }
  clip_context_params params{};
  params.use_gpu = false;
  params.device = nullptr;
  params.flash_attn_type = CLIP_FLASH_ATTN_TYPE_DISABLED;
  params.image_min_tokens = -1;
  params.image_max_tokens = -1;
  params.warmup = false;
  const clip_init_result r = clip_init(argv[1], params);
  if (r.ctx_v == nullptr) {
    std::fprintf(stderr, "%s: clip_init failed\n", argv[1]);
    return 1;
  }
  // clip_image_f32 holds interleaved RGB (clip.cpp makes it planar for the graph).
  clip_image_f32 img;
  img.set_size({n, n}, false, false);
  std::vector<float> interleaved(planar.size());
  const size_t hw = static_cast<size_t>(n) * n;
  for (size_t i = 0; i < hw; ++i) {
    for (size_t c = 0; c < 3; ++c) interleaved[3 * i + c] = planar[c * hw + i];
  }
  img.cpy_buf(interleaved);
  const int tokens = clip_n_output_tokens(r.ctx_v, &img), width = clip_n_mmproj_embd(r.ctx_v);
  std::vector<float> out(static_cast<size_t>(tokens) * width);  // clip_encode fills a buffer of the caller's size
  if (!clip_image_encode(r.ctx_v, 2, &img, out)) {
    std::fprintf(stderr, "clip_image_encode failed\n");
    return 1;
  }
  if (out.size() != static_cast<size_t>(tokens) * width) {
    std::fprintf(stderr, "got %zu floats, expected %d x %d\n", out.size(), tokens, width);
    return 1;
  }
  std::ofstream(argv[4], std::ios::binary)
      .write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
  std::printf("%d %d\n", tokens, width);
  clip_free(r.ctx_v);
  return 0;
}
