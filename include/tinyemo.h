/*
 * tinyemo.h: the public C API of tinyemo, visual emotion classification and
 * emotional reasoning (TinyEmo, arXiv 2410.07062) natively on CPU.
 *
 * What a program holds are opaque handles, each created by a *_load / *_new
 * function and released by its *_free:
 *   te_image      a decoded image (JPEG, PNG, WebP, or pixels the caller has)
 *   te_clip       a CLIP vision tower (Hugging Face or OpenAI checkpoints)
 *   te_clip_text  CLIP's text tower: text embeddings and zero-shot labels
 *   te_projector  a Metric Projector with its label anchors (the emotions)
 *   te_lm         a decoder LM with its tokenizer (LLaMA, Phi, OpenELM, ...)
 *   te_session    a sequence being run through an LM: its KV cache lives here,
 *                 so a chat or a server slot keeps it across calls
 *   te_mm         a multimodal reasoning model (TinyLLaVA / TinyEmo layout),
 *                 with te_mm_session (its sequences) and te_reasoner (TinyEmo's
 *                 label + explanation pipeline)
 *
 * Conventions:
 *   - Every function that can fail returns a te_status; on failure
 *     te_last_error() says why in words that name the file and field involved
 *     (the same text the tinyemo CLI prints). It is per thread and stays valid
 *     until the next failing call on that thread.
 *   - Outputs go to caller-owned buffers with their capacity; functions that
 *     produce a variable amount (tokens, text) report the amount needed and
 *     return TE_ERROR_BUFFER_TOO_SMALL when it does not fit (call again with a
 *     larger buffer, or with NULL and 0 to ask for the size).
 *   - Each handle runs on its own pool of n_threads threads (the caller's
 *     thread is one of them). A handle is used by one thread at a time; two
 *     handles may be used from two threads at once. A session uses its LM's
 *     threads, so sessions of one LM take turns.
 *   - A model handle outlives what is made from it: a te_lm its sessions, a
 *     te_mm its sessions and reasoners.
 *   - No C++ exception crosses this interface; nothing is downloaded; files
 *     are read from local paths only, and loading never executes code.
 *
 * Stable: everything in this header within a major version (TE_API_VERSION
 * changes when a declaration does). See docs/api.md.
 */
#ifndef TINYEMO_H
#define TINYEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define TE_API
#else
#define TE_API __attribute__((visibility("default")))
#endif

#define TE_VERSION_MAJOR 0
#define TE_VERSION_MINOR 2
#define TE_VERSION_PATCH 0
#define TE_API_VERSION 6

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

typedef enum te_status {
  TE_OK = 0,
  TE_ERROR_INVALID_ARGUMENT = 1, /* a null pointer, a size that does not match, a value out of range */
  TE_ERROR_FAILED = 2,           /* the operation failed: a file missing or malformed, parts that disagree, ... */
  TE_ERROR_OUT_OF_MEMORY = 3,
  TE_ERROR_BUFFER_TOO_SMALL = 4, /* the output did not fit; the size needed was reported */
  TE_ERROR_CANCELLED = 5,        /* a callback asked to stop */
  TE_ERROR_CONTEXT_FULL = 6,     /* the sequence would not fit in the LM's context */
  TE_ERROR_INTERNAL = 7,         /* a bug in tinyemo: please report it with te_last_error() */
  TE_ERROR_TOO_LARGE = 8         /* the input exceeds a limit the caller set (an image over max_pixels) */
} te_status;

/* "TE_OK", "TE_ERROR_FAILED", ... */
TE_API const char *te_status_name(te_status status);
/* Why the last failing call on this thread failed ("" when none has). */
TE_API const char *te_last_error(void);
/* The library's version, "MAJOR.MINOR.PATCH". */
TE_API const char *te_version(void);
TE_API int te_api_version(void);

typedef enum te_log_level { TE_LOG_DEBUG = 0, TE_LOG_INFO = 1, TE_LOG_WARN = 2, TE_LOG_ERROR = 3 } te_log_level;
/* Receives the library's messages (one line each, no newline). */
typedef void (*te_log_callback)(te_log_level level, const char *message, void *user_data);
/* Sends messages at `min_level` and above to `callback` (NULL: standard error,
 * the default, at TE_LOG_WARN and above). Process-wide; not thread-safe
 * against concurrent calls to itself. */
TE_API void te_log_set(te_log_callback callback, void *user_data, te_log_level min_level);

/* ---------------------------------------------------------------- images */

typedef struct te_image te_image;

/* The default for max_pixels arguments: images declaring more pixels are
 * refused before they are decoded. */
TE_API int64_t te_image_default_max_pixels(void);

/* Decodes a JPEG, PNG or WebP file (by content, not by name); max_pixels 0
 * takes the default. An image declaring more pixels gives TE_ERROR_TOO_LARGE. */
TE_API te_status te_image_load_file(const char *path, int64_t max_pixels, te_image **out);
/* The same from encoded bytes in memory (e.g. an upload). */
TE_API te_status te_image_load_memory(const void *data, size_t size, int64_t max_pixels, te_image **out);
/* From 8-bit pixels: channels 1 (grey), 3 (RGB) or 4 (RGBA), rows `stride`
 * bytes apart (0: width * channels). The pixels are copied. */
TE_API te_status te_image_from_pixels(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                                      size_t stride, te_image **out);
TE_API int32_t te_image_width(const te_image *image);
TE_API int32_t te_image_height(const te_image *image);
TE_API void te_image_free(te_image *image);

/* ---------------------------------------------------------------- CLIP */

typedef struct te_clip te_clip;

typedef struct te_clip_params {
  int32_t n_threads;  /* threads of this handle; 0: one per core */
  int32_t batch;      /* images per forward pass (default 8) */
  int64_t max_pixels; /* te_classify_files / te_features_extract: larger images are refused (0: default) */
  const char *compute; /* the tower's products: NULL or "auto" (f32 weights packed once at load, 16-bit ones
                          as stored), "f32", "bf16" (AVX512-BF16 CPUs: faster, ~1e-3 relative on the
                          embeddings; refused elsewhere) or "stored" (docs/clip.md) */
} te_clip_params;

TE_API te_clip_params te_clip_default_params(void);
/* `path`: a model folder (config.json + model.safetensors, a sharded index or
 * pytorch_model.bin) or a weights file (.safetensors, .pt, .bin). */
TE_API te_status te_clip_load(const char *path, const te_clip_params *params, te_clip **out);
TE_API void te_clip_free(te_clip *clip);
/* Width of the image embeddings (the visual projection's output; 0 when the
 * tower has no projection and can only give hidden states). */
TE_API int32_t te_clip_embedding_dim(const te_clip *clip);
/* Side of the square input the tower takes, in pixels (224, 336, ...). */
TE_API int32_t te_clip_image_size(const te_clip *clip);
/* What was loaded, e.g. "HF safetensors (F32) model.safetensors + config.json". */
TE_API const char *te_clip_description(const te_clip *clip);
/* CLIP's reference preprocessing, then the tower: `embeddings` receives
 * n_images rows of te_clip_embedding_dim floats (n_floats must be at least that). */
TE_API te_status te_clip_embed(te_clip *clip, const te_image *const *images, size_t n_images, float *embeddings,
                               size_t n_floats);

/* ---------------------------------------------------------------- CLIP text tower */

typedef struct te_clip_text te_clip_text;

/* CLIP's text tower with its BPE tokenizer, for text embeddings in the image
 * embeddings' space and zero-shot classification. `path`: a whole CLIP model
 * (Hugging Face CLIPModel folder or weights file, or an OpenAI state dict .pt).
 * `vocab`: the BPE merges (OpenAI's bpe_simple_vocab_16e6.txt.gz or Hugging
 * Face's merges.txt); NULL looks for either beside the model. Of `params`
 * only n_threads is read (NULL: defaults). */
TE_API te_status te_clip_text_load(const char *path, const char *vocab, const te_clip_params *params,
                                   te_clip_text **out);
TE_API void te_clip_text_free(te_clip_text *text);
/* Width of the text embeddings (the text projection's output; equals the
 * image embeddings' width of the same CLIP model). */
TE_API int32_t te_clip_text_embedding_dim(const te_clip_text *text);
/* Tokens the tower reads per text (77 for CLIP): a longer text is cut, with
 * the end token kept last (clip.tokenize(truncate=True)). */
TE_API int32_t te_clip_text_context_length(const te_clip_text *text);
/* exp(logit_scale), CLIP's multiplier of image-text cosines; 0 when the
 * checkpoint has no logit_scale (then zero-shot classification is refused). */
TE_API float te_clip_text_logit_scale(const te_clip_text *text);
TE_API const char *te_clip_text_description(const te_clip_text *text);
/* Embeds n_texts UTF-8 strings: `embeddings` receives n_texts rows of
 * te_clip_text_embedding_dim floats, unnormalised (what Hugging Face's
 * get_text_features and OpenAI's encode_text give). */
TE_API te_status te_clip_text_embed(te_clip_text *text, const char *const *texts, size_t n_texts, float *embeddings,
                                    size_t n_floats);
/* The default prompt of zero-shot classification; "{}" stands for the label. */
#define TE_ZERO_SHOT_DEFAULT_TEMPLATE "a photo evoking {}"
/* Zero-shot classification of n_rows image embeddings of `dim` floats
 * (te_clip_embed's rows from the same CLIP model) over n_labels distinct
 * labels, each read through `prompt_template` with every "{}" replaced by the
 * label (NULL: TE_ZERO_SHOT_DEFAULT_TEMPLATE). Cosines between the normalised
 * image and prompt embeddings; probabilities softmax(logit_scale * cosine),
 * CLIP's logits_per_image; predicted the highest cosine. Outputs are optional
 * and laid out as te_projector_classify's. */
TE_API te_status te_zero_shot_classify(te_clip_text *text, const char *const *labels, size_t n_labels,
                                       const char *prompt_template, const float *image_embeddings, size_t n_rows,
                                       size_t dim, int32_t *predicted, float *probabilities, float *cosines,
                                       float *distances);

/* ---------------------------------------------------------------- projector */

typedef struct te_projector te_projector;

/* A projector file written by `tinyemo projector train` or `import`. */
TE_API te_status te_projector_load(const char *path, te_projector **out);
TE_API void te_projector_free(te_projector *projector);
/* Width of the features it takes (the CLIP embedding width it was trained on). */
TE_API int32_t te_projector_input_dim(const te_projector *projector);
/* Width of its output and of its label anchors. */
TE_API int32_t te_projector_output_dim(const te_projector *projector);
TE_API int32_t te_projector_n_labels(const te_projector *projector);
/* Label i (NULL when out of range); valid until the labels change. */
TE_API const char *te_projector_label(const te_projector *projector, int32_t i);
/* Keeps only these labels, in this order (each must be one of the model's). */
TE_API te_status te_projector_select_labels(te_projector *projector, const char *const *labels, size_t n_labels);
/* Replaces the label set (open vocabulary): `anchors` holds n_labels rows of
 * te_projector_output_dim floats. Labels must be distinct and values finite. */
TE_API te_status te_projector_set_anchors(te_projector *projector, const char *const *labels, size_t n_labels,
                                          const float *anchors, size_t n_floats);
/* The same from a safetensors file (`anchors` [L, H], metadata `labels`). */
TE_API te_status te_projector_load_anchors(te_projector *projector, const char *path);
/* Copies the current label anchors: te_projector_n_labels rows of
 * te_projector_output_dim floats, in label order (what te_projector_set_anchors
 * takes back, e.g. to switch between label sets). *n_floats receives the count. */
TE_API te_status te_projector_anchors(const te_projector *projector, float *anchors, size_t capacity,
                                      size_t *n_floats);

/* Scores of one image (or feature row) against every label. */
typedef struct te_classification {
  int32_t predicted;           /* index of the nearest label */
  int32_t n_labels;
  const float *probabilities;  /* [n_labels]: softmax(cosine / temperature) */
  const float *cosines;        /* [n_labels]: cosine of the projected features and each anchor */
  const float *distances;      /* [n_labels]: L2 distance between the normalised vectors */
} te_classification;

/* Classifies n_rows feature rows of `dim` floats. Each output is optional
 * (NULL) and holds n_rows (predicted) or n_rows * n_labels (the others) values. */
TE_API te_status te_projector_classify(const te_projector *projector, const float *features, size_t n_rows,
                                       size_t dim, int32_t *predicted, float *probabilities, float *cosines,
                                       float *distances);

/* ---------------------------------------------------------------- images to emotions */

/* Called once per image, in input order: `result` (valid during the call) on
 * success, else NULL and `error` (naming the file). Return false to stop. */
typedef bool (*te_classify_callback)(size_t index, const te_classification *result, const char *error,
                                     void *user_data);

/* Image files -> CLIP embeddings -> projector -> label scores, decoding in
 * parallel and embedding in batches. An unreadable image is reported through
 * the callback and the others go on; *n_failed (optional) counts them. */
TE_API te_status te_classify_files(te_clip *clip, const te_projector *projector, const char *const *paths,
                                   size_t n_paths, te_classify_callback callback, void *user_data, size_t *n_failed);
/* The same for decoded images. */
TE_API te_status te_classify_images(te_clip *clip, const te_projector *projector, const te_image *const *images,
                                    size_t n_images, te_classify_callback callback, void *user_data);

/* ---------------------------------------------------------------- feature extraction */

typedef enum te_features_format {
  TE_FEATURES_AUTO = 0,      /* a shard when `out` ends in .safetensors, else a folder */
  TE_FEATURES_FOLDER = 1,    /* TinyEmo's layout: <out>/<label>/<stem>.pt, fp16 [D] each */
  TE_FEATURES_SHARD = 2      /* one safetensors shard: features [N, D], label_ids, labels, files */
} te_features_format;

typedef struct te_features_progress {
  size_t total;     /* images found */
  size_t done;      /* embedded in this run */
  size_t existing;  /* already in the output (resumed) */
  size_t failed;    /* unreadable, or passed over by the folder walk (a FIFO, a dangling link) */
  const char *error; /* the last failure's message, or NULL */
} te_features_progress;

/* Called once before the first image and after every image; return false to
 * stop (what is written is kept). */
typedef bool (*te_features_callback)(const te_features_progress *progress, void *user_data);

/* CLIP embeddings of every image under `images_dir` (<label>/<file>, any
 * depth) into `out`. Resumable: images already in the output are skipped;
 * every write is atomic. `summary` (optional) receives the final counts. */
TE_API te_status te_features_extract(te_clip *clip, const char *images_dir, const char *out,
                                     te_features_format format, te_features_callback callback, void *user_data,
                                     te_features_progress *summary);

/* ---------------------------------------------------------------- language models */

typedef struct te_lm te_lm;

typedef struct te_lm_params {
  int32_t n_threads;       /* threads of this handle; 0: one per core */
  const char *weight_type; /* NULL: as stored; or "f32", "f16", "bf16", "q8_0", "q4_0" */
  const char *tokenizer;   /* NULL: the one in the model folder or .gguf; or a tokenizer file/folder */
  const char *compute;     /* prefill's products: NULL or "f32", or "bf16" (AVX512-BF16 CPUs: faster, ~2e-3
                              relative per product; refused elsewhere; decode unchanged; docs/lm.md) */
} te_lm_params;

TE_API te_lm_params te_lm_default_params(void);
/* `path`: a Hugging Face model folder or a .gguf file written by tinyemo. A
 * model without tokenizer files loads; te_lm_tokenize then fails. */
TE_API te_status te_lm_load(const char *path, const te_lm_params *params, te_lm **out);
TE_API void te_lm_free(te_lm *lm);
TE_API int32_t te_lm_n_vocab(const te_lm *lm);
TE_API int32_t te_lm_n_ctx(const te_lm *lm);   /* context length in positions */
TE_API int32_t te_lm_n_embd(const te_lm *lm);  /* hidden size: width of embedding rows */
TE_API int32_t te_lm_token_bos(const te_lm *lm); /* -1 when none */
TE_API int32_t te_lm_token_eos(const te_lm *lm); /* -1 when none */
TE_API bool te_lm_has_tokenizer(const te_lm *lm);
/* "llama", "phi", "openelm", ... */
TE_API const char *te_lm_architecture(const te_lm *lm);

/* Text (text_len bytes) to token ids, with BOS where the tokenizer adds one
 * when add_special. *n_tokens receives the count needed. */
TE_API te_status te_lm_tokenize(const te_lm *lm, const char *text, size_t text_len, bool add_special,
                                int32_t *tokens, size_t capacity, size_t *n_tokens);
/* Token ids to text (UTF-8, NUL-terminated when there is room for it);
 * *length receives the byte count needed without the NUL. */
TE_API te_status te_lm_detokenize(const te_lm *lm, const int32_t *tokens, size_t n_tokens, bool skip_special,
                                  char *text, size_t capacity, size_t *length);

/* TinyEmo's label anchors (open vocabulary): for each label, the mean of the
 * LM's input-embedding rows of the tokens of `grounding` with every "{label}"
 * replaced by the label (NULL: the label alone), BOS included where the
 * tokenizer adds one. `anchors` receives n_labels rows of te_lm_n_embd floats:
 * what te_projector_set_anchors takes for a projector trained on this LM's
 * anchors (`tinyemo projector anchors --anchors-lm` writes the same rows).
 * Needs the tokenizer; reads the LM's weights only (no session). */
TE_API te_status te_lm_label_anchors(const te_lm *lm, const char *const *labels, size_t n_labels,
                                     const char *grounding, float *anchors, size_t n_floats);

/* ---------------------------------------------------------------- sessions */

typedef struct te_session te_session;

TE_API te_status te_session_new(te_lm *lm, te_session **out);
TE_API void te_session_free(te_session *session);
/* Positions held (prompt and generated tokens evaluated so far). */
TE_API size_t te_session_length(const te_session *session);
/* Forgets every position from `length` on (a chat keeps its system prompt). */
TE_API te_status te_session_truncate(te_session *session, size_t length);
/* Keeps the longest prefix of the session that equals tokens[0..k) and
 * forgets the rest, so that a request repeating an earlier conversation only
 * computes what is new; *kept = k. At least the last token is left to
 * evaluate (k < n_tokens), since its logits are needed. */
TE_API te_status te_session_keep_prefix(te_session *session, const int32_t *tokens, size_t n_tokens, size_t *kept);
/* Appends tokens; `logits` (optional, n_floats >= n_vocab) receives the last
 * position's logits. */
TE_API te_status te_session_eval(te_session *session, const int32_t *tokens, size_t n_tokens, float *logits,
                                 size_t n_floats);
/* Appends embedding rows (n_rows x dim floats, dim = te_lm_n_embd): the
 * path image features take into the LM. */
TE_API te_status te_session_eval_embeddings(te_session *session, const float *rows, size_t n_rows, size_t dim,
                                            float *logits, size_t n_floats);

/* Called after each generated token with the text it completes (may be empty
 * while a character or a possible stop string is incomplete; the pieces
 * concatenate to the whole text). Return false to stop. */
typedef bool (*te_token_callback)(int32_t token, const char *text, size_t text_len, void *user_data);

typedef struct te_generate_params {
  int32_t max_new_tokens;   /* default 256; generation also ends at the context's end */
  float temperature;        /* 0: greedy (the default) */
  float top_p;              /* nucleus sampling (1: off) */
  int32_t top_k;            /* sample among the k most likely (0: off) */
  float repetition_penalty; /* 1: off */
  uint64_t seed;            /* sampling is deterministic for a seed */
  const char *const *stop;  /* strings that end generation (the text is cut before them) */
  size_t n_stop;
  bool ignore_eos;
  te_token_callback on_token;
  void *user_data;
} te_generate_params;

typedef enum te_finish_reason {
  TE_FINISH_LENGTH = 0,   /* max_new_tokens, or the context is full */
  TE_FINISH_EOS = 1,      /* an end-of-sequence token */
  TE_FINISH_STOP = 2,     /* a stop string */
  TE_FINISH_CALLBACK = 3  /* the callback returned false */
} te_finish_reason;

typedef struct te_generate_result {
  te_finish_reason finish_reason;
  int32_t n_prompt;     /* prompt tokens evaluated by this call */
  int32_t n_generated;  /* tokens generated */
  double prompt_seconds;
  double generate_seconds;
} te_generate_result;

TE_API te_generate_params te_generate_default_params(void);
/* Appends `prompt` (at least one token: generation starts from its last
 * position's logits) and generates. Afterwards the session holds the prompt
 * and every generated token but the last, which was sampled and not yet
 * evaluated: the next call's prompt starts with it (te_session_keep_prefix
 * finds this by itself when given the whole conversation). */
TE_API te_status te_session_generate(te_session *session, const int32_t *prompt, size_t n_prompt,
                                     const te_generate_params *params, te_generate_result *result);

/* ---------------------------------------------------------------- multimodal reasoning */

/* A multimodal reasoning model in the TinyLLaVA layout (TinyLLaVA Factory's
 * folders, TinyEmo's): a vision tower (CLIP or SigLIP), a connector and a
 * language model, with the conversation template its config names. */
typedef struct te_mm te_mm;

typedef struct te_mm_params {
  int32_t n_threads;          /* threads of this handle; 0: one per core */
  const char *weight_type;    /* the LM's weights: NULL as stored, or "f32", "f16", "bf16", "q8_0", "q4_0" */
  const char *language_model; /* NULL, or a model folder / .gguf replacing the checkpoint's language_model.* */
  const char *conversation;   /* NULL: the config's conv_version; or "llama", "phi", "gemma", "qwen2_base", ... */
  const char *mmproj;         /* NULL, or llama.cpp's mmproj .gguf: then `path` is the LM .gguf of the pair
                                 (docs/reasoning.md); the template defaults to the LM type's */
  const char *compute;        /* the LM's prefill products: NULL or "f32", or "bf16" (as te_lm_params.compute) */
} te_mm_params;

TE_API te_mm_params te_mm_default_params(void);
TE_API te_status te_mm_load(const char *path, const te_mm_params *params, te_mm **out);
TE_API void te_mm_free(te_mm *mm);
/* What was loaded (towers, connector, LM, template). */
TE_API const char *te_mm_description(const te_mm *mm);
/* The conversation template's name ("llama", "phi", ...). */
TE_API const char *te_mm_conversation(const te_mm *mm);
/* run_tiny_llava.py's defaults: temperature 0.2 with top-k 50, 512 new tokens. */
TE_API te_generate_params te_mm_default_generate_params(void);

/* A multimodal sequence and its KV cache (one per chat or server slot). */
typedef struct te_mm_session te_mm_session;
TE_API te_status te_mm_session_new(te_mm *mm, te_mm_session **out);
TE_API void te_mm_session_free(te_mm_session *session);
/* Positions the session holds. */
TE_API size_t te_mm_session_length(const te_mm_session *session);

/* One turn of a conversation: the user's question (may hold "<image>" markers)
 * and the assistant's answer (NULL for the last turn, the one to answer). */
typedef struct te_mm_turn {
  const char *question;
  const char *answer;
} te_mm_turn;

/* Answers the last turn of a conversation in the model's template (the
 * system prompt it names included). `images` go, in order, where the
 * questions' "<image>" markers are; the counts must agree (TinyLLaVA puts an
 * image in front of its question: "<image>\nWhat is shown?"). The session
 * keeps what it computed: a later call whose conversation starts the same way
 * (a chat's next turn, the system prompt every request shares) computes only
 * what is new. The text streams through params->on_token (NULL params: the
 * model's defaults); generation stops at the template's end-of-turn text. */
TE_API te_status te_mm_generate(te_mm_session *session, const te_mm_turn *turns, size_t n_turns,
                                const te_image *const *images, size_t n_images, const te_generate_params *params,
                                te_generate_result *result);

/* TinyEmo's emotional reasoning: the Metric Projector labels the image, and
 * the multimodal LM explains it with that label in its prompt. */
typedef struct te_reasoner te_reasoner;

/* `projector` is copied. `projector_clip` (copied; NULL when the projector was
 * trained on the model's own tower, as TinyEmo-700M's) is the CLIP whose image
 * embeddings the projector takes; when it is the same tower, one forward
 * serves both heads. */
TE_API te_status te_reasoner_new(te_mm *mm, const te_projector *projector, const te_clip *projector_clip,
                                 te_reasoner **out);
TE_API void te_reasoner_free(te_reasoner *reasoner);
/* Candidate labels: a subset of the projector's, or new ones (open
 * vocabulary: anchored in the LM's input embeddings). */
TE_API te_status te_reasoner_set_labels(te_reasoner *reasoner, const char *const *labels, size_t n_labels);

typedef struct te_reasoning {
  const char *label;               /* the projector's label */
  int32_t n_labels;
  const char *const *labels;       /* [n_labels] */
  const float *probabilities;      /* [n_labels]: the projector's scores */
  const char *reasoning;           /* the explanation */
  const char *lm_label;            /* the label the LM names ("" when none) */
  bool agreement;                  /* lm_label is label */
  const char *text;                /* the whole answer */
  int32_t generated_tokens;
  double image_encode_seconds, prefill_seconds, decode_seconds, time_to_first_token_seconds, total_seconds;
} te_reasoning;

/* One image; `out` stays valid until the next te_reason on this reasoner.
 * The explanation streams through params->on_token (NULL params: the model's defaults). */
TE_API te_status te_reason(te_reasoner *reasoner, const te_image *image, const te_generate_params *params,
                           te_reasoning *out);

#ifdef __cplusplus
}
#endif

#endif /* TINYEMO_H */
