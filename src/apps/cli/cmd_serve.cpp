// `tinyemo serve`: the HTTP server (src/apps/server, a frontend over the
// public C API). Option parsing only; the server is tinyemo::server::run_server.
#include "apps/cli/command.h"
#include "apps/server/server.h"

namespace tinyemo::cli {
namespace {

const CommandRegistration kServe("serve", [](CLI::App& root) {
  auto o = std::make_shared<server::ServerOptions>();
  auto* cmd = root.add_subcommand(
      "serve", "HTTP API (/v1/classify, /v1/embeddings, /v1/chat/completions, /v1/reason) and a web page");
  cmd->add_option("--host", o->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "port (0: any free port, printed on start)")
      ->check(in_range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--clip", o->clip, "CLIP model directory or weights file")->required();
  cmd->add_option("--projector", o->projector, "Metric Projector (.safetensors)")->required();
  cmd->add_option("--lm", o->lm, "a text LM (folder with tokenizer, or .gguf) for /v1/chat/completions");
  cmd->add_option("--mm", o->mm, "TinyEmo's reasoning model (TinyLLaVA folder) for /v1/reason and images in chat");
  cmd->add_option("--mmproj", o->mmproj,
                  "llama.cpp's mmproj .gguf (vision tower + LLaVA projector); --mm is then the LM .gguf");
  cmd->add_option("--mm-template", o->mm_template,
                  "--mm's conversation template (llama, phi, gemma, qwen2_base, ...; default: the model's)");
  cmd->add_option("--anchors-lm", o->anchors_lm,
                  "an LM whose input embeddings anchor labels the projector does not know (open vocabulary)");
  cmd->add_option("--clip-text", o->clip_text,
                  "a whole CLIP model (usually the --clip one) whose text tower embeds texts in /v1/embeddings");
  cmd->add_option("--clip-vocab", o->clip_vocab,
                  "CLIP's BPE merges for --clip-text (default: bpe_simple_vocab_16e6.txt.gz or merges.txt beside it)");
  cmd->add_option("--grounding", o->grounding, "text anchored for a new label, {label} replaced")
      ->capture_default_str();
  cmd->add_option("--chat-template", o->chat_template, "prompt format of --lm: plain, zephyr, chatml")
      ->capture_default_str();
  cmd->add_option("--clip-compute", o->clip_compute,
                  "--clip's products: auto (default), f32, bf16 (AVX512-BF16 CPUs), stored (docs/clip.md)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "stored"}));
  cmd->add_option("--lm-compute", o->lm_compute,
                  "prefill's products of --lm and --mm: f32 (default) or bf16 (AVX512-BF16 CPUs; docs/lm.md)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("--api-key", o->api_key, "require \"Authorization: Bearer KEY\" (not on /health and the page)");
  cmd->add_option("--parallel", o->parallel, "generation slots, each with its own session")
      ->check(in_range(1, 64))
      ->capture_default_str();
  cmd->add_option("--queue", o->queue, "requests that may wait per queue before 503")
      ->check(in_range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "images per CLIP forward")->check(in_range(1, 256))->capture_default_str();
  cmd->add_option("--http-threads", o->http_threads, "connection threads (0: parallel + queue + 8)")
      ->check(in_range(0, 4096));
  cmd->add_option("--max-body-mb", o->max_body_mb, "largest request body")
      ->check(in_range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-pixels", o->max_pixels, "largest image (width x height) accepted")
      ->check(in_range(1, 4294967296.0))
      ->capture_default_str();
  cmd->add_option("--max-images", o->max_images, "images per request")->check(in_range(1, 4096))->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens, "tokens generated when a request does not say")
      ->check(in_range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--timeout-s", o->timeout_s, "time limit of every request (waiting included)")
      ->check(in_range(1, 86400))
      ->capture_default_str();
  cmd->add_flag("--metrics", o->metrics, "serve GET /metrics (Prometheus text)");
  cmd->add_option("--debug-load-delay-ms", o->debug_load_delay_ms)->group("")->check(at_least(0));
  // The global --threads sizes each model's pool (default: one thread per core).
  CLI::Option* threads = root.get_option("--threads");
  cmd->callback([o, threads] {
    if (threads->count() > 0) o->threads = threads->as<int>();
    exit_code() = server::run_server(*o);
  });
});

}  // namespace
}  // namespace tinyemo::cli
