"""llama.cpp-layout GGUF references for tests/lm/gguf_llamacpp_test.cpp, made
with llama.cpp's own Python writer (gguf-py, from the llama.cpp source that
npm's node-llama-cpp@3.21.1 carries; clone its llama/gitRelease.bundle to
LLAMA_CPP, default /work/cache/llama.cpp).

    /usr/bin/python3 tools/llamacpp_gguf_reference.py make tests/data/lm/llamacpp

The tensors and keys follow convert_hf_to_gguf.py (conversion/{llama,phi,
openelm,qwen,gemma}.py) for the five families, transcribed here without
transformers: LlamaModel.permute on q/k, Gemma's norm + 1, OpenELM's proj_1
split into ffn_gate / ffn_up, Phi-2's keys (feed_forward_length 4 n_embd,
rope dimension int(rot_pct n_embd) // n_head, add_bos false), TextModel's
generic keys.

Writes, per shared fixture <f>-tiny (llama, phi, openelm, qwen2, gemma):
  <f>-tiny.json   the F32 file's metadata (every key gguf-py wrote but general.name
                  and the tokenizer) and, per tensor, its shape (PyTorch order), ggml
                  type and the CRC-32 of its bytes: what tinyemo's writer must
                  produce, and so what its reader reads;
and two whole files with tokenizers (kept small: Q8_0 matrices):
  llama-tiny.q8_0.gguf   SentencePiece ("llama") tokenizer trained here with the
                         python sentencepiece module on tests/data/tokenizers/spm_corpus.txt
                         (BPE, byte fallback, 320 pieces = the fixture's vocabulary);
  phi-tiny.q8_0.gguf     byte-level BPE ("gpt2", pre "phi-2"): 256 byte tokens, 43
                         merges learnt here on the same corpus, <|endoftext|> (300 = the
                         fixture's vocabulary);
  tokenizer_cases.json   texts and the ids python sentencepiece / a transcription of
                         OpenAI's GPT-2 bpe() give for them.
"""
import json
import os
import re
import sys
import tempfile
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.environ.get("LLAMA_CPP", "/work/cache/llama.cpp"), "gguf-py"))
import gguf  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "..", "shared", "fixtures")
CORPUS = os.path.join(HERE, "..", "tests", "data", "tokenizers", "spm_corpus.txt")


def permute(w, n_head):  # LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


LLAMA_NAMES = [("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
               ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
               ("post_attention_layernorm", "ffn_norm"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
               ("mlp.down_proj", "ffn_down"), ("self_attn.dense", "attn_output"), ("mlp.fc1", "ffn_up"),
               ("mlp.fc2", "ffn_down")]
GLOBAL_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
                "model.final_layernorm": "output_norm", "transformer.token_embeddings": "token_embd",
                "transformer.norm": "output_norm"}
OPENELM_NAMES = [("attn_norm", "attn_norm"), ("attn.qkv_proj", "attn_qkv"), ("attn.q_norm", "attn_q_norm"),
                 ("attn.k_norm", "attn_k_norm"), ("attn.out_proj", "attn_output"), ("ffn_norm", "ffn_norm"),
                 ("ffn.proj_2", "ffn_down")]


def map_name(name):
    base, suffix = name.rsplit(".", 1)
    if base in GLOBAL_NAMES:
        return GLOBAL_NAMES[base] + "." + suffix
    m = re.match(r"(model|transformer)\.layers\.(\d+)\.(.*)", base)
    assert m, name
    table = OPENELM_NAMES if m.group(1) == "transformer" else LLAMA_NAMES
    for hf, ll in table:
        if m.group(3) == hf:
            return f"blk.{m.group(2)}.{ll}.{suffix}"
    raise KeyError(name)


def make_divisible(v, divisor):  # OpenELMModel._make_divisible
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def convert(fixture, writer, tensor_type=None):
    """convert_hf_to_gguf.py's keys and tensors for one fixture into `writer`."""
    cfg = json.load(open(os.path.join(FIXTURES, fixture, "config.json")))
    tensors, _ = read_safetensors(os.path.join(FIXTURES, fixture, "model.safetensors"))
    arch = cfg["architectures"][0]
    w = writer
    out = []
    if arch in ("LlamaForCausalLM", "Qwen2ForCausalLM"):
        # TextModel.set_gguf_parameters (+ LlamaModel: vocab size, rope dimension)
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(cfg["hidden_size"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(cfg["num_attention_heads"])
        w.add_head_count_kv(cfg["num_key_value_heads"])
        w.add_rope_freq_base(cfg["rope_theta"])
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_file_type(0)
        if arch == "LlamaForCausalLM":
            w.add_vocab_size(cfg["vocab_size"])
            w.add_rope_dimension_count(cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"]))
        for name, t in tensors.items():
            if arch == "LlamaForCausalLM" and re.search(r"(q_proj|k_proj)\.(weight|bias)$", name):
                n = cfg["num_attention_heads"] if "q_proj" in name else cfg["num_key_value_heads"]
                t = permute(t, n)
            out.append((map_name(name), t))
    elif arch == "GemmaForCausalLM":
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(cfg["hidden_size"])
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(cfg["num_attention_heads"])
        w.add_head_count_kv(cfg["num_key_value_heads"])
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
        w.add_file_type(0)
        for name, t in tensors.items():
            if name == "lm_head.weight":
                continue
            if name.endswith("norm.weight"):
                t = t + 1
            out.append((map_name(name), t))
    elif arch == "PhiForCausalLM":
        n_embd, n_head = cfg["hidden_size"], cfg["num_attention_heads"]
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(n_embd)
        w.add_feed_forward_length(4 * n_embd)
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_head_count(n_head)
        w.add_head_count_kv(n_head)
        w.add_layer_norm_eps(cfg["layer_norm_eps"])
        w.add_rope_dimension_count(int(cfg["partial_rotary_factor"] * n_embd) // n_head)
        w.add_file_type(0)
        w.add_add_bos_token(False)
        for name, t in tensors.items():
            out.append((map_name(name), t))
    elif arch == "OpenELMForCausalLM":
        n_embd, head_dim = cfg["model_dim"], cfg["head_dim"]
        ffn_dims = [make_divisible(m * n_embd, cfg["ffn_dim_divisor"]) for m in
                    (cfg["ffn_multipliers"] if len(cfg["ffn_multipliers"]) == cfg["num_transformer_layers"] else
                     [round(cfg["ffn_multipliers"][0] + (cfg["ffn_multipliers"][1] - cfg["ffn_multipliers"][0]) * i
                            / (cfg["num_transformer_layers"] - 1), 2) for i in range(cfg["num_transformer_layers"])])]
        w.add_block_count(cfg["num_transformer_layers"])
        w.add_context_length(cfg["max_context_length"])
        w.add_embedding_length(n_embd)
        w.add_feed_forward_length(ffn_dims)
        w.add_head_count(cfg["num_query_heads"])
        w.add_head_count_kv(cfg["num_kv_heads"])
        w.add_rope_freq_base(cfg["rope_freq_constant"])
        w.add_layer_norm_rms_eps(1e-6)
        w.add_rope_dimension_count(head_dim)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_file_type(0)
        for name, t in tensors.items():
            m = re.match(r"transformer\.layers\.(\d+)\.ffn\.proj_1\.weight", name)
            if m:
                i, ff = int(m.group(1)), ffn_dims[int(m.group(1))]
                assert t.shape[0] == 2 * ff, (name, t.shape, ff)
                out.append((f"blk.{i}.ffn_gate.weight", t[:ff]))
                out.append((f"blk.{i}.ffn_up.weight", t[ff:]))
            else:
                out.append((map_name(name), t))
    else:
        raise ValueError(arch)
    for name, t in out:
        a = t.contiguous().numpy().astype(np.float32)
        if tensor_type is not None and a.ndim == 2 and a.shape[1] % 32 == 0:
            q = gguf.quants.quantize(a, tensor_type)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=tensor_type)
        else:
            w.add_tensor(name, a)
    return cfg


def write(writer, path):
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def manifest(path):
    r = gguf.GGUFReader(path)
    meta = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name.startswith("tokenizer.") or f.name == "general.name":
            continue
        v = f.contents()
        meta[f.name] = v
    tensors = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]
        tensors[t.name] = {"shape": shape, "type": t.tensor_type.name,
                           "crc32": zlib.crc32(bytes(t.data.tobytes()))}
    return {"metadata": meta, "tensors": tensors}


# ---- tokenizers -------------------------------------------------------------------

def train_spm(vocab_size):
    import sentencepiece as spm
    d = tempfile.mkdtemp()
    spm.SentencePieceTrainer.Train(
        input=CORPUS, model_prefix=os.path.join(d, "m"), model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", character_coverage=1.0, num_threads=1, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=os.path.join(d, "m.model"))


def bytes_to_unicode():  # GPT-2's table
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# GPT-2's pattern on ASCII text (\p{L} = letters, \p{N} = digits there).
GPT2_ASCII = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def learn_bpe(n_merges):
    b2u = bytes_to_unicode()
    words = {}
    for piece in GPT2_ASCII.findall(open(CORPUS, encoding="ascii", errors="ignore").read()):
        key = tuple(b2u[b] for b in piece.encode())
        words[key] = words.get(key, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + count
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = {}
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + count
        words = new
    return merges


def bpe_encode(text, vocab, merges):
    """OpenAI's encoder.py bpe(): lowest-ranked pair first, all occurrences."""
    b2u = bytes_to_unicode()
    ranks = {m: i for i, m in enumerate(merges)}
    ids = []
    for piece in GPT2_ASCII.findall(text):
        word = [b2u[b] for b in piece.encode()]
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        ids += [vocab[t] for t in word]
    return ids


TEXTS = ["Hello world", "The quick brown fox jumps over the lazy dog.", "  two  spaces and\ttabs\n",
         "numbers 12345 and 3.14", "joy, sadness, anger & fear!", "emotional reasoning"]


def make(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for fixture in ["llama-tiny", "phi-tiny", "openelm-tiny", "qwen2-tiny", "gemma-tiny"]:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "f32.gguf")
            cfg = json.load(open(os.path.join(FIXTURES, fixture, "config.json")))
            arch = {"LlamaForCausalLM": "llama", "PhiForCausalLM": "phi2", "OpenELMForCausalLM": "openelm",
                    "Qwen2ForCausalLM": "qwen2", "GemmaForCausalLM": "gemma"}[cfg["architectures"][0]]
            w = gguf.GGUFWriter(path, arch)
            convert(fixture, w)
            write(w, path)
            m = manifest(path)
        with open(os.path.join(out_dir, fixture + ".json"), "w") as f:
            json.dump(m, f, indent=1, sort_keys=True, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x))

    cases = {}
    # LLaMA with a SentencePiece tokenizer.
    sp = train_spm(320)
    w = gguf.GGUFWriter(os.path.join(out_dir, "llama-tiny.q8_0.gguf"), "llama")
    convert("llama-tiny", w, gguf.GGMLQuantizationType.Q8_0)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i).encode())
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else
                     5 if sp.is_unused(i) else 1)
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    write(w, os.path.join(out_dir, "llama-tiny.q8_0.gguf"))
    cases["llama-tiny.q8_0.gguf"] = [{"text": t, "ids": [1] + sp.encode(t)} for t in TEXTS]

    # Phi with a byte-level BPE tokenizer.
    b2u = bytes_to_unicode()
    merges = learn_bpe(300 - 256 - 1)
    vocab = {b2u[b]: b for b in range(256)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    assert len(vocab) == 299, len(vocab)
    tokens = [None] * 300
    for t, i in vocab.items():
        tokens[i] = t
    tokens[299] = "<|endoftext|>"
    w = gguf.GGUFWriter(os.path.join(out_dir, "phi-tiny.q8_0.gguf"), "phi2")
    convert("phi-tiny", w, gguf.GGMLQuantizationType.Q8_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("phi-2")
    w.add_token_list(tokens)
    w.add_token_types([1] * 299 + [3])
    w.add_token_merges([a + " " + b for a, b in merges])
    w.add_bos_token_id(299)
    w.add_eos_token_id(299)
    write(w, os.path.join(out_dir, "phi-tiny.q8_0.gguf"))
    cases["phi-tiny.q8_0.gguf"] = [{"text": t, "ids": bpe_encode(t, vocab, merges)} for t in TEXTS]
    cases["phi-tiny.q8_0.gguf"].append({"text": "end<|endoftext|>", "ids": bpe_encode("end", vocab, merges) + [299]})
    with open(os.path.join(out_dir, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "make":
        sys.exit(__doc__)
    make(sys.argv[2])
