// `tinyemo serve`: an HTTP API (OpenAI-compatible where OpenAI has the route)
// and a web page for emotion classification and reasoning. The server is a
// frontend over the public C API only (include/tinyemo.h, tinyemo.hpp): it
// is built without the engine's headers on its include path, and a test
// checks that its objects reference no engine symbol (docs/server.md).
#pragma once

#include <cstdint>
#include <string>

namespace tinyemo::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the one chosen is printed)
  std::string clip, projector;  // required: CLIP tower and Metric Projector
  std::string lm;               // optional: a text LM for /v1/chat/completions
  std::string mm;               // optional: the reasoning model (TinyLLaVA / TinyEmo), or the LM .gguf of an mmproj pair
  std::string mmproj;           // optional: llama.cpp's mmproj .gguf paired with --mm
  std::string mm_template;      // optional: --mm's conversation template (an mmproj pair names none)
  std::string anchors_lm;       // optional: an LM that anchors new labels (open vocabulary)
  std::string clip_text;        // optional: a whole CLIP model whose text tower embeds texts in /v1/embeddings
  std::string clip_vocab;       // optional: its BPE merges (default: beside --clip-text)
  std::string grounding = "{label}";  // the text anchored for each new label
  std::string chat_template = "plain";
  std::string api_key;          // non-empty: every route but /health and the page needs "Authorization: Bearer KEY"
  int parallel = 1;             // generation slots
  int threads = 0;              // threads per model handle (0: one per core)
  int batch = 8;                // images per CLIP forward
  std::string clip_compute;     // --clip's products (te_clip_params.compute); empty: "auto"
  std::string lm_compute;       // prefill's products of --lm and --mm (te_lm_params.compute); empty: "f32"
  int queue = 64;               // requests that may wait, per queue (CLIP, generation)
  int http_threads = 0;         // 0: parallel + queue + 8
  int64_t max_body_mb = 20;
  int64_t max_pixels = 40'000'000;
  int max_images = 32;          // images per request
  int max_tokens = 512;         // default max_tokens of a generation
  int timeout_s = 60;           // bound on any request (waiting + work)
  bool metrics = false;
  int debug_load_delay_ms = 0;  // tests: hold /health at 503 this long before loading
};

// Listens, loads the models in the background (/health answers 503 until they
// are in), and serves until SIGTERM or SIGINT; then stops accepting, lets the
// requests in flight finish (each is bounded by --timeout-s) and returns 0.
// Returns non-zero when a model cannot be loaded or the port cannot be bound.
int run_server(const ServerOptions& options);

}  // namespace tinyemo::server
