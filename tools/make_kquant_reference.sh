#!/bin/sh
# Regenerates tests/data/core/kquants.safetensors: inputs, and for Q4_K, Q5_K,
# Q6_K the blocks llama.cpp's reference quantiser makes and the floats its
# dequantiser returns. Needs the prebuilt llama.cpp libraries of npm's
# node-llama-cpp@3.21.1 (LLAMA_BINS, default below); builds the C helper in
# /work/cache. Not run by the build or CI.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bins=${LLAMA_BINS:-/work/cache/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
work=${WORK_DIR:-/work/cache/kquant-reference}
mkdir -p "$work"
cc -O2 -o "$work/ggml_kquant_reference" "$here/tools/ggml_kquant_reference.c" -L"$bins" -l:libggml-base.so \
  -Wl,-rpath,"$bins"
/usr/bin/python3 "$here/tools/kquant_reference.py" "$work/ggml_kquant_reference" \
  "$here/tests/data/core/kquants.safetensors"
