// llama.cpp as a speed peer: prefill and batch-1 decode of a GGUF file with the
// prebuilt libllama (npm's node-llama-cpp@3.21.1), timed as `tinyemo lm bench`
// times them, with llama-bench's settings. Not part of tinyemo's build:
// bench/peers/llamacpp_speed.sh compiles it against llama.cpp's headers and the
// prebuilt libraries.
//
//   llamacpp_bench MODEL.gguf [--threads N] [--prompt-tokens P] [--gen-tokens G]
//                  [--flash-attn auto|on|off] [--poll 0..100]
//
// Prints one JSON line: prefill_seconds / prefill_tokens_per_s (the faster of
// two prefills of P tokens from an empty cache, the first of which also
// faults the weights in, as tinyemo's bench does) and decode_seconds /
// decode_tokens_per_s (G single-token decodes after the prompt, each fed the
// argmax of the previous logits). The prompt ids are tinyemo's bench ids,
// (i * 7919 + 13) mod vocab. llama-bench's defaults otherwise: n_batch 2048,
// n_ubatch 512 (both at least P), F16 KV cache, flash attention "auto", no GPU
// layers, a ggml threadpool of N threads (n_threads and n_threads_batch)
// polling at 50 (--poll: how long a worker spins for the next graph node
// before it sleeps; 0 sleeps at once), attached to the context.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "llamacpp_bench: %s\n", what.c_str());
  return 1;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// llama.cpp's log, kept quiet; the lines that say how flash attention and the
// CPU backend were resolved are kept for the JSON.
std::string g_flash_attn_log;

void log_callback(ggml_log_level, const char* text, void*) {
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("flash") != std::string::npos) g_flash_attn_log += text;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) >= 0x20) {
      out += c;
    }
  }
  return out + "\"";
}

int32_t argmax(const float* logits, int32_t n) {
  return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return fail("usage: llamacpp_bench MODEL.gguf [--threads N] [--prompt-tokens P] [--gen-tokens G] "
                            "[--flash-attn auto|on|off] [--poll 0..100]");
  const char* path = argv[1];
  int threads = 2, prompt_tokens = 128, gen_tokens = 64, poll = 50;
  std::string flash_attn = "auto";
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return fail(arg + " needs a value");
    const char* value = argv[++i];
    if (arg == "--threads") {
      threads = std::atoi(value);
    } else if (arg == "--prompt-tokens") {
      prompt_tokens = std::atoi(value);
    } else if (arg == "--gen-tokens") {
      gen_tokens = std::atoi(value);
    } else if (arg == "--poll") {
      poll = std::atoi(value);
    } else if (arg == "--flash-attn") {
      flash_attn = value;
    } else {
      return fail("unknown option " + arg);
    }
  }
  if (threads < 1 || prompt_tokens < 1 || gen_tokens < 1) return fail("threads and token counts must be positive");
  if (poll < 0 || poll > 100) return fail("--poll: 0 to 100");
  if (flash_attn != "auto" && flash_attn != "on" && flash_attn != "off") return fail("--flash-attn: auto, on or off");

  llama_log_set(log_callback, nullptr);
  if (const char* bins = std::getenv("LLAMA_BINS")) ggml_backend_load_all_from_path(bins);
  llama_backend_init();
  ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (!cpu_dev) return fail("llama.cpp's CPU backend is not loaded (set LLAMA_BINS)");
  ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev);
  auto* threadpool_new = reinterpret_cast<decltype(ggml_threadpool_new)*>(
      ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new"));
  auto* threadpool_free = reinterpret_cast<decltype(ggml_threadpool_free)*>(
      ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free"));
  if (!threadpool_new || !threadpool_free) return fail("the CPU backend has no ggml_threadpool_new");

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  const double load_t0 = now_seconds();
  llama_model* model = llama_model_load_from_file(path, mp);
  if (!model) return fail(std::string("llama.cpp could not load ") + path);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(prompt_tokens + gen_tokens);
  cp.n_batch = static_cast<uint32_t>(std::max(2048, prompt_tokens));
  cp.n_ubatch = static_cast<uint32_t>(std::max(512, prompt_tokens));
  cp.type_k = cp.type_v = GGML_TYPE_F16;
  cp.n_threads = cp.n_threads_batch = threads;
  cp.flash_attn_type = flash_attn == "auto" ? LLAMA_FLASH_ATTN_TYPE_AUTO
                       : flash_attn == "on" ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                            : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) return fail("llama.cpp could not make a context");
  const double load_seconds = now_seconds() - load_t0;

  ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
  tpp.poll = static_cast<uint32_t>(poll);
  ggml_threadpool* pool = threadpool_new(&tpp);
  if (!pool) return fail("could not make the threadpool");
  llama_attach_threadpool(ctx, pool, nullptr);
  llama_set_n_threads(ctx, threads, threads);

  std::vector<llama_token> prompt(static_cast<size_t>(prompt_tokens));
  for (int i = 0; i < prompt_tokens; ++i) prompt[i] = static_cast<llama_token>((int64_t{i} * 7919 + 13) % n_vocab);

  double prefill = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    llama_memory_clear(llama_get_memory(ctx), false);
    const double t0 = now_seconds();
    if (llama_decode(ctx, llama_batch_get_one(prompt.data(), prompt_tokens)) != 0) return fail("prefill failed");
    llama_synchronize(ctx);
    prefill = std::min(prefill, now_seconds() - t0);
  }
  llama_token id = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
  const double t0 = now_seconds();
  for (int i = 0; i < gen_tokens; ++i) {
    if (llama_decode(ctx, llama_batch_get_one(&id, 1)) != 0) return fail("decode failed");
    llama_synchronize(ctx);
    id = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
  }
  const double decode = now_seconds() - t0;

  char description[256] = {0};
  llama_model_desc(model, description, sizeof description);
  std::printf(
      "{\"engine\": \"llama.cpp\", \"model\": %s, \"description\": %s, \"parameters\": %llu, \"model_bytes\": %llu, "
      "\"threads\": %d, \"poll\": %d, \"prompt_tokens\": %d, \"gen_tokens\": %d, \"n_batch\": %u, \"n_ubatch\": %u, "
      "\"kv_type\": \"f16\", \"flash_attn\": %s, \"flash_attn_log\": %s, \"cpu_backend\": %s, \"system_info\": %s, "
      "\"load_seconds\": %.6f, \"prefill_seconds\": %.6f, \"prefill_tokens_per_s\": %.4f, "
      "\"decode_seconds\": %.6f, \"decode_tokens_per_s\": %.4f}\n",
      json_string(path).c_str(), json_string(description).c_str(),
      static_cast<unsigned long long>(llama_model_n_params(model)),
      static_cast<unsigned long long>(llama_model_size(model)), threads, poll, prompt_tokens, gen_tokens, cp.n_batch,
      cp.n_ubatch, json_string(flash_attn).c_str(), json_string(g_flash_attn_log).c_str(),
      json_string(ggml_backend_dev_description(cpu_dev)).c_str(), json_string(llama_print_system_info()).c_str(),
      load_seconds, prefill, prompt_tokens / prefill, decode, gen_tokens / decode);

  llama_free(ctx);
  threadpool_free(pool);
  llama_model_free(model);
  return 0;
}
