#!/bin/sh
# llama.cpp's mtmd reads the mmproj files `tinyemo convert --mmproj-out` writes
# and computes image embeddings from them (not run by CI; needs npm's
# node-llama-cpp@3.21.1 for the prebuilt ggml and the llama.cpp source of the
# same release, whose tools/mtmd/clip.cpp and models/*.cpp are compiled here
# once, with bench/peers/mtmd_embeddings.cpp).
#
#   bench/peers/mmproj_check.sh [OUT.json]
#
# Both engines get the same pixel values (the fixture's pixel_values, given to
# llama.cpp's clip_image_encode directly, so its own resize / pad / normalise
# is not compared). For each pair (f32 and f16 mmproj):
#   - siglip-cls: tinyllava-siglip-qwen2-tiny with cls_patch (a tower without a
#     class token, which llama.cpp's llava graph keeps whole): llama.cpp's
#     embeddings against `tinyemo mm logits --mmproj`'s image_features;
#   - clip: tinyllava-tiny (CLIP, patch): the same comparison, and llama.cpp
#     against a simulation of its graph in this release, which appends the
#     class embedding after the patches but adds positions and selects rows
#     as if it came first (ggml-org/llama.cpp#25814): tinyemo runs the folder
#     with the position rows rotated (class token gets position N, patch i
#     position i) and cls_patch, and the rows are reordered as llama.cpp's
#     selection [1..N] of [patches, class] takes them.
# One JSON line per comparison: worst row's ||a - b|| / ||b|| and the whole
# matrix's. llama.cpp's projector GELU is ggml's tanh approximation through an
# f16 table; tinyemo's the exact one. Exit status 1 if llama.cpp fails to load
# a file or a comparison expected to agree (siglip-cls, clip vs the
# simulation) differs by more than 1e-2 (f32) / 2e-2 (f16).
#
# Environment: TINYEMO (default build/tinyemo), LLAMA_BINS, LLAMA_CPP,
# WORK_DIR (default /work/cache/mmproj-check), TINYEMO_SHARED_DIR.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
tinyemo=${TINYEMO:-$repo/build/tinyemo}
bins=${LLAMA_BINS:-/work/cache/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
src=${LLAMA_CPP:-/work/cache/llama.cpp}
work=${WORK_DIR:-/work/cache/mmproj-check}
shared=${TINYEMO_SHARED_DIR:-$repo/../shared}
out_json=${1:-$work/mmproj_check.json}
mkdir -p "$work/obj"
export LLAMA_BINS="$bins"

# llama.cpp's clip encoder, built once (two compilers at a time).
bin="$work/mtmd_embeddings"
if [ ! -x "$bin" ] || [ "$repo/bench/peers/mtmd_embeddings.cpp" -nt "$bin" ]; then
  flags="-std=c++17 -O2 -w -I$src/include -I$src/ggml/include -I$src/tools/mtmd"
  (cd "$src/tools/mtmd" && ls clip.cpp models/*.cpp) | SRC="$src" OBJ="$work/obj" FLAGS="$flags" xargs -P 2 -I{} sh -c \
    'o="$OBJ/$(echo {} | tr / _).o"; [ -f "$o" ] || c++ $FLAGS -c "$SRC/tools/mtmd/{}" -o "$o"'
  c++ $flags "$repo/bench/peers/mtmd_embeddings.cpp" "$work"/obj/*.o -L"$bins" -l:libggml.v0.4.0.so -l:libggml-base.so \
    -Wl,-rpath,"$bins" -lpthread -o "$bin"
fi

# Folders: the SigLIP fixture with cls_patch, and the CLIP fixture as llama.cpp's graph sees it.
REPO="$repo" /usr/bin/python3 - "$shared/fixtures" "$work" <<'EOF'
import json, os, shutil, sys
import torch
sys.path.insert(0, os.path.join(os.environ["REPO"], "tools"))
from safetensors_io import read_safetensors, write_safetensors
fixtures, work = sys.argv[1], sys.argv[2]
def folder(name, out, edit_config, edit_tensors=None):
    os.makedirs(out, exist_ok=True)
    config = json.load(open(os.path.join(fixtures, name, "config.json")))
    edit_config(config)
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    src = os.path.join(fixtures, name, "model.safetensors")
    if edit_tensors is None:
        shutil.copyfile(src, os.path.join(out, "model.safetensors"))
    else:
        tensors = read_safetensors(src)[0]
        edit_tensors(tensors)
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    io = read_safetensors(os.path.join(fixtures, name, "io.safetensors"))[0]
    io["pixel_values"].to(torch.float32).contiguous().numpy().tofile(os.path.join(out, "pixels.f32"))
    shutil.copyfile(os.path.join(fixtures, name, "io.safetensors"), os.path.join(out, "io.safetensors"))
def cls_patch(c):
    c["vision_feature_select_strategy"] = "cls_patch"
def rotate_positions(t):
    key = "vision_tower._vision_tower.vision_model.embeddings.position_embedding.weight"
    p = t[key]
    t[key] = torch.cat([p[-1:], p[:-1]]).contiguous()  # class token: position N; patch i: position i
folder("tinyllava-siglip-qwen2-tiny", os.path.join(work, "siglip-cls"), cls_patch)
folder("tinyllava-tiny", os.path.join(work, "clip"), lambda c: None)
folder("tinyllava-tiny", os.path.join(work, "clip-cls-last"), cls_patch, rotate_positions)
EOF

status=0
: > "$out_json"
compare() {  # name llamacpp.f32 theirs.safetensors reorder bound(or none)
  REPO="$repo" /usr/bin/python3 - "$@" >> "$out_json" <<'EOF' || status=1
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["REPO"], "tools"))
from safetensors_io import read_safetensors
name, ours, theirs, reorder, bound = sys.argv[1:6]
b = read_safetensors(theirs)[0]["image_features"].numpy().astype(np.float64)
if reorder == "cls-last":  # llama.cpp's rows 1..N of [patch 0..N-1, class]: patches 1..N-1, then the class token
    b = np.concatenate([b[2:], b[:1]])
a = np.fromfile(ours, dtype=np.float32).astype(np.float64).reshape(-1, b.shape[1])
assert a.shape == b.shape, (a.shape, b.shape)
worst = max(float(np.linalg.norm(a[r] - b[r]) / np.linalg.norm(b[r])) for r in range(a.shape[0]))
result = {"comparison": name, "rows": a.shape[0], "width": a.shape[1], "worst_row_rel_diff": worst,
          "rel_diff": float(np.linalg.norm(a - b) / np.linalg.norm(b))}
ok = True
if bound != "none":
    result["bound"] = float(bound)
    ok = worst <= float(bound)
result["ok"] = ok
print(json.dumps(result))
print(json.dumps(result), file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

for quant in f32 f16; do
  case $quant in f32) bound=1e-2 ;; *) bound=2e-2 ;; esac
  for case_name in siglip-cls clip; do
    d="$work/$case_name"
    "$tinyemo" convert --to gguf --quant "$quant" --model "$d" --out "$d/lm.$quant.gguf" --mmproj-out "$d/mmproj.$quant.gguf" > /dev/null
    n=$(REPO="$repo" /usr/bin/python3 -c "
import sys; sys.path.insert(0, '$repo/tools')
from safetensors_io import read_safetensors
print(read_safetensors('$d/io.safetensors')[0]['pixel_values'].shape[-1])")
    if ! LLAMA_BINS="$bins" "$bin" "$d/mmproj.$quant.gguf" "$d/pixels.f32" "$n" "$d/llamacpp.$quant.f32" > /dev/null 2> "$d/llamacpp.$quant.log"; then
      echo "{\"comparison\": \"$case_name.$quant\", \"error\": \"llama.cpp failed: $(tail -1 "$d/llamacpp.$quant.log")\"}" | tee -a "$out_json"
      status=1
      continue
    fi
    "$tinyemo" mm logits --model "$d/lm.$quant.gguf" --mmproj "$d/mmproj.$quant.gguf" --inputs "$d/io.safetensors" \
      --out "$d/tinyemo.$quant.safetensors" > /dev/null 2>&1
    if [ "$case_name" = siglip-cls ]; then
      compare "siglip-cls.$quant: llama.cpp vs tinyemo" "$d/llamacpp.$quant.f32" "$d/tinyemo.$quant.safetensors" none "$bound"
    else
      compare "clip.$quant: llama.cpp vs tinyemo" "$d/llamacpp.$quant.f32" "$d/tinyemo.$quant.safetensors" none none
      sim="$work/clip-cls-last"
      "$tinyemo" mm logits --model "$sim" --inputs "$sim/io.safetensors" --out "$sim/tinyemo.safetensors" > /dev/null 2>&1
      compare "clip.$quant: llama.cpp vs tinyemo simulating its class-token order" "$d/llamacpp.$quant.f32" \
        "$sim/tinyemo.safetensors" cls-last "$bound"
    fi
  done
done
exit $status
