// llama.cpp as a peer: loads a GGUF file with the prebuilt libllama (npm's
// node-llama-cpp@3.21.1) and writes the logits of every position of a token
// sequence, so that bench/peers/llamacpp_check.sh can compare them with
// tinyemo's on the same file. Not part of tinyemo's build: the script
// compiles it against llama.cpp's headers and prebuilt libraries.
//
//   llamacpp_logits MODEL.gguf OUT.f32 ID...          logits [T, V] as raw float32
//   llamacpp_logits MODEL.gguf --tokenize TEXT         the ids llama.cpp gives TEXT (add_special)
//
// F32 KV cache and no flash attention, so that an F32 model's logits differ
// from tinyemo's by rounding only.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "llamacpp_logits: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return fail("usage: llamacpp_logits MODEL.gguf (OUT.f32 ID... | --tokenize TEXT)");
  const char* bins = std::getenv("LLAMA_BINS");
  if (bins) ggml_backend_load_all_from_path(bins);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) return fail("llama.cpp could not load the model");
  const llama_vocab* vocab = llama_model_get_vocab(model);

  if (std::strcmp(argv[2], "--tokenize") == 0) {
    const std::string text = argv[3];
    std::vector<llama_token> ids(text.size() + 8);
    const int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                                 static_cast<int32_t>(ids.size()), /*add_special=*/true, /*parse_special=*/true);
    if (n < 0) return fail("tokenization failed");
    for (int i = 0; i < n; ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
    llama_model_free(model);
    return 0;
  }

  std::vector<llama_token> ids;
  for (int i = 3; i < argc; ++i) ids.push_back(std::atoi(argv[i]));
  const int32_t T = static_cast<int32_t>(ids.size());
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(T < 64 ? 64 : T);
  cp.n_batch = cp.n_ubatch = cp.n_ctx;
  cp.n_threads = cp.n_threads_batch = 2;
  cp.type_k = cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) return fail("llama.cpp could not make a context");
  llama_batch batch = llama_batch_init(T, 0, 1);
  for (int32_t i = 0; i < T; ++i) {
    batch.token[i] = ids[static_cast<size_t>(i)];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = 1;
  }
  batch.n_tokens = T;
  if (llama_decode(ctx, batch) != 0) return fail("llama_decode failed");
  const int32_t V = llama_vocab_n_tokens(vocab);
  FILE* out = std::fopen(argv[2], "wb");
  if (!out) return fail("cannot write the output");
  for (int32_t i = 0; i < T; ++i) std::fwrite(llama_get_logits_ith(ctx, i), sizeof(float), static_cast<size_t>(V), out);
  std::fclose(out);
  std::fprintf(stderr, "llamacpp_logits: %d positions x %d logits\n", T, V);
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
