#!/bin/sh
# llama.cpp loads the GGUF files `tinyemo convert` writes and computes what
# tinyemo computes from them (not run by CI; needs npm's node-llama-cpp@3.21.1).
#
#   bench/peers/llamacpp_check.sh [OUT.json]
#
# For every LM fixture (llama, phi, openelm, qwen2, gemma) and f32 / f16 / q8_0
# / q4_0, a random 256-wide LLaMA in q4_k / q5_k / q6_k (k-quant rows need 256),
# and the two gguf-py files with tokenizers in tests/data/lm/llamacpp: tinyemo
# writes the file (llama.cpp layout), llama.cpp's prebuilt libllama computes
# the logits of the fixture's prompt (bench/peers/llamacpp_logits.cpp, built
# here), `tinyemo lm logits` computes them from the same file; prints one JSON
# line per file with the worst row's relative difference and the top-1
# agreement, then checks llama.cpp's tokenizer against tinyemo's on the files
# that carry one. For quantised files tinyemo also computes the exact F32
# logits of the file's dequantised weights (`--dtype f32`), and each engine's
# distance to them is printed: llama.cpp read the same weights when its
# distance is of the size of tinyemo's. Exit status 1 if a file fails to load
# or a difference exceeds its bound (f32: 1e-3 — llama.cpp computes GELU
# through an f16 table, phi and gemma; f16: 2e-3 — llama.cpp rounds the
# activations to f16 before an f16 product; quantised: 3e-2 between the
# engines and to the exact logits — both quantise the activations to 8 bits,
# in other blocks, and sum in other orders).
#
# Environment: TINYEMO (the CLI, default build/tinyemo), LLAMA_BINS (the
# prebuilt libraries), LLAMA_CPP (the llama.cpp source of the same release, for
# its headers: clone node-llama-cpp's llama/gitRelease.bundle), WORK_DIR
# (scratch, default /work/cache/llamacpp-check), TINYEMO_SHARED_DIR.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
tinyemo=${TINYEMO:-$repo/build/tinyemo}
bins=${LLAMA_BINS:-/work/cache/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
src=${LLAMA_CPP:-/work/cache/llama.cpp}
work=${WORK_DIR:-/work/cache/llamacpp-check}
shared=${TINYEMO_SHARED_DIR:-$repo/../shared}
out_json=${1:-$work/llamacpp_check.json}
mkdir -p "$work"
export LLAMA_BINS="$bins"

c++ -std=c++17 -O2 -I"$src/include" -I"$src/ggml/include" "$repo/bench/peers/llamacpp_logits.cpp" \
  -L"$bins" -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$bins" \
  -o "$work/llamacpp_logits"

# A random LLaMA whose rows are multiples of 256 (k-quants), with a prompt.
REPO="$repo" /usr/bin/python3 - "$work/random-llama-256" <<'EOF'
import json, os, sys
import torch
sys.path.insert(0, os.path.join(os.environ["REPO"], "tools"))
from safetensors_io import write_safetensors
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
       "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
       "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "hidden_act": "silu", "rope_theta": 10000.0,
       "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
g = torch.Generator().manual_seed(21)
t = {"model.embed_tokens.weight": torch.randn(512, 256, generator=g) * 0.05,
     "model.norm.weight": 1 + 0.05 * torch.randn(256, generator=g), "lm_head.weight": torch.randn(512, 256, generator=g) * 0.05}
for i in range(2):
    p = f"model.layers.{i}."
    for n, s in [("self_attn.q_proj", (256, 256)), ("self_attn.k_proj", (128, 256)), ("self_attn.v_proj", (128, 256)),
                 ("self_attn.o_proj", (256, 256)), ("mlp.gate_proj", (512, 256)), ("mlp.up_proj", (512, 256)),
                 ("mlp.down_proj", (256, 512))]:
        t[p + n + ".weight"] = torch.randn(*s, generator=g) * 0.05
    t[p + "input_layernorm.weight"] = 1 + 0.05 * torch.randn(256, generator=g)
    t[p + "post_attention_layernorm.weight"] = 1 + 0.05 * torch.randn(256, generator=g)
write_safetensors(os.path.join(d, "model.safetensors"), t)
ids = torch.tensor([1, 17, 300, 5, 99, 511, 42, 7, 250, 3, 64, 128], dtype=torch.int64)
write_safetensors(os.path.join(d, "io.safetensors"), {"input_ids": ids})
EOF

status=0
: > "$out_json"
compare() {  # name gguf ids.safetensors bound
  name=$1 file=$2 io=$3 bound=$4
  "$tinyemo" lm logits --model "$file" --ids "$io" --out "$work/$name.tinyemo.safetensors" > /dev/null
  exact=none
  case $bound in 3e-2)
    exact="$work/$name.exact.safetensors"
    "$tinyemo" lm logits --model "$file" --dtype f32 --ids "$io" --out "$exact" > /dev/null ;;
  esac
  ids=$(REPO="$repo" /usr/bin/python3 -c "
import sys; sys.path.insert(0, '$repo/tools')
from safetensors_io import read_safetensors
print(' '.join(str(int(i)) for i in read_safetensors('$io')[0]['input_ids'].reshape(-1)))")
  if ! "$work/llamacpp_logits" "$file" "$work/$name.llamacpp.f32" $ids 2> "$work/$name.llamacpp.log"; then
    echo "{\"file\": \"$name\", \"error\": \"llama.cpp failed: $(tail -1 "$work/$name.llamacpp.log")\"}" | tee -a "$out_json"
    status=1
    return
  fi
  REPO="$repo" /usr/bin/python3 - "$name" "$work/$name.tinyemo.safetensors" "$work/$name.llamacpp.f32" "$bound" "$exact" \
    >> "$out_json" <<'EOF' || status=1
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["REPO"], "tools"))
from safetensors_io import read_safetensors
name, ours, theirs, bound, exact = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
a = read_safetensors(ours)[0]["logits"].numpy().astype(np.float64)
b = np.fromfile(theirs, dtype=np.float32).astype(np.float64).reshape(a.shape[0], -1)
assert b.shape == a.shape, (a.shape, b.shape)
def worst(x, ref):  # the worst row's ||x - ref|| / ||ref||
    return max(float(np.linalg.norm(x[r] - ref[r]) / np.linalg.norm(ref[r])) for r in range(x.shape[0]))
diff = worst(a, b)
top1 = float(np.mean(a.argmax(1) == b.argmax(1)))
result = {"file": name, "positions": a.shape[0], "vocab": a.shape[1], "worst_row_rel_diff": diff,
          "top1_agreement": top1, "bound": bound}
ok = diff <= bound
if exact != "none":
    e = read_safetensors(exact)[0]["logits"].numpy().astype(np.float64)
    result["llamacpp_vs_exact"], result["tinyemo_vs_exact"] = worst(b, e), worst(a, e)
    ok = ok and result["llamacpp_vs_exact"] <= bound
result["ok"] = bool(ok)
print(json.dumps(result))
print(json.dumps(result), file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

for fixture in llama-tiny phi-tiny openelm-tiny qwen2-tiny gemma-tiny; do
  for quant in f32 f16 q8_0 q4_0; do
    file="$work/$fixture.$quant.gguf"
    "$tinyemo" convert --to gguf --quant "$quant" --model "$shared/fixtures/$fixture" --out "$file" > /dev/null
    case $quant in f32) bound=1e-3 ;; f16) bound=2e-3 ;; *) bound=3e-2 ;; esac
    compare "$fixture.$quant" "$file" "$shared/fixtures/$fixture/io.safetensors" "$bound"
  done
done
for quant in q4_k q5_k q6_k q8_0 f32; do
  file="$work/random-llama-256.$quant.gguf"
  "$tinyemo" convert --to gguf --quant "$quant" --model "$work/random-llama-256" --out "$file" > /dev/null
  case $quant in f32) bound=1e-3 ;; *) bound=3e-2 ;; esac
  compare "random-llama-256.$quant" "$file" "$work/random-llama-256/io.safetensors" "$bound"
done
for f in llama-tiny phi-tiny; do
  compare "gguf-py.$f.q8_0" "$repo/tests/data/lm/llamacpp/$f.q8_0.gguf" "$shared/fixtures/$f/io.safetensors" 3e-2
done

# Tokenizers: llama.cpp's ids for texts against tinyemo's, on the files that carry one
# (llama.cpp parses special tokens in the text, as tinyemo's tokenizers do).
for f in "$repo/tests/data/lm/llamacpp/llama-tiny.q8_0.gguf" "$repo/tests/data/lm/llamacpp/phi-tiny.q8_0.gguf"; do
  for text in "Hello world" "The quick brown fox jumps over the lazy dog." "  two  spaces and	tabs" \
              "numbers 12345 and 3.14" "joy, sadness, anger & fear!" "caf$(printf '\303\251') $(printf '\360\237\230\200')"; do
    theirs=$("$work/llamacpp_logits" "$f" --tokenize "$text" 2> /dev/null)
    ours=$("$tinyemo" tokenize --tokenizer "$f" --text "$text" --add-special)
    same=true
    [ "$theirs" = "$ours" ] || { same=false; status=1; }
    text_json=$(printf '%s' "$text" | sed 's/\\/\\\\/g; s/"/\\"/g; s/\t/\\t/g')  # JSON string escapes
    printf '{"tokenizer": "%s", "text": "%s", "same": %s, "llama.cpp": "%s", "tinyemo": "%s"}\n' \
      "$(basename "$f")" "$text_json" "$same" "$theirs" "$ours" | tee -a "$out_json"
  done
done
echo "results: $out_json" >&2
exit $status
