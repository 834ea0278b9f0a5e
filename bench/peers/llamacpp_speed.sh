#!/bin/sh
# tinyemo's LM prefill and batch-1 decode against llama.cpp on the very same
# GGUF files (issue 21; not run by CI; needs npm's node-llama-cpp@3.21.1, as
# bench/peers/llamacpp_check.sh does).
#
#   bench/peers/llamacpp_speed.sh [OUT.json]
#
# 1. Compiles bench/peers/llamacpp_bench.cpp (llama-bench's settings, tinyemo
#    bench's schedule) and bench/peers/llamacpp_logits.cpp against llama.cpp's
#    headers and the prebuilt libllama.
# 2. For each arch (tinyllama-1.1b, openelm-270m: the published shapes) writes
#    a random-weight F32 checkpoint once (`tinyemo lm bench --random-weights
#    --save-checkpoint`: config.json + model.safetensors), then each quant's
#    GGUF with tinyemo's converter (`tinyemo convert --to gguf --quant Q`,
#    llama.cpp's layout); all kept in $CACHE (default /work/cache/llama-speed)
#    and remade when missing, made with another SEED, or older than the
#    tinyemo binary that converts them. Both engines read these same files.
# 3. Cross-check: llama.cpp's and tinyemo's logits of a 12-token prompt from
#    each file, within llamacpp_check.sh's bounds (f16: 2e-3; q8_0: 3e-2
#    between the engines and from llama.cpp to the exact F32 logits of the
#    file's dequantised weights); otherwise the script exits 1 untimed.
# 4. Times `tinyemo --threads T lm bench --model FILE --prompt-tokens P
#    --gen-tokens G --json` and llamacpp_bench on each file in alternated
#    rounds (tinyemo, llama.cpp, tinyemo, ...), a fresh process per run. Both
#    keep the faster of two prefills of the same P ids and then decode G
#    tokens one at a time after the prompt. A run during which other
#    processes took CPU time is repeated (bench/peers/peer_runs.py).
# 5. One JSON document on stdout and in OUT.json (default
#    $CACHE/llamacpp_speed.json): machine, threads, files, per-round prefill
#    and decode tokens/s of both, medians, ratios tinyemo / llama.cpp; a
#    markdown table on stderr.
#
# Environment: TINYEMO (default build/tinyemo), LLAMA_BINS, LLAMA_CPP (as in
# llamacpp_check.sh), CACHE, ARCHS (comma-separated), QUANTS (default
# q8_0,f16), THREADS (2), ROUNDS (5), PROMPT_TOKENS (128), GEN_TOKENS (64),
# FLASH_ATTN (llama.cpp's: auto, llama-bench's default; on; off), POLL
# (llama.cpp's threadpool polling level, 0-100: llama-bench's 50), SLACK
# (0.03 of the machine's CPU time), MAX_RETRIES (3), SEED (0), TINYEMO_LM_ARGS
# (extra `lm bench` options for the timed tinyemo runs, e.g. "--compute bf16").
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
tinyemo=${TINYEMO:-$repo/build/tinyemo}
bins=${LLAMA_BINS:-/work/cache/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
src=${LLAMA_CPP:-/work/cache/llama.cpp}
cache=${CACHE:-/work/cache/llama-speed}
archs=${ARCHS:-tinyllama-1.1b,openelm-270m}
quants=${QUANTS:-q8_0,f16}
seed=${SEED:-0}
out_json=${1:-$cache/llamacpp_speed.json}

[ -x "$tinyemo" ] || { echo "llamacpp_speed: $tinyemo not built (cmake --build build --target tinyemo_cli)" >&2; exit 1; }
[ -f "$bins/libllama.v0.4.0.so" ] || { echo "llamacpp_speed: no prebuilt libllama in $bins (set LLAMA_BINS)" >&2; exit 1; }
mkdir -p "$cache/work"
export LLAMA_BINS="$bins"

for prog in llamacpp_bench llamacpp_logits; do
  c++ -std=c++17 -O2 -I"$src/include" -I"$src/ggml/include" "$repo/bench/peers/$prog.cpp" \
    -L"$bins" -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$bins" \
    -o "$cache/$prog"
done

files=
for arch in $(echo "$archs" | tr , ' '); do
  ckpt="$cache/$arch"
  if [ ! -f "$ckpt/model.safetensors" ] || [ "$(cat "$ckpt/seed" 2> /dev/null)" != "$seed" ]; then
    echo "llamacpp_speed: writing random $arch weights (seed $seed) to $ckpt" >&2
    rm -rf "$ckpt"
    "$tinyemo" lm bench --arch "$arch" --random-weights --seed "$seed" --save-checkpoint "$ckpt" \
      --prompt-tokens 1 --gen-tokens 1 --json > /dev/null
    echo "$seed" > "$ckpt/seed"
  fi
  for quant in $(echo "$quants" | tr , ' '); do
    file="$cache/$arch.$quant.gguf"
    if [ ! -f "$file" ] || [ "$ckpt/model.safetensors" -nt "$file" ] || [ "$tinyemo" -nt "$file" ]; then
      "$tinyemo" convert --to gguf --quant "$quant" --model "$ckpt" --out "$file" >&2
    fi
    files="$files${files:+,}$arch.$quant=$arch:$quant:$file"
  done
done

exec /usr/bin/python3 "$repo/bench/peers/llamacpp_speed_rounds.py" --out "$out_json" --tinyemo "$tinyemo" \
  --llamacpp-bench "$cache/llamacpp_bench" --llamacpp-logits "$cache/llamacpp_logits" --files "$files" \
  --work "$cache/work" --threads "${THREADS:-2}" --rounds "${ROUNDS:-5}" --prompt-tokens "${PROMPT_TOKENS:-128}" \
  --gen-tokens "${GEN_TOKENS:-64}" --flash-attn "${FLASH_ATTN:-auto}" --poll "${POLL:-50}" --slack "${SLACK:-0.03}" \
  --max-retries "${MAX_RETRIES:-3}" --tinyemo-args "${TINYEMO_LM_ARGS:-}"
