/* classify: images -> emotions with the tinyemo C API, one JSON line per image.
 *
 *   classify CLIP_DIR PROJECTOR IMAGE...
 *
 * Prints {"image": ..., "predicted": ..., "scores": {label: probability, ...}}
 * (or {"image": ..., "error": ...}) for each image, in order; exits 1 when a
 * model cannot be loaded, 2 when any image could not be read. */
#include <stdio.h>

#include <tinyemo.h>

struct context {
  const te_projector *projector;
  char *const *paths;
};

/* Writes `s` as a JSON string. */
static void print_json_string(const char *s) {
  putchar('"');
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      printf("\\%c", c);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static bool on_result(size_t index, const te_classification *result, const char *error, void *user_data) {
  const struct context *ctx = (const struct context *)user_data;
  int32_t l;
  printf("{\"image\": ");
  print_json_string(ctx->paths[index]);
  if (result == NULL) {
    printf(", \"error\": ");
    print_json_string(error);
    printf("}\n");
    return true;
  }
  printf(", \"predicted\": ");
  print_json_string(te_projector_label(ctx->projector, result->predicted));
  printf(", \"scores\": {");
  for (l = 0; l < result->n_labels; ++l) {
    if (l > 0) printf(", ");
    print_json_string(te_projector_label(ctx->projector, l));
    printf(": %.9g", result->probabilities[l]);
  }
  printf("}}\n");
  return true;
}

int main(int argc, char **argv) {
  te_clip *clip = NULL;
  te_projector *projector = NULL;
  struct context ctx;
  size_t failed = 0;
  te_status status;

  if (argc < 4) {
    fprintf(stderr, "usage: %s CLIP_DIR PROJECTOR IMAGE...\n", argv[0]);
    return 1;
  }
  if (te_clip_load(argv[1], NULL, &clip) != TE_OK || te_projector_load(argv[2], &projector) != TE_OK) {
    fprintf(stderr, "classify: %s\n", te_last_error());
    te_clip_free(clip);
    return 1;
  }
  ctx.projector = projector;
  ctx.paths = argv + 3;
  status = te_classify_files(clip, projector, (const char *const *)(argv + 3), (size_t)(argc - 3), on_result, &ctx,
                             &failed);
  if (status != TE_OK) fprintf(stderr, "classify: %s\n", te_last_error());
  te_projector_free(projector);
  te_clip_free(clip);
  return status != TE_OK ? 1 : failed > 0 ? 2 : 0;
}
