/* Exercises every entry point of include/tinyemo.h from C, against
 * libtinyemo.so, on the fixtures: each call's result and each error path (bad
 * file, wrong sizes, null pointers) with its status and message.
 *
 * usage: c_api_test CLIP_DIR PROJECTOR IMAGE_DIR LM_DIR TOKENIZER WORK_DIR MM_DIR
 *   IMAGE_DIR holds rocket.jpg, chelsea.png, camera.png; WORK_DIR is writable;
 *   MM_DIR is a TinyLLaVA-layout model with a tokenizer.
 * Prints one line per failed check and exits 1 when any failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyemo.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                      \
  do {                                                                   \
    ++g_checks;                                                          \
    if (!(cond)) {                                                       \
      ++g_failures;                                                      \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                    \
  } while (0)

/* A status and, for failures, that te_last_error() mentions `needle` (NULL: any message). */
static void check_status(int line, const char *call, te_status got, te_status want, const char *needle) {
  ++g_checks;
  if (got != want) {
    ++g_failures;
    fprintf(stderr, "%s:%d: %s gave %s (want %s): %s\n", __FILE__, line, call, te_status_name(got),
            te_status_name(want), te_last_error());
  } else if (needle != NULL && strstr(te_last_error(), needle) == NULL) {
    ++g_failures;
    fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__, line, call, te_last_error(), needle);
  }
}
#define CHECK_STATUS(call, want, needle) check_status(__LINE__, #call, (call), (want), (needle))

static char g_path[4096];
static const char *join(const char *dir, const char *name) {
  snprintf(g_path, sizeof g_path, "%s/%s", dir, name);
  return g_path;
}

/* ---- logging */
static int g_log_lines = 0;
static void count_log(te_log_level level, const char *message, void *user_data) {
  (void)level;
  (void)message;
  *(int *)user_data += 1;
}

/* ---- classification callbacks */
struct classify_seen {
  size_t calls, ok, failed;
  int predicted[8];
  float best_probability[8];
  size_t stop_after; /* 0: never */
};
static bool on_classified(size_t index, const te_classification *r, const char *error, void *user_data) {
  struct classify_seen *s = (struct classify_seen *)user_data;
  s->calls++;
  if (r == NULL) {
    CHECK(error != NULL && error[0] != '\0');
    s->failed++;
  } else {
    float sum = 0.0f;
    int32_t l;
    CHECK(error == NULL);
    CHECK(r->n_labels > 0 && r->predicted >= 0 && r->predicted < r->n_labels);
    for (l = 0; l < r->n_labels; ++l) sum += r->probabilities[l];
    CHECK(fabsf(sum - 1.0f) < 1e-4f);
    for (l = 0; l < r->n_labels; ++l) CHECK(r->cosines[l] <= r->cosines[r->predicted] + 1e-6f);
    CHECK(r->distances[r->predicted] >= 0.0f);
    if (index < 8) {
      s->predicted[index] = r->predicted;
      s->best_probability[index] = r->probabilities[r->predicted];
    }
    s->ok++;
  }
  return s->stop_after == 0 || s->calls < s->stop_after;
}

static bool on_features(const te_features_progress *p, void *user_data) {
  (void)p;
  *(int *)user_data += 1;
  return true;
}

/* ---- generation callback */
struct streamed {
  char text[4096];
  size_t length;
  int tokens;
  int stop_after; /* 0: never */
};
static bool on_token(int32_t token, const char *text, size_t len, void *user_data) {
  struct streamed *s = (struct streamed *)user_data;
  (void)token;
  if (s->length + len < sizeof s->text) {
    memcpy(s->text + s->length, text, len);
    s->length += len;
    s->text[s->length] = '\0';
  }
  s->tokens++;
  return s->stop_after == 0 || s->tokens < s->stop_after;
}

static void test_basics(void) {
  CHECK(strcmp(te_status_name(TE_OK), "TE_OK") == 0);
  CHECK(strcmp(te_status_name(TE_ERROR_CONTEXT_FULL), "TE_ERROR_CONTEXT_FULL") == 0);
  CHECK(strcmp(te_status_name(TE_ERROR_TOO_LARGE), "TE_ERROR_TOO_LARGE") == 0);
  CHECK(te_api_version() == TE_API_VERSION);
  {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TE_VERSION_MAJOR, TE_VERSION_MINOR, TE_VERSION_PATCH);
    CHECK(strcmp(te_version(), want) == 0);
  }
  CHECK(te_image_default_max_pixels() > 0);
}

static void test_images(const char *image_dir) {
  te_image *img = NULL;
  uint8_t pixels[2 * 3 * 4];
  memset(pixels, 128, sizeof pixels);
  CHECK_STATUS(te_image_load_file(join(image_dir, "rocket.jpg"), 0, &img), TE_OK, NULL);
  CHECK(img != NULL && te_image_width(img) > 0 && te_image_height(img) > 0);
  te_image_free(img);
  img = (te_image *)1;
  CHECK_STATUS(te_image_load_file(join(image_dir, "no-such.png"), 0, &img), TE_ERROR_FAILED, "no-such.png");
  CHECK(img == NULL);
  CHECK_STATUS(te_image_load_file(join(image_dir, "rocket.jpg"), 10, &img), TE_ERROR_TOO_LARGE, "pixels");
  CHECK_STATUS(te_image_load_file(NULL, 0, &img), TE_ERROR_INVALID_ARGUMENT, "path");
  CHECK_STATUS(te_image_load_file(join(image_dir, "rocket.jpg"), 0, NULL), TE_ERROR_INVALID_ARGUMENT, "out");
  CHECK_STATUS(te_image_load_file(join(image_dir, "rocket.jpg"), -1, &img), TE_ERROR_INVALID_ARGUMENT, "max_pixels");
  CHECK_STATUS(te_image_load_memory("not an image", 12, 0, &img), TE_ERROR_FAILED, "not a JPEG, PNG or WebP");
  CHECK_STATUS(te_image_load_memory(NULL, 5, 0, &img), TE_ERROR_INVALID_ARGUMENT, NULL);
  {
    FILE *f = fopen(join(image_dir, "chelsea.png"), "rb");
    static unsigned char bytes[1 << 20];
    size_t n = f ? fread(bytes, 1, sizeof bytes, f) : 0;
    if (f) fclose(f);
    CHECK(n > 0);
    CHECK_STATUS(te_image_load_memory(bytes, n, 0, &img), TE_OK, NULL);
    te_image_free(img);
  }
  CHECK_STATUS(te_image_from_pixels(pixels, 2, 4, 3, 0, &img), TE_OK, NULL);
  CHECK(te_image_width(img) == 2 && te_image_height(img) == 4);
  te_image_free(img);
  CHECK_STATUS(te_image_from_pixels(pixels, 2, 2, 2, 0, &img), TE_ERROR_INVALID_ARGUMENT, "channels");
  CHECK_STATUS(te_image_from_pixels(pixels, 4, 2, 3, 5, &img), TE_ERROR_INVALID_ARGUMENT, "stride");
  CHECK_STATUS(te_image_from_pixels(pixels, 0, 2, 3, 0, &img), TE_ERROR_INVALID_ARGUMENT, "width");
  CHECK(te_image_width(NULL) == 0);
  te_image_free(NULL);
}

static void test_vision(const char *clip_dir, const char *projector_path, const char *image_dir, const char *work) {
  te_clip *clip = NULL;
  te_projector *projector = NULL;
  te_clip_params params = te_clip_default_params();
  te_image *images[3] = {NULL, NULL, NULL};
  const char *names[3] = {"rocket.jpg", "chelsea.png", "camera.png"};
  char paths[4][4096];
  const char *path_list[4];
  float *embeddings;
  int32_t dim, n_labels, i;
  size_t failed = 99;
  struct classify_seen seen_files, seen_images, seen_stop;
  int32_t predicted[3];
  float *probabilities;

  params.n_threads = 2;
  params.batch = 2;
  CHECK_STATUS(te_clip_load(join(work, "missing-clip"), &params, &clip), TE_ERROR_FAILED, "missing-clip");
  CHECK(clip == NULL);
  params.batch = -1;
  CHECK_STATUS(te_clip_load(clip_dir, &params, &clip), TE_ERROR_INVALID_ARGUMENT, "batch");
  params.batch = 2;
  params.n_threads = -3;
  CHECK_STATUS(te_clip_load(clip_dir, &params, &clip), TE_ERROR_INVALID_ARGUMENT, "n_threads");
  params.n_threads = 2;
  CHECK_STATUS(te_clip_load(clip_dir, &params, &clip), TE_OK, NULL);
  dim = te_clip_embedding_dim(clip);
  CHECK(dim > 0);
  CHECK(te_clip_image_size(clip) > 0);
  CHECK(strlen(te_clip_description(clip)) > 0);
  CHECK(te_clip_embedding_dim(NULL) == 0);

  for (i = 0; i < 3; ++i) {
    CHECK_STATUS(te_image_load_file(join(image_dir, names[i]), 0, &images[i]), TE_OK, NULL);
    snprintf(paths[i], sizeof paths[i], "%s/%s", image_dir, names[i]);
    path_list[i] = paths[i];
  }
  embeddings = (float *)calloc((size_t)(3 * dim), sizeof(float));
  CHECK_STATUS(te_clip_embed(clip, (const te_image *const *)images, 3, embeddings, (size_t)(3 * dim)), TE_OK, NULL);
  CHECK(embeddings[0] != 0.0f || embeddings[1] != 0.0f);
  CHECK_STATUS(te_clip_embed(clip, (const te_image *const *)images, 3, embeddings, (size_t)(3 * dim - 1)),
               TE_ERROR_INVALID_ARGUMENT, "floats");
  CHECK_STATUS(te_clip_embed(NULL, (const te_image *const *)images, 3, embeddings, (size_t)(3 * dim)),
               TE_ERROR_INVALID_ARGUMENT, "clip");

  CHECK_STATUS(te_projector_load(join(work, "missing.safetensors"), &projector), TE_ERROR_FAILED, "missing");
  CHECK_STATUS(te_projector_load(NULL, &projector), TE_ERROR_INVALID_ARGUMENT, NULL);
  CHECK_STATUS(te_projector_load(projector_path, &projector), TE_OK, NULL);
  CHECK(te_projector_input_dim(projector) == dim);
  CHECK(te_projector_output_dim(projector) > 0);
  n_labels = te_projector_n_labels(projector);
  CHECK(n_labels >= 2);
  CHECK(te_projector_label(projector, 0) != NULL);
  CHECK(te_projector_label(projector, n_labels) == NULL);
  CHECK(te_projector_label(projector, -1) == NULL);

  /* The projector on the embeddings, and the pipeline on files and images, agree. */
  probabilities = (float *)calloc((size_t)(3 * n_labels), sizeof(float));
  CHECK_STATUS(te_projector_classify(projector, embeddings, 3, (size_t)dim, predicted, probabilities, NULL, NULL), TE_OK,
               NULL);
  CHECK_STATUS(te_projector_classify(projector, embeddings, 3, (size_t)dim + 1, predicted, NULL, NULL, NULL),
               TE_ERROR_INVALID_ARGUMENT, "values per row");

  snprintf(paths[3], sizeof paths[3], "%s/%s", work, "broken.png");
  {
    FILE *f = fopen(paths[3], "wb");
    if (f) {
      fputs("\x89PNG\r\n\x1a\n garbage", f);
      fclose(f);
    }
  }
  path_list[3] = paths[3];
  memset(&seen_files, 0, sizeof seen_files);
  CHECK_STATUS(te_classify_files(clip, projector, path_list, 4, on_classified, &seen_files, &failed), TE_OK, NULL);
  CHECK(seen_files.calls == 4 && seen_files.ok == 3 && seen_files.failed == 1 && failed == 1);
  memset(&seen_images, 0, sizeof seen_images);
  CHECK_STATUS(te_classify_images(clip, projector, (const te_image *const *)images, 3, on_classified, &seen_images),
               TE_OK, NULL);
  CHECK(seen_images.ok == 3);
  for (i = 0; i < 3; ++i) {
    CHECK(seen_files.predicted[i] == predicted[i]);
    CHECK(seen_images.predicted[i] == predicted[i]);
    CHECK(fabsf(seen_images.best_probability[i] - probabilities[i * n_labels + predicted[i]]) < 1e-5f);
  }
  memset(&seen_stop, 0, sizeof seen_stop);
  seen_stop.stop_after = 1;
  CHECK_STATUS(te_classify_images(clip, projector, (const te_image *const *)images, 3, on_classified, &seen_stop),
               TE_ERROR_CANCELLED, "callback");
  CHECK(seen_stop.calls == 1);
  CHECK_STATUS(te_classify_files(clip, projector, path_list, 4, NULL, NULL, NULL), TE_ERROR_INVALID_ARGUMENT,
               "callback");

  /* Label sets: a subset, then anchors of our own (open vocabulary). */
  {
    const char *subset[2];
    const char *dup[2] = {"calm", "calm"};
    const char *own[2] = {"calm", "storm"};
    int32_t H = te_projector_output_dim(projector);
    float *anchors = (float *)calloc((size_t)(2 * H), sizeof(float));
    float *all = (float *)calloc((size_t)(n_labels * H), sizeof(float));
    float *picked = (float *)calloc((size_t)(2 * H), sizeof(float));
    size_t n_floats = 0;
    CHECK_STATUS(te_projector_anchors(projector, NULL, 0, &n_floats), TE_ERROR_BUFFER_TOO_SMALL, "needed");
    CHECK(n_floats == (size_t)(n_labels * H));
    CHECK_STATUS(te_projector_anchors(projector, all, (size_t)(n_labels * H), &n_floats), TE_OK, NULL);
    CHECK_STATUS(te_projector_anchors(NULL, all, (size_t)(n_labels * H), &n_floats), TE_ERROR_INVALID_ARGUMENT,
                 "projector");
    subset[0] = te_projector_label(projector, 1);
    subset[1] = te_projector_label(projector, 0);
    CHECK_STATUS(te_projector_select_labels(projector, subset, 2), TE_OK, NULL);
    CHECK(te_projector_n_labels(projector) == 2);
    /* The subset's anchors are the model's rows 1 and 0. */
    CHECK_STATUS(te_projector_anchors(projector, picked, (size_t)(2 * H), &n_floats), TE_OK, NULL);
    CHECK(n_floats == (size_t)(2 * H));
    CHECK(memcmp(picked, all + H, (size_t)H * sizeof(float)) == 0 && memcmp(picked + H, all, (size_t)H * sizeof(float)) == 0);
    free(all);
    free(picked);
    CHECK_STATUS(te_projector_select_labels(projector, own, 1), TE_ERROR_FAILED, "calm");
    for (i = 0; i < 2 * H; ++i) anchors[i] = (float)((i * 7) % 5) - 2.0f;
    CHECK_STATUS(te_projector_set_anchors(projector, own, 2, anchors, (size_t)(2 * H)), TE_OK, NULL);
    CHECK(strcmp(te_projector_label(projector, 1), "storm") == 0);
    CHECK_STATUS(te_projector_set_anchors(projector, dup, 2, anchors, (size_t)(2 * H)), TE_ERROR_INVALID_ARGUMENT,
                 "twice");
    CHECK_STATUS(te_projector_set_anchors(projector, own, 2, anchors, (size_t)(2 * H - 1)), TE_ERROR_INVALID_ARGUMENT,
                 "floats");
    anchors[3] = NAN;
    CHECK_STATUS(te_projector_set_anchors(projector, own, 2, anchors, (size_t)(2 * H)), TE_ERROR_INVALID_ARGUMENT,
                 "NaN");
    CHECK_STATUS(te_projector_load_anchors(projector, join(work, "none.safetensors")), TE_ERROR_FAILED, "none");
    free(anchors);
  }

  /* Features: a shard, then the same run again resumes (nothing new). */
  {
    int calls = 0;
    te_features_progress summary;
    char shard[4096];
    snprintf(shard, sizeof shard, "%s/features.safetensors", work);
    CHECK_STATUS(te_features_extract(clip, image_dir, shard, TE_FEATURES_AUTO, on_features, &calls, &summary), TE_OK,
                 NULL);
    CHECK(summary.done == 3 && summary.failed == 0 && calls >= 4);
    CHECK_STATUS(te_features_extract(clip, image_dir, shard, TE_FEATURES_AUTO, NULL, NULL, &summary), TE_OK, NULL);
    CHECK(summary.done == 0 && summary.existing == 3);
    CHECK_STATUS(te_features_extract(clip, join(work, "no-images"), shard, TE_FEATURES_AUTO, NULL, NULL, NULL),
                 TE_ERROR_FAILED, "no-images");
    CHECK_STATUS(te_features_extract(clip, image_dir, shard, (te_features_format)9, NULL, NULL, NULL),
                 TE_ERROR_INVALID_ARGUMENT, "format");
  }

  free(probabilities);
  free(embeddings);
  for (i = 0; i < 3; ++i) te_image_free(images[i]);
  te_projector_free(projector);
  te_clip_free(clip);
  te_clip_free(NULL);
  te_projector_free(NULL);
}

static void test_lm(const char *lm_dir, const char *tokenizer) {
  te_lm *lm = NULL;
  te_lm_params params = te_lm_default_params();
  te_session *session = NULL, *other = NULL;
  int32_t tokens[256];
  size_t n = 0, needed = 0, kept = 0, len = 0;
  char text[1024];
  float *logits;
  int32_t vocab;
  te_generate_params g = te_generate_default_params();
  te_generate_result r;
  struct streamed s1, s2;
  const char *stops[1];

  params.n_threads = 1;
  params.weight_type = "q7";
  CHECK_STATUS(te_lm_load(lm_dir, &params, &lm), TE_ERROR_INVALID_ARGUMENT, "q7");
  params.weight_type = NULL;
  CHECK(params.compute == NULL);
  params.compute = "fp8";
  CHECK_STATUS(te_lm_load(lm_dir, &params, &lm), TE_ERROR_FAILED, "compute");
  params.compute = "f32";
  CHECK_STATUS(te_lm_load(lm_dir, &params, &lm), TE_OK, NULL);
  CHECK(!te_lm_has_tokenizer(lm));
  CHECK_STATUS(te_lm_tokenize(lm, "hi", 2, true, tokens, 256, &n), TE_ERROR_FAILED, "tokenizer");
  {
    const char *one[1] = {"calm"};
    float row[1024];
    CHECK(te_lm_n_embd(lm) <= 1024);
    CHECK_STATUS(te_lm_label_anchors(lm, one, 1, NULL, row, (size_t)te_lm_n_embd(lm)), TE_ERROR_FAILED, "tokenizer");
  }
  te_lm_free(lm);
  params.tokenizer = tokenizer;
  params.weight_type = "f32";
  CHECK_STATUS(te_lm_load(lm_dir, &params, &lm), TE_OK, NULL);
  CHECK(te_lm_has_tokenizer(lm));
  CHECK(strcmp(te_lm_architecture(lm), "llama") == 0);
  vocab = te_lm_n_vocab(lm);
  CHECK(vocab > 0 && te_lm_n_ctx(lm) > 0 && te_lm_n_embd(lm) > 0);
  CHECK(te_lm_token_bos(lm) >= 0);

  CHECK_STATUS(te_lm_tokenize(lm, "the happy dog", 13, true, NULL, 0, &needed), TE_ERROR_BUFFER_TOO_SMALL, "needed");
  CHECK(needed > 1);
  CHECK_STATUS(te_lm_tokenize(lm, "the happy dog", 13, true, tokens, 256, &n), TE_OK, NULL);
  CHECK(n == needed && tokens[0] == te_lm_token_bos(lm));
  CHECK_STATUS(te_lm_detokenize(lm, tokens, n, true, text, sizeof text, &len), TE_OK, NULL);
  CHECK(strcmp(text, "the happy dog") == 0 && len == 13);
  CHECK_STATUS(te_lm_detokenize(lm, tokens, n, true, text, 4, &len), TE_ERROR_BUFFER_TOO_SMALL, NULL);
  CHECK(len == 13);
  tokens[1] = vocab + 5;
  CHECK_STATUS(te_lm_detokenize(lm, tokens, n, true, text, sizeof text, &len), TE_ERROR_INVALID_ARGUMENT,
               "vocabulary");
  CHECK_STATUS(te_lm_tokenize(lm, "the happy dog", 13, true, tokens, 256, &n), TE_OK, NULL);

  /* Label anchors: the mean embedding of the grounding text's tokens. */
  {
    const char *labels[2] = {"calm", "storm"};
    const char *calm[1] = {"calm"};
    int32_t H = te_lm_n_embd(lm);
    float *a = (float *)calloc((size_t)(2 * H), sizeof(float));
    float *b = (float *)calloc((size_t)(2 * H), sizeof(float));
    int32_t k;
    int differs = 0;
    CHECK_STATUS(te_lm_label_anchors(lm, labels, 2, NULL, a, (size_t)(2 * H)), TE_OK, NULL);
    CHECK_STATUS(te_lm_label_anchors(lm, labels, 2, "{label}", b, (size_t)(2 * H)), TE_OK, NULL);
    CHECK(memcmp(a, b, (size_t)(2 * H) * sizeof(float)) == 0);
    for (k = 0; k < H; ++k) differs |= a[k] != a[H + k];
    CHECK(differs);
    CHECK_STATUS(te_lm_label_anchors(lm, calm, 1, "a {label} sea, {label}", b, (size_t)H), TE_OK, NULL);
    CHECK(memcmp(a, b, (size_t)H * sizeof(float)) != 0);
    CHECK_STATUS(te_lm_label_anchors(lm, labels, 2, NULL, a, (size_t)H), TE_ERROR_INVALID_ARGUMENT, "floats");
    CHECK_STATUS(te_lm_label_anchors(lm, labels, 0, NULL, a, 0), TE_ERROR_INVALID_ARGUMENT, "no labels");
    CHECK_STATUS(te_lm_label_anchors(NULL, labels, 2, NULL, a, (size_t)(2 * H)), TE_ERROR_INVALID_ARGUMENT, "lm");
    free(a);
    free(b);
  }

  /* Evaluation and logits. */
  logits = (float *)calloc((size_t)vocab, sizeof(float));
  CHECK_STATUS(te_session_new(NULL, &session), TE_ERROR_INVALID_ARGUMENT, NULL);
  CHECK_STATUS(te_session_new(lm, &session), TE_OK, NULL);
  CHECK_STATUS(te_session_eval(session, tokens, n, logits, (size_t)vocab), TE_OK, NULL);
  CHECK(te_session_length(session) == n);
  CHECK(isfinite(logits[0]));
  CHECK_STATUS(te_session_eval(session, tokens, n, logits, 3), TE_ERROR_INVALID_ARGUMENT, "vocabulary");
  CHECK_STATUS(te_session_truncate(session, n + 50), TE_ERROR_INVALID_ARGUMENT, "positions");
  CHECK_STATUS(te_session_truncate(session, 0), TE_OK, NULL);
  CHECK(te_session_length(session) == 0);
  {
    float *rows = (float *)calloc((size_t)(2 * te_lm_n_embd(lm)), sizeof(float));
    CHECK_STATUS(te_session_eval_embeddings(session, rows, 2, (size_t)te_lm_n_embd(lm), logits, (size_t)vocab), TE_OK,
                 NULL);
    CHECK(te_session_length(session) == 2);
    CHECK_STATUS(te_session_eval_embeddings(session, rows, 2, 3, NULL, 0), TE_ERROR_INVALID_ARGUMENT, "hidden size");
    free(rows);
  }
  CHECK_STATUS(te_session_truncate(session, 0), TE_OK, NULL);

  /* Greedy generation streams text; a second session continuing a kept prefix
   * gives the same tokens as one run from scratch. */
  memset(&s1, 0, sizeof s1);
  g.max_new_tokens = 12;
  g.ignore_eos = true;
  g.on_token = on_token;
  g.user_data = &s1;
  CHECK_STATUS(te_session_generate(session, tokens, n, &g, &r), TE_OK, NULL);
  CHECK(r.n_generated == 12 && r.finish_reason == TE_FINISH_LENGTH && s1.tokens == 12);
  CHECK(te_session_length(session) == n + 11);
  CHECK(r.n_prompt == (int32_t)n);

  CHECK_STATUS(te_session_new(lm, &other), TE_OK, NULL);
  memset(&s2, 0, sizeof s2);
  g.user_data = &s2;
  CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_OK, NULL);
  CHECK(s1.length == s2.length && memcmp(s1.text, s2.text, s1.length) == 0);
  /* Reusing the prompt: keep_prefix keeps everything but the last token. */
  CHECK_STATUS(te_session_keep_prefix(other, tokens, n, &kept), TE_OK, NULL);
  CHECK(kept == n - 1 && te_session_length(other) == n - 1);
  memset(&s2, 0, sizeof s2);
  CHECK_STATUS(te_session_generate(other, tokens + kept, n - kept, &g, &r), TE_OK, NULL);
  CHECK(r.n_prompt == 1 && s1.length == s2.length && memcmp(s1.text, s2.text, s1.length) == 0);

  /* Stopping: by the callback, by a stop string; sampling is reproducible. */
  CHECK_STATUS(te_session_truncate(other, 0), TE_OK, NULL);
  memset(&s2, 0, sizeof s2);
  s2.stop_after = 3;
  CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_OK, NULL);
  CHECK(r.finish_reason == TE_FINISH_CALLBACK && r.n_generated == 3);
  if (s1.length > 2) {
    char stop[2] = {s1.text[s1.length - 1], '\0'};
    stops[0] = stop;
    g.stop = stops;
    g.n_stop = 1;
    CHECK_STATUS(te_session_truncate(other, 0), TE_OK, NULL);
    memset(&s2, 0, sizeof s2);
    CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_OK, NULL);
    CHECK(r.finish_reason == TE_FINISH_STOP && strchr(s2.text, stop[0]) == NULL);
    g.stop = NULL;
    g.n_stop = 0;
  }
  g.temperature = 0.8f;
  g.top_p = 0.9f;
  g.seed = 7;
  CHECK_STATUS(te_session_truncate(other, 0), TE_OK, NULL);
  memset(&s1, 0, sizeof s1);
  g.user_data = &s1;
  CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_OK, NULL);
  CHECK_STATUS(te_session_truncate(other, 0), TE_OK, NULL);
  memset(&s2, 0, sizeof s2);
  g.user_data = &s2;
  CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_OK, NULL);
  CHECK(s1.length == s2.length && memcmp(s1.text, s2.text, s1.length) == 0);
  g.top_p = 1.5f;
  CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_ERROR_FAILED, "top-p");
  g.top_p = 1.0f;
  g.temperature = 0.0f;

  /* Bad input. */
  CHECK_STATUS(te_session_generate(other, tokens, 0, &g, &r), TE_ERROR_INVALID_ARGUMENT, "empty");
  tokens[0] = -4;
  CHECK_STATUS(te_session_generate(other, tokens, n, &g, &r), TE_ERROR_INVALID_ARGUMENT, "outside the vocabulary");
  CHECK_STATUS(te_session_eval(other, tokens, n, NULL, 0), TE_ERROR_INVALID_ARGUMENT, "outside the vocabulary");
  tokens[0] = te_lm_token_bos(lm);
  {
    /* A prompt longer than the context: refused with CONTEXT_FULL, nothing kept. */
    size_t ctx = (size_t)te_lm_n_ctx(lm), i, before;
    int32_t *longer = (int32_t *)malloc((ctx + 1) * sizeof(int32_t));
    for (i = 0; i <= ctx; ++i) longer[i] = tokens[i % n];
    CHECK_STATUS(te_session_truncate(other, 0), TE_OK, NULL);
    before = te_session_length(other);
    CHECK_STATUS(te_session_eval(other, longer, ctx + 1, NULL, 0), TE_ERROR_CONTEXT_FULL, "context");
    CHECK(te_session_length(other) == before);
    /* Generation ends at the context's end: finish "length". */
    g.max_new_tokens = 50;
    g.on_token = NULL;
    CHECK_STATUS(te_session_generate(other, longer, ctx - 5, &g, &r), TE_OK, NULL);
    CHECK(r.finish_reason == TE_FINISH_LENGTH && r.n_generated == 5 && te_session_length(other) == ctx - 1);
    free(longer);
  }

  free(logits);
  te_session_free(other);
  te_session_free(session);
  te_session_free(NULL);
  te_lm_free(lm);
  te_lm_free(NULL);
}

static void test_mm(const char *mm_dir, const char *clip_dir, const char *projector_path, const char *image_dir,
                    const char *work) {
  te_mm *mm = NULL;
  te_mm_params params = te_mm_default_params();
  te_mm_session *session = NULL;
  te_image *image = NULL;
  te_clip *clip = NULL;
  te_projector *projector = NULL;
  te_reasoner *reasoner = NULL;
  te_generate_params g = te_mm_default_generate_params();
  te_generate_result r;
  te_reasoning why;
  struct streamed s1, s2;
  te_mm_turn turns[3];
  const te_image *one[1];

  CHECK(g.max_new_tokens == 512 && fabsf(g.temperature - 0.2f) < 1e-6f && g.top_k == 50);
  CHECK_STATUS(te_mm_load(join(work, "no-mm"), &params, &mm), TE_ERROR_FAILED, "no-mm");
  params.conversation = "klingon";
  CHECK_STATUS(te_mm_load(mm_dir, &params, &mm), TE_ERROR_FAILED, "klingon");
  params.conversation = NULL;
  CHECK(params.compute == NULL);
  params.compute = "fp8";
  CHECK_STATUS(te_mm_load(mm_dir, &params, &mm), TE_ERROR_FAILED, "compute");
  params.compute = NULL;
  params.n_threads = 2;
  CHECK_STATUS(te_mm_load(mm_dir, &params, &mm), TE_OK, NULL);
  CHECK(strcmp(te_mm_conversation(mm), "llama") == 0);
  CHECK(strlen(te_mm_description(mm)) > 0);
  CHECK_STATUS(te_image_load_file(join(image_dir, "rocket.jpg"), 0, &image), TE_OK, NULL);
  one[0] = image;

  /* A question about an image, greedy; the same conversation again reuses the
   * cache and gives the same answer; a follow-up turn continues it. */
  CHECK_STATUS(te_mm_session_new(mm, &session), TE_OK, NULL);
  g.temperature = 0.0f;
  g.max_new_tokens = 8;
  g.on_token = on_token;
  memset(&s1, 0, sizeof s1);
  g.user_data = &s1;
  turns[0].question = "<image>\nWhat is shown?";
  turns[0].answer = NULL;
  CHECK_STATUS(te_mm_generate(session, turns, 1, one, 1, &g, &r), TE_OK, NULL);
  CHECK(r.n_generated > 0 && s1.tokens == r.n_generated);
  CHECK(te_mm_session_length(session) > 0);
  memset(&s2, 0, sizeof s2);
  g.user_data = &s2;
  CHECK_STATUS(te_mm_generate(session, turns, 1, one, 1, &g, &r), TE_OK, NULL);
  CHECK(s1.length == s2.length && memcmp(s1.text, s2.text, s1.length) == 0);
  CHECK(r.n_prompt <= 2); /* all but the last position came from the cache */
  turns[0].answer = "a rocket";
  turns[1].question = "Why?";
  turns[1].answer = NULL;
  CHECK_STATUS(te_mm_generate(session, turns, 2, one, 1, &g, &r), TE_OK, NULL);

  /* Bad input: markers and images disagree, answers in the wrong places. */
  CHECK_STATUS(te_mm_generate(session, turns, 2, one, 0, &g, &r), TE_ERROR_INVALID_ARGUMENT, "1 <image> markers");
  turns[1].answer = "x";
  CHECK_STATUS(te_mm_generate(session, turns, 2, one, 1, &g, &r), TE_ERROR_INVALID_ARGUMENT, "last turn");
  turns[0].answer = NULL;
  turns[1].answer = NULL;
  CHECK_STATUS(te_mm_generate(session, turns, 2, one, 1, &g, &r), TE_ERROR_INVALID_ARGUMENT, "only the last turn");
  CHECK_STATUS(te_mm_generate(NULL, turns, 1, one, 1, &g, &r), TE_ERROR_INVALID_ARGUMENT, "session");

  /* TinyEmo's reasoning: the projector's label, then the explanation. */
  CHECK_STATUS(te_clip_load(clip_dir, NULL, &clip), TE_OK, NULL);
  CHECK_STATUS(te_projector_load(projector_path, &projector), TE_OK, NULL);
  CHECK_STATUS(te_reasoner_new(mm, projector, clip, &reasoner), TE_OK, NULL);
  memset(&s1, 0, sizeof s1);
  g.user_data = &s1;
  g.max_new_tokens = 6;
  CHECK_STATUS(te_reason(reasoner, image, &g, &why), TE_OK, NULL);
  CHECK(why.n_labels == te_projector_n_labels(projector));
  CHECK(why.label != NULL && strlen(why.label) > 0);
  {
    int32_t l;
    float sum = 0.0f;
    int found = 0;
    for (l = 0; l < why.n_labels; ++l) {
      sum += why.probabilities[l];
      found |= strcmp(why.labels[l], why.label) == 0;
    }
    CHECK(fabsf(sum - 1.0f) < 1e-4f && found);
  }
  CHECK(why.text != NULL && why.reasoning != NULL && why.lm_label != NULL);
  CHECK(why.total_seconds > 0.0 && why.generated_tokens == s1.tokens);
  {
    const char *subset[2];
    subset[0] = te_projector_label(projector, 2);
    subset[1] = te_projector_label(projector, 0);
    CHECK_STATUS(te_reasoner_set_labels(reasoner, subset, 2), TE_OK, NULL);
    CHECK_STATUS(te_reason(reasoner, image, &g, &why), TE_OK, NULL);
    CHECK(why.n_labels == 2);
  }
  CHECK_STATUS(te_reason(reasoner, NULL, &g, &why), TE_ERROR_INVALID_ARGUMENT, "image");
  {
    te_reasoner* refused = NULL; /* its own pointer: a refused call must not lose `reasoner` */
    CHECK_STATUS(te_reasoner_new(mm, NULL, clip, &refused), TE_ERROR_INVALID_ARGUMENT, "projector");
    CHECK(refused == NULL);
  }

  te_reasoner_free(reasoner);
  te_projector_free(projector);
  te_clip_free(clip);
  te_image_free(image);
  te_mm_session_free(session);
  te_mm_free(mm);
  te_mm_free(NULL);
}

/* ---- CLIP's text tower */
static void test_clip_text(const char *model_dir, const char *vocab, const char *image_dir, const char *work) {
  te_clip_text *text = NULL;
  te_clip *clip = NULL;
  te_image *image = NULL;
  te_clip_params params = te_clip_default_params();
  const char *texts[2] = {"a photo evoking anger", "a photo evoking joy"};
  const char *labels[2] = {"anger", "joy"};
  const char *twice[2] = {"joy", "joy"};
  const char *with_null[2] = {"anger", NULL};
  float *text_rows, *image_row, cosines[2], probabilities[2], distances[2];
  int32_t dim, predicted = -1, i, l;

  params.n_threads = 2;
  CHECK_STATUS(te_clip_text_load(join(work, "missing-clip"), vocab, &params, &text), TE_ERROR_FAILED, "missing-clip");
  CHECK(text == NULL);
  /* The fixture folder has no vocabulary beside the model: both names are given. */
  CHECK_STATUS(te_clip_text_load(model_dir, NULL, &params, &text), TE_ERROR_FAILED, "merges.txt");
  CHECK_STATUS(te_clip_text_load(model_dir, vocab, &params, NULL), TE_ERROR_INVALID_ARGUMENT, "out");
  CHECK_STATUS(te_clip_text_load(model_dir, vocab, &params, &text), TE_OK, NULL);
  dim = te_clip_text_embedding_dim(text);
  CHECK(dim == 24);
  CHECK(te_clip_text_context_length(text) == 77);
  CHECK(fabsf(te_clip_text_logit_scale(text) - 100.0f) < 0.01f);
  CHECK(strlen(te_clip_text_description(text)) > 0);
  CHECK(te_clip_text_embedding_dim(NULL) == 0 && te_clip_text_logit_scale(NULL) == 0.0f);

  text_rows = (float *)calloc((size_t)(2 * dim), sizeof(float));
  CHECK_STATUS(te_clip_text_embed(text, texts, 2, text_rows, (size_t)(2 * dim - 1)), TE_ERROR_INVALID_ARGUMENT,
               "needed");
  CHECK_STATUS(te_clip_text_embed(text, with_null, 2, text_rows, (size_t)(2 * dim)), TE_ERROR_INVALID_ARGUMENT,
               "entry 1");
  CHECK_STATUS(te_clip_text_embed(NULL, texts, 2, text_rows, (size_t)(2 * dim)), TE_ERROR_INVALID_ARGUMENT, "NULL");
  CHECK_STATUS(te_clip_text_embed(text, texts, 2, text_rows, (size_t)(2 * dim)), TE_OK, NULL);
  CHECK(text_rows[0] != 0.0f || text_rows[1] != 0.0f);

  /* Zero-shot on an image embedded by the same model's vision tower. */
  CHECK_STATUS(te_clip_load(model_dir, &params, &clip), TE_OK, NULL);
  CHECK(te_clip_embedding_dim(clip) == dim);
  CHECK_STATUS(te_image_load_file(join(image_dir, "chelsea.png"), 0, &image), TE_OK, NULL);
  image_row = (float *)calloc((size_t)dim, sizeof(float));
  CHECK_STATUS(te_clip_embed(clip, (const te_image *const *)&image, 1, image_row, (size_t)dim), TE_OK, NULL);
  CHECK_STATUS(te_zero_shot_classify(text, labels, 2, NULL, image_row, 1, (size_t)dim, &predicted, probabilities,
                                     cosines, distances),
               TE_OK, NULL);
  CHECK(predicted == (cosines[1] > cosines[0] ? 1 : 0));
  CHECK(fabsf(probabilities[0] + probabilities[1] - 1.0f) < 1e-5f);
  /* The default template's prompts are exactly `texts`: the cosines are those of the embeddings. */
  for (l = 0; l < 2; ++l) {
    double dot = 0.0, nt = 0.0, ni = 0.0, want_p1;
    for (i = 0; i < dim; ++i) {
      dot += (double)text_rows[l * dim + i] * image_row[i];
      nt += (double)text_rows[l * dim + i] * text_rows[l * dim + i];
      ni += (double)image_row[i] * image_row[i];
    }
    CHECK(fabs(cosines[l] - dot / sqrt(nt * ni)) < 1e-5);
    CHECK(fabs(distances[l] - sqrt(2.0 - 2.0 * cosines[l])) < 1e-5);
    want_p1 = 1.0 / (1.0 + exp(te_clip_text_logit_scale(text) * ((double)cosines[0] - cosines[1])));
    CHECK(fabs(probabilities[1] - want_p1) < 1e-5);
  }
  CHECK_STATUS(te_zero_shot_classify(text, twice, 2, NULL, image_row, 1, (size_t)dim, NULL, NULL, NULL, NULL),
               TE_ERROR_FAILED, "twice");
  CHECK_STATUS(te_zero_shot_classify(text, labels, 2, "no slot", image_row, 1, (size_t)dim, NULL, NULL, NULL, NULL),
               TE_ERROR_FAILED, "no slot");
  CHECK_STATUS(te_zero_shot_classify(text, labels, 2, NULL, image_row, 1, (size_t)(dim - 1), NULL, NULL, NULL, NULL),
               TE_ERROR_INVALID_ARGUMENT, "values per row");
  CHECK_STATUS(te_zero_shot_classify(text, labels, 2, NULL, NULL, 1, (size_t)dim, NULL, NULL, NULL, NULL),
               TE_ERROR_INVALID_ARGUMENT, "image_embeddings");
  {
    /* te_clip_params.compute: the same embedding as stored, packed, and in bf16 within its rounding. */
    const char *computes[3] = {"stored", "f32", "bf16"};
    float *other = (float *)calloc((size_t)dim, sizeof(float));
    te_clip *packed = NULL;
    for (l = 0; l < 3; ++l) {
      double e = 0.0, n = 0.0;
      params.compute = computes[l];
      CHECK_STATUS(te_clip_load(model_dir, &params, &packed), TE_OK, NULL);
      CHECK_STATUS(te_clip_embed(packed, (const te_image *const *)&image, 1, other, (size_t)dim), TE_OK, NULL);
      for (i = 0; i < dim; ++i) {
        e += ((double)other[i] - image_row[i]) * ((double)other[i] - image_row[i]);
        n += (double)image_row[i] * image_row[i];
      }
      CHECK(sqrt(e / n) < (l == 2 ? 1e-2 : 1e-5));
      te_clip_free(packed);
      packed = NULL;
    }
    params.compute = "f64";
    CHECK_STATUS(te_clip_load(model_dir, &params, &packed), TE_ERROR_FAILED, "compute");
    CHECK(packed == NULL);
    params.compute = NULL;
    free(other);
  }
  image_row[0] = NAN;
  CHECK_STATUS(te_zero_shot_classify(text, labels, 2, NULL, image_row, 1, (size_t)dim, NULL, NULL, NULL, NULL),
               TE_ERROR_FAILED, "norm");

  free(text_rows);
  free(image_row);
  te_image_free(image);
  te_clip_free(clip);
  te_clip_text_free(text);
  te_clip_text_free(NULL);
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: %s CLIP_DIR PROJECTOR IMAGE_DIR LM_DIR TOKENIZER WORK_DIR MM_DIR ZERO_SHOT_CLIP_DIR VOCAB\n",
            argv[0]);
    return 2;
  }
  te_log_set(count_log, &g_log_lines, TE_LOG_INFO);
  test_basics();
  test_images(argv[3]);
  test_vision(argv[1], argv[2], argv[3], argv[6]);
  test_lm(argv[4], argv[5]);
  test_mm(argv[7], argv[1], argv[2], argv[3], argv[6]);
  test_clip_text(argv[8], argv[9], argv[3], argv[6]);
  CHECK(g_log_lines > 0); /* the loads were logged at info */
  te_log_set(NULL, NULL, TE_LOG_WARN);
  printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
