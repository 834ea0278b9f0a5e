/* Reference k-quant blocks from llama.cpp's own code (the prebuilt libggml-base
 * that node-llama-cpp ships), for tests/data/core/kquants.safetensors.
 * Reads float32 rows from stdin (count given as argv[1], a multiple of 256),
 * writes for each of Q4_K, Q5_K, Q6_K: the blocks quantize_row_*_ref makes, then
 * the floats dequantize_row_* gives back, to stdout. Built and run by
 * tools/make_kquant_reference.sh; never part of the tinyemo build. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
void dequantize_row_q4_K(const void *x, float *y, int64_t k);
void dequantize_row_q5_K(const void *x, float *y, int64_t k);
void dequantize_row_q6_K(const void *x, float *y, int64_t k);

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  const long n = atol(argv[1]);
  if (n <= 0 || n % 256 != 0) return 2;
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
  unsigned char *blocks = malloc(n); /* more than any k-quant needs */
  if (fread(x, sizeof(float), n, stdin) != (size_t)n) return 3;
  const size_t bytes[3] = {144, 176, 210};
  void (*quantize[3])(const float *, void *, int64_t) = {quantize_row_q4_K_ref, quantize_row_q5_K_ref,
                                                          quantize_row_q6_K_ref};
  void (*dequantize[3])(const void *, float *, int64_t) = {dequantize_row_q4_K, dequantize_row_q5_K,
                                                            dequantize_row_q6_K};
  for (int t = 0; t < 3; ++t) {
    quantize[t](x, blocks, n);
    dequantize[t](blocks, y, n);
    fwrite(blocks, 1, n / 256 * bytes[t], stdout);
    fwrite(y, sizeof(float), n, stdout);
  }
  return 0;
}
