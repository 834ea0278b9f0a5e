#!/bin/sh
# llama.cpp's multimodal generation path (image + prompt -> generated ids) on
# the pairs `tinyemo convert --mmproj-out` writes, against tinyemo's own greedy
# generation from the same pair (not run by CI; needs npm's
# node-llama-cpp@3.21.1 for the prebuilt ggml and libllama, and the llama.cpp
# source of the same release, whose tools/mtmd is compiled here once with
# bench/peers/mtmd_generate.cpp).
#
#   bench/peers/mtmd_generate.sh [OUT.json]
#
# The driver does what llama-mtmd-cli does through the public API:
# mtmd_init_from_file, mtmd_tokenize (the media marker with one bitmap), the
# image chunk decoded with mtmd_helper_decode_image_chunk, the text around it
# with llama_decode, then greedy decoding with libllama's greedy sampler. Both
# engines get the same pixel values (the fixture's pixel_values, encoded by
# llama.cpp's clip_image_encode and injected at the image chunk, so mtmd's
# resize / normalise is not compared) and the same prompt: the fixture's
# input_ids (the fixture LMs carry no vocabulary, tokenizer.ggml.model "none",
# so no text prompt can be tokenized; -200 where the image goes). tinyemo:
# `tinyemo mm generate --mmproj --inputs --greedy --ignore-eos --json` for the
# ids, `tinyemo mm logits --mmproj` for the first step's logits. Pairs:
#   - siglip-cls: tinyllava-siglip-qwen2-tiny with cls_patch (the pair
#     llama.cpp's llava graph computes as tinyemo does), f32 and f16 mmproj;
#   - clip: tinyllava-tiny (CLIP, patch), f32: llama.cpp's release puts the
#     class token after the patches (ggml-org/llama.cpp#25814), so its image
#     rows differ and the ids are expected to diverge (reported, not failed).
# One JSON line per pair: both id lists, the first index where they differ
# (null: none), the first generated step's logits difference (max |a - b| and
# ||a - b|| / ||b||) and whether both pick the same first token. Exit status 1
# if llama.cpp fails to load a pair or a siglip-cls pair's ids differ.
#
# Environment: TINYEMO (default build/tinyemo), LLAMA_BINS, LLAMA_CPP,
# WORK_DIR (default /work/cache/mtmd-generate), CLIP_OBJ (llama.cpp's clip.cpp
# and models/*.cpp objects, shared with mmproj_check.sh, default
# /work/cache/mmproj-check/obj), N_PREDICT (default 16), TINYEMO_SHARED_DIR.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
tinyemo=${TINYEMO:-$repo/build/tinyemo}
bins=${LLAMA_BINS:-/work/cache/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
src=${LLAMA_CPP:-/work/cache/llama.cpp}
work=${WORK_DIR:-/work/cache/mtmd-generate}
clip_obj=${CLIP_OBJ:-/work/cache/mmproj-check/obj}
shared=${TINYEMO_SHARED_DIR:-$repo/../shared}
n_predict=${N_PREDICT:-16}
out_json=${1:-$work/mtmd_generate.json}
mkdir -p "$work/obj" "$clip_obj"
export LLAMA_BINS="$bins"

# llama.cpp's mtmd (clip + models shared with mmproj_check.sh; mtmd, its helper,
# image and audio code here), built once, two compilers at a time.
bin="$work/mtmd_generate"
if [ ! -x "$bin" ] || [ "$repo/bench/peers/mtmd_generate.cpp" -nt "$bin" ]; then
  flags="-std=c++17 -O2 -w -I$src/include -I$src/ggml/include -I$src/tools/mtmd"
  (cd "$src/tools/mtmd" && ls clip.cpp models/*.cpp) | SRC="$src" OBJ="$clip_obj" FLAGS="$flags" xargs -P 2 -I{} sh -c \
    'o="$OBJ/$(echo {} | tr / _).o"; [ -f "$o" ] || c++ $FLAGS -c "$SRC/tools/mtmd/{}" -o "$o"'
  printf '%s\n' mtmd.cpp mtmd-helper.cpp mtmd-image.cpp mtmd-audio.cpp |
    SRC="$src" OBJ="$work/obj" FLAGS="$flags -I$src/vendor" xargs -P 2 -I{} sh -c \
    'o="$OBJ/$(echo {} | tr / _).o"; [ -f "$o" ] || c++ $FLAGS -c "$SRC/tools/mtmd/{}" -o "$o"'
  # mtmd's helper names bitmaps by their SHA-256 (vendor/hash).
  [ -f "$work/obj/hash.cpp.o" ] || c++ $flags -I"$src/vendor/hash" -c "$src/vendor/hash/hash.cpp" -o "$work/obj/hash.cpp.o"
  [ -f "$work/obj/sha256.c.o" ] || cc -O2 -w -I"$src/vendor/hash" -c "$src/vendor/hash/sha256/sha256.c" -o "$work/obj/sha256.c.o"
  c++ $flags "$repo/bench/peers/mtmd_generate.cpp" "$work"/obj/*.o "$clip_obj"/*.o -L"$bins" \
    -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$bins" -lpthread -ldl -o "$bin"
fi

# llama.cpp's own llama-mtmd-cli, linked against the prebuilt libllama-common
# (built for pairs with a vocabulary; the fixtures' LMs have none, and
# libllama aborts tokenizing its prompt). ggml_backend_load_all() looks for
# the CPU backends beside the binary and in the working directory, so run it
# from $bins: (cd "$bins" && "$work/llama-mtmd-cli" -m LM --mmproj MMPROJ --image X -p ... --temp 0).
cli="$work/llama-mtmd-cli"
if [ -f "$bins/libllama-common.so" ] && { [ ! -x "$cli" ] || [ "$src/tools/mtmd/mtmd-cli.cpp" -nt "$cli" ]; }; then
  c++ -std=c++17 -O2 -w -I"$src/include" -I"$src/ggml/include" -I"$src/tools/mtmd" -I"$src/common" -I"$src/vendor" \
    "$src/tools/mtmd/mtmd-cli.cpp" "$work"/obj/*.o "$clip_obj"/*.o -L"$bins" -l:libllama-common.so \
    -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$bins" -lpthread -ldl -o "$cli" ||
    echo "mtmd_generate.sh: llama-mtmd-cli did not build (the driver does not need it)" >&2
fi

# Folders: the SigLIP fixture with cls_patch; the CLIP fixture as it is.
REPO="$repo" /usr/bin/python3 - "$shared/fixtures" "$work" <<'EOF'
import json, os, shutil, sys
import torch
sys.path.insert(0, os.path.join(os.environ["REPO"], "tools"))
from safetensors_io import read_safetensors
fixtures, work = sys.argv[1], sys.argv[2]
def folder(name, out, edit_config):
    os.makedirs(out, exist_ok=True)
    config = json.load(open(os.path.join(fixtures, name, "config.json")))
    edit_config(config)
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    shutil.copyfile(os.path.join(fixtures, name, "model.safetensors"), os.path.join(out, "model.safetensors"))
    io = read_safetensors(os.path.join(fixtures, name, "io.safetensors"))[0]
    io["pixel_values"].to(torch.float32).contiguous().numpy().tofile(os.path.join(out, "pixels.f32"))
    shutil.copyfile(os.path.join(fixtures, name, "io.safetensors"), os.path.join(out, "io.safetensors"))
    with open(os.path.join(out, "prompt.txt"), "w") as f:  # ids: for the driver, N
        f.write("ids:" + ",".join(str(int(i)) for i in io["input_ids"].reshape(-1).tolist()) + "\n")
        f.write(str(io["pixel_values"].shape[-1]) + "\n")
def cls_patch(c):
    c["vision_feature_select_strategy"] = "cls_patch"
folder("tinyllava-siglip-qwen2-tiny", os.path.join(work, "siglip-cls"), cls_patch)
folder("tinyllava-tiny", os.path.join(work, "clip"), lambda c: None)
EOF

status=0
: > "$out_json"
for pair in siglip-cls.f32 siglip-cls.f16 clip.f32; do
  case_name=${pair%.*}
  quant=${pair#*.}
  d="$work/$case_name"
  "$tinyemo" convert --to gguf --quant "$quant" --model "$d" --out "$d/lm.$quant.gguf" --mmproj-out "$d/mmproj.$quant.gguf" > /dev/null
  prompt=$(sed -n 1p "$d/prompt.txt")
  n=$(sed -n 2p "$d/prompt.txt")
  if ! "$bin" "$d/lm.$quant.gguf" "$d/mmproj.$quant.gguf" "$n_predict" "$prompt" "pixels:$d/pixels.f32:$n" \
      "$d/llamacpp.$quant.logits.f32" > "$d/llamacpp.$quant.json" 2> "$d/llamacpp.$quant.log"; then
    echo "{\"pair\": \"$pair\", \"error\": \"llama.cpp failed: $(tail -1 "$d/llamacpp.$quant.log" | tr -d '"\\')\"}" | tee -a "$out_json"
    status=1
    continue
  fi
  "$tinyemo" mm generate --model "$d/lm.$quant.gguf" --mmproj "$d/mmproj.$quant.gguf" --inputs "$d/io.safetensors" \
    --greedy --ignore-eos --max-new-tokens "$n_predict" --json > "$d/tinyemo.$quant.json"
  "$tinyemo" mm logits --model "$d/lm.$quant.gguf" --mmproj "$d/mmproj.$quant.gguf" --inputs "$d/io.safetensors" \
    --out "$d/tinyemo.$quant.safetensors" > /dev/null 2>&1
  REPO="$repo" /usr/bin/python3 - "$pair" "$d/llamacpp.$quant.json" "$d/tinyemo.$quant.json" \
      "$d/llamacpp.$quant.logits.f32" "$d/tinyemo.$quant.safetensors" >> "$out_json" <<'EOF' || status=1
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["REPO"], "tools"))
from safetensors_io import read_safetensors
pair, ours_json, theirs_json, ours_logits, theirs_logits = sys.argv[1:6]
a, b = json.load(open(ours_json)), json.load(open(theirs_json))
ia, ib = a["ids"], b["ids"]
first = next((i for i in range(min(len(ia), len(ib))) if ia[i] != ib[i]), None if len(ia) == len(ib) else min(len(ia), len(ib)))
la = np.fromfile(ours_logits, dtype=np.float32).astype(np.float64)
lb = read_safetensors(theirs_logits)[0]["logits"].numpy().astype(np.float64)[-1]  # the last prompt position
assert la.shape == lb.shape, (la.shape, lb.shape)
expected = pair.startswith("siglip-cls")
result = {"pair": pair, "llamacpp_ids": ia, "tinyemo_ids": ib, "first_divergence": first,
          "llamacpp_text": a["text"], "image_tokens": a["image_tokens"], "prompt_positions": a["prompt_positions"],
          "tinyemo_prompt_positions": b["prompt_positions"],
          "first_step_logits": {"max_abs_diff": float(np.max(np.abs(la - lb))),
                                "rel_diff": float(np.linalg.norm(la - lb) / np.linalg.norm(lb)),
                                "same_argmax": bool(np.argmax(la) == np.argmax(lb))},
          "expected_same": expected, "ok": (first is None) or not expected}
if not expected:
    result["note"] = "CLIP tower: llama.cpp's release reorders the class token (ggml-org/llama.cpp#25814)"
print(json.dumps(result))
print(json.dumps(result), file=sys.stderr)
sys.exit(0 if result["ok"] else 1)
EOF
done
exit $status
