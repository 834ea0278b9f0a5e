// llama.cpp's multimodal generation path (what llama-mtmd-cli does, through
// the public mtmd + libllama API; compiled with llama.cpp's tools/mtmd by
// bench/peers/mtmd_generate.sh): mtmd_init_from_file on the mmproj, the image
// chunk from mtmd_tokenize, prefill, then greedy decoding with libllama's
// greedy sampler. Prints one JSON object: the generated ids, their text (null
// when the LM has no vocabulary), the image chunk's token count and the
// positions prefilled.
//
//   mtmd_generate LM.gguf MMPROJ.gguf N_PREDICT PROMPT IMAGE [LOGITS_OUT.f32]
//
// PROMPT is either
//   ids:1,45,77,-200,12,...  token ids, -200 where the image goes (the LM's
//                            fixtures carry no vocabulary, so the chat-templated
//                            prompt is given as the ids of tinyemo's fixture);
//                            text ids are decoded with llama_decode, the image
//                            chunk as mtmd_helper_eval_chunk_single does;
//   text:...                 a chat-templated prompt holding mtmd's media marker
//                            (<__media__>), run through mtmd_tokenize and
//                            mtmd_helper_eval_chunks, as llama-mtmd-cli does.
// IMAGE is either
//   file:PATH                an image file, read by mtmd_helper_bitmap_init_from_file
//                            and preprocessed by mtmd (its resize / normalise);
//   pixels:PATH:N            raw little-endian F32 pixels [3, N, N] (planar,
//                            already normalised): the chunk comes from
//                            mtmd_tokenize on an N x N placeholder bitmap, its
//                            embeddings from llama.cpp's clip_image_encode on
//                            these pixels (as bench/peers/mtmd_embeddings.cpp),
//                            decoded with mtmd_helper_decode_image_chunk, so
//                            mtmd's own preprocessing is bypassed.
// LOGITS_OUT gets the logits of the first generated step (F32 [vocab]).
//
// LLAMA_BINS: the folder of the prebuilt ggml CPU backends (loaded by path).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "clip-impl.h"
#include "clip.h"
#include "ggml-backend.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "mtmd_generate: %s\n", message.c_str());
  return 1;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool decode_ids(llama_context* ctx, const std::vector<llama_token>& ids, llama_pos* n_past, bool logits_last) {
  if (ids.empty()) return true;
  llama_batch batch = llama_batch_init(static_cast<int32_t>(ids.size()), 0, 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.token[i] = ids[i];
    batch.pos[i] = *n_past + static_cast<llama_pos>(i);
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = logits_last && i + 1 == ids.size();
  }
  batch.n_tokens = static_cast<int32_t>(ids.size());
  const bool ok = llama_decode(ctx, batch) == 0;
  llama_batch_free(batch);
  *n_past += static_cast<llama_pos>(ids.size());
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::fprintf(stderr, "usage: %s LM.gguf MMPROJ.gguf N_PREDICT ids:A,B,-200,...|text:PROMPT "
                         "file:IMAGE|pixels:PATH:N [LOGITS_OUT.f32]\n", argv[0]);
    return 2;
  }
  if (const char* bins = std::getenv("LLAMA_BINS")) ggml_backend_load_all_from_path(bins);
  const std::string lm_path = argv[1], mmproj_path = argv[2], prompt = argv[4], image = argv[5];
  const int n_predict = std::atoi(argv[3]);
  if (n_predict <= 0) return fail("N_PREDICT must be positive");
  const bool prompt_is_ids = prompt.rfind("ids:", 0) == 0;
  if (!prompt_is_ids && prompt.rfind("text:", 0) != 0) return fail("PROMPT must start with ids: or text:");
  const bool image_is_pixels = image.rfind("pixels:", 0) == 0;
  if (!image_is_pixels && image.rfind("file:", 0) != 0) return fail("IMAGE must start with file: or pixels:");

  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(lm_path.c_str(), mp);
  if (model == nullptr) return fail(lm_path + ": llama_model_load_from_file failed");
  const llama_vocab* vocab = llama_model_get_vocab(model);

  mtmd_context_params mparams = mtmd_context_params_default();
  mparams.use_gpu = false;
  mparams.print_timings = false;
  mparams.warmup = false;
  mtmd_context* mctx = mtmd_init_from_file(mmproj_path.c_str(), model, mparams);
  if (mctx == nullptr) return fail(mmproj_path + ": mtmd_init_from_file failed");
  if (!mtmd_support_vision(mctx)) return fail(mmproj_path + ": no vision encoder");

  // The bitmap: the image file through mtmd's helper, or a placeholder of the pixels' size.
  std::vector<float> pixels;
  int n = 0;
  mtmd_bitmap* bitmap = nullptr;
  if (image_is_pixels) {
    const std::string spec = image.substr(7);
    const size_t colon = spec.rfind(':');
    if (colon == std::string::npos) return fail("pixels:PATH:N needs N");
    n = std::atoi(spec.c_str() + colon + 1);
    if (n <= 0) return fail("pixels:PATH:N: N must be positive");
    pixels.resize(static_cast<size_t>(3) * n * n);
    std::ifstream in(spec.substr(0, colon), std::ios::binary);
    in.read(reinterpret_cast<char*>(pixels.data()), static_cast<std::streamsize>(pixels.size() * sizeof(float)));
    if (!in || in.peek() != EOF) return fail(spec.substr(0, colon) + ": expected exactly 3 x N x N floats");
    std::vector<unsigned char> rgb(static_cast<size_t>(3) * n * n, 128);
    bitmap = mtmd_bitmap_init(static_cast<uint32_t>(n), static_cast<uint32_t>(n), rgb.data());
  } else {
    bitmap = mtmd_helper_bitmap_init_from_file(mctx, image.substr(5).c_str(), false, mtmd_helper_init_opt_default()).bitmap;
    if (bitmap == nullptr) return fail(image.substr(5) + ": mtmd_helper_bitmap_init_from_file failed");
  }

  // Text before / after the image (ids) or the whole templated prompt (text).
  std::vector<llama_token> before, after;
  std::string text = mtmd_default_marker();
  if (prompt_is_ids) {
    bool seen_image = false;
    const char* p = prompt.c_str() + 4;
    while (*p != '\0') {
      char* end = nullptr;
      const long id = std::strtol(p, &end, 10);
      if (end == p) return fail("ids: expected comma-separated integers");
      if (id == -200) {
        if (seen_image) return fail("ids: one image (-200) expected");
        seen_image = true;
      } else {
        if (id < 0 || id >= llama_vocab_n_tokens(vocab)) return fail("ids: id out of the vocabulary");
        (seen_image ? after : before).push_back(static_cast<llama_token>(id));
      }
      p = *end == ',' ? end + 1 : end;
    }
    if (!seen_image) return fail("ids: no image (-200)");
  } else {
    // libllama aborts (GGML_ASSERT) when asked to tokenize with no vocabulary.
    if (llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_NONE) return fail(lm_path + ": no vocabulary; give the prompt as ids:");
    text = prompt.substr(5);
  }

  mtmd_input_text input{text.c_str(), text.size(), /*add_special=*/!prompt_is_ids, /*parse_special=*/true};
  mtmd_input_chunks* chunks = mtmd_input_chunks_init();
  const mtmd_bitmap* bitmaps[] = {bitmap};
  if (const int32_t r = mtmd_tokenize(mctx, chunks, &input, bitmaps, 1); r != 0) {
    return fail("mtmd_tokenize failed (" + std::to_string(r) + ")");
  }

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 4096;
  cp.n_batch = 4096;
  cp.n_ubatch = 4096;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) return fail("llama_init_from_model failed");

  // The pixels' embeddings, computed by llama.cpp's clip encoder on their own context.
  std::vector<float> embd;
  if (image_is_pixels) {
    clip_context_params params{};
    params.use_gpu = false;
    params.flash_attn_type = CLIP_FLASH_ATTN_TYPE_DISABLED;
    params.image_min_tokens = -1;
    params.image_max_tokens = -1;
    params.warmup = false;
    const clip_init_result r = clip_init(mmproj_path.c_str(), params);
    if (r.ctx_v == nullptr) return fail(mmproj_path + ": clip_init failed");
    clip_image_f32 img;  // interleaved RGB; clip.cpp makes it planar for the graph
    img.set_size({n, n}, false, false);
    std::vector<float> interleaved(pixels.size());
    const size_t hw = static_cast<size_t>(n) * n;
    for (size_t i = 0; i < hw; ++i) {
      for (size_t c = 0; c < 3; ++c) interleaved[3 * i + c] = pixels[c * hw + i];
    }
    img.cpy_buf(interleaved);
    embd.resize(static_cast<size_t>(clip_n_output_tokens(r.ctx_v, &img)) * clip_n_mmproj_embd(r.ctx_v));
    if (!clip_image_encode(r.ctx_v, 4, &img, embd)) return fail("clip_image_encode failed");
    clip_free(r.ctx_v);
  }

  llama_pos n_past = 0;
  size_t image_tokens = 0;
  if (prompt_is_ids) {
    if (!decode_ids(ctx, before, &n_past, false)) return fail("llama_decode failed (text before the image)");
  }
  for (size_t i = 0; i < mtmd_input_chunks_size(chunks); ++i) {
    const mtmd_input_chunk* chunk = mtmd_input_chunks_get(chunks, i);
    const bool last = i + 1 == mtmd_input_chunks_size(chunks) && (!prompt_is_ids || after.empty());
    if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_IMAGE) {
      image_tokens = mtmd_input_chunk_get_n_tokens(chunk);
      if (image_is_pixels) {
        if (embd.size() != image_tokens * static_cast<size_t>(llama_model_n_embd_inp(model))) {
          return fail("the pixels' embeddings do not fill the image chunk (" + std::to_string(embd.size()) +
                      " floats for " + std::to_string(image_tokens) + " tokens)");
        }
        llama_pos next = 0;
        if (mtmd_helper_decode_image_chunk(mctx, ctx, chunk, embd.data(), n_past, 0, cp.n_batch, &next, nullptr,
                                           nullptr) != 0) {
          return fail("mtmd_helper_decode_image_chunk failed");
        }
        n_past = next;
        continue;
      }
    } else if (prompt_is_ids && mtmd_input_chunk_get_n_tokens(chunk) != 0) {
      // The marker alone may give the projector's begin / end-of-image tokens; llava has none.
      return fail("mtmd_tokenize gave text tokens around the image; give the prompt as text:");
    }
    llama_pos next = 0;
    if (mtmd_helper_eval_chunk_single(mctx, ctx, chunk, n_past, 0, cp.n_batch, last, &next) != 0) {
      return fail("mtmd_helper_eval_chunk_single failed");
    }
    n_past = next;
  }
  if (prompt_is_ids && !decode_ids(ctx, after, &n_past, true)) return fail("llama_decode failed (text after the image)");

  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  if (argc == 7) {
    std::ofstream(argv[6], std::ios::binary)
        .write(reinterpret_cast<const char*>(llama_get_logits_ith(ctx, -1)),
               static_cast<std::streamsize>(n_vocab * sizeof(float)));
  }

  llama_sampler* sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(sampler, llama_sampler_init_greedy());
  std::vector<llama_token> generated;
  std::string generated_text;
  const bool has_vocab = llama_vocab_type(vocab) != LLAMA_VOCAB_TYPE_NONE;
  for (int i = 0; i < n_predict; ++i) {
    llama_token id = llama_sampler_sample(sampler, ctx, -1);
    llama_sampler_accept(sampler, id);
    generated.push_back(id);
    if (has_vocab) {
      char piece[256];
      const int len = llama_token_to_piece(vocab, id, piece, sizeof piece, 0, true);
      if (len > 0) generated_text.append(piece, static_cast<size_t>(len));
    }
    if (i + 1 == n_predict) break;
    llama_batch batch = llama_batch_get_one(&id, 1);
    if (llama_decode(ctx, batch) != 0) return fail("llama_decode failed while generating");
    ++n_past;
  }

  std::string ids_json;
  for (size_t i = 0; i < generated.size(); ++i) ids_json += (i ? "," : "") + std::to_string(generated[i]);
  std::printf("{\"ids\": [%s], \"text\": %s, \"image_tokens\": %zu, \"prompt_positions\": %d, \"image_input\": \"%s\"}\n",
              ids_json.c_str(), has_vocab ? json_string(generated_text).c_str() : "null", image_tokens,
              static_cast<int>(n_past - (static_cast<llama_pos>(generated.size()) - 1)),
              image_is_pixels ? "pixels" : "file");

  llama_sampler_free(sampler);
  mtmd_input_chunks_free(chunks);
  mtmd_bitmap_free(bitmap);
  llama_free(ctx);
  mtmd_free(mctx);
  llama_model_free(model);
  return 0;
}
