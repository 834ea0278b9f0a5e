#!/bin/sh
# tinyemo's CLIP vision tower against ONNX Runtime (onnxruntime-node, CPU
# execution provider) on the same random weights (issue 21; not run by CI).
#
#   bench/peers/clip_ort.sh [OUT.json]
#
# 1. Installs onnxruntime-node@1.31.1 into $ORT_CACHE (default /work/cache/ort)
#    once, with --ignore-scripts (its install script would download the GPU
#    binaries; the CPU ones ship in the package).
# 2. For each shape (vit-b-16 @224, vit-l-14 @224, vit-l-14-336 @336) makes
#    seeded random weights of the published shape once, with Debian's torch
#    (tools/clip_ort_model.py): a checkpoint folder tinyemo loads (HF
#    config.json + model.safetensors) and an ONNX export of the same torch
#    module (opset 17, dynamic batch, output image_embeds), plus 3 images of
#    seeded pixels and torch's embeddings of them. Kept in $ORT_CACHE/models/<shape>.
# 3. Cross-check: `tinyemo clip encode` and ORT on the same pixel tensor;
#    worst row's ||tinyemo - ORT|| / ||ORT|| is printed (and both against
#    torch); above $CHECK_BOUND (1e-3; 2e-2 when tinyemo runs with extra
#    encode arguments, e.g. a bf16 compute mode) the script exits 1 untimed.
# 4. Times `tinyemo clip bench --model DIR --batch B --threads T --json` and
#    bench/peers/clip_ort_bench.mjs (intraOp T, interOp 1, graph
#    optimisation 'all', sequential) at each batch, in alternated rounds
#    (tinyemo, ORT, tinyemo, ORT, ...), a fresh process per run; both time a
#    warm-up then runs for at least $MIN_SECONDS and report the median run.
#    A run during which other processes took CPU time is repeated
#    (bench/peers/clip_ort_rounds.py says how that is measured).
# 5. One JSON document on stdout and in OUT.json (default
#    $ORT_CACHE/clip_ort.json), a markdown table on stderr.
#
# Environment: TINYEMO (default build/tinyemo), ORT_CACHE, SHAPES
# (comma-separated), BATCHES (default 1,8), THREADS (2), ROUNDS (5),
# MIN_SECONDS (3), SLACK (0.03 of the machine's CPU time), MAX_RETRIES (3),
# TINYEMO_CLIP_ARGS (extra `clip bench` arguments, recorded in the JSON),
# TINYEMO_ENCODE_ARGS (extra `clip encode` arguments for the cross-check;
# default TINYEMO_CLIP_ARGS), CHECK_BOUND, SEED (0; a folder made with another
# seed is regenerated), UV_THREADPOOL_SIZE (1).
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
tinyemo=${TINYEMO:-$repo/build/tinyemo}
cache=${ORT_CACHE:-/work/cache/ort}
shapes=${SHAPES:-vit-b-16,vit-l-14,vit-l-14-336}
out_json=${1:-$cache/clip_ort.json}
clip_args=${TINYEMO_CLIP_ARGS:-}
encode_args=${TINYEMO_ENCODE_ARGS-$clip_args}
if [ -n "$encode_args" ]; then bound=${CHECK_BOUND:-2e-2}; else bound=${CHECK_BOUND:-1e-3}; fi

[ -x "$tinyemo" ] || { echo "clip_ort: $tinyemo not built (cmake --build build --target tinyemo_cli)" >&2; exit 1; }
mkdir -p "$cache/models"

if [ ! -f "$cache/node_modules/onnxruntime-node/package.json" ]; then
  (cd "$cache" && npm i --ignore-scripts --no-audit --no-fund onnxruntime-node@1.31.1 >&2)
fi

for shape in $(echo "$shapes" | tr , ' '); do
  meta="$cache/models/$shape/meta.json"
  if [ ! -f "$meta" ] || ! grep -q "\"seed\": ${SEED:-0}," "$meta"; then
    echo "clip_ort: making random $shape weights and its ONNX export in $cache/models/$shape" >&2
    /usr/bin/python3 "$repo/tools/clip_ort_model.py" --arch "$shape" --seed "${SEED:-0}" --out "$cache/models/$shape" >&2
  fi
done

exec /usr/bin/python3 "$repo/bench/peers/clip_ort_rounds.py" --out "$out_json" --tinyemo "$tinyemo" \
  --node-script "$repo/bench/peers/clip_ort_bench.mjs" --ort "$cache" --models "$cache/models" --work "$cache/work" \
  --shapes "$shapes" --batches "${BATCHES:-1,8}" --threads "${THREADS:-2}" --rounds "${ROUNDS:-5}" \
  --min-seconds "${MIN_SECONDS:-3}" --slack "${SLACK:-0.03}" --max-retries "${MAX_RETRIES:-3}" \
  --tinyemo-args "$clip_args" --encode-args "$encode_args" --bound "$bound"
