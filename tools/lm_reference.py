#!/usr/bin/env python3
"""Reference decoder-LM forward passes in PyTorch, written from the semantics of
Hugging Face's LlamaForCausalLM / PhiForCausalLM / Qwen2ForCausalLM /
GemmaForCausalLM and Apple's OpenELMForCausalLM (modeling_openelm.py), for
fixtures beyond ../shared/fixtures.

  python3 tools/lm_reference.py check              # reproduces the shared fixtures
  python3 tools/lm_reference.py make tests/data/lm # writes the variant fixtures
  python3 tools/lm_reference.py bf16 tests/data/lm/bf16-reference
                                                   # the shared fixtures' prompts on their BF16 weights

Each variant folder holds config.json, model.safetensors (F32) and
io.safetensors in the shared fixtures' layout (input_ids, logits, greedy_ids,
inserted_embeds, logits_with_inserted_embeds, inserted_at in the metadata).
Variants cover what the shared fixtures do not: longer prompts, other RoPE
bases, linear and llama3 RoPE scaling, tied LLaMA output, attention biases, GQA groups of
3, Phi q/k LayerNorm with GQA, OpenELM without GLU, q/k norms or tied output,
untied Qwen2 with RoPE scaling, Gemma with a non-square hidden size, biases,
untied output and hidden_act "gelu" (ignored: the tanh GELU runs).
Needs torch (1.13 is enough) and numpy; never run by the tests.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures")


# ----------------------------------------------------------------------------- safetensors
def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    types = {"F32": np.float32, "I64": np.int64, "BF16": None, "F16": np.float16}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        s, t = e["data_offsets"]
        raw = data[8 + n + s : 8 + n + t]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=types[e["dtype"]])
        out[name] = torch.from_numpy(arr.copy().reshape(e["shape"]))
    return out, header.get("__metadata__", {})


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        a = t.detach().contiguous().numpy()
        dtype = {np.float32: "F32", np.int64: "I64"}[a.dtype.type]
        b = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ----------------------------------------------------------------------------- building blocks
def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def scaled_inv_freq(inv_freq, scaling):
    """transformers' rope_scaling: linear divides every frequency; llama3 divides
    the long wavelengths and smooths the band between; dynamic changes nothing
    within max_position_embeddings."""
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        return torch.where(medium, smoothed, scaled)
    return inv_freq


def rope(x, positions, dim, base, scaling=None):
    """x: [heads, T, head_dim]; rotates the first `dim` dims (rotate-half)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    inv_freq = scaled_inv_freq(inv_freq, scaling or {})
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    rot, rest = x[..., :dim], x[..., dim:]
    rot = rot * cos + rotate_half(rot) * sin
    return torch.cat((rot, rest), dim=-1)


def causal_attention(q, k, v):
    """q: [nq, T, d], k/v: [nkv, T, d]; query head h uses kv head h // (nq / nkv)."""
    groups = q.shape[0] // k.shape[0]
    k = k.repeat_interleave(groups, dim=0)
    v = v.repeat_interleave(groups, dim=0)
    T = q.shape[1]
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1) @ v


def act(name):
    if name in ("silu", "swish"):
        return torch.nn.functional.silu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    if name == "gelu":
        return torch.nn.functional.gelu
    raise ValueError(name)


# ----------------------------------------------------------------------------- models
def llama_family_forward(cfg, W, x, qkv_bias, o_bias, f, norm_offset=0.0, input_scale=None, tied=False):
    """LLaMA's block; Qwen2 and Gemma differ only in the arguments."""
    H, nq = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nq)
    hd = cfg.get("head_dim", H // nq)
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = x.shape[0]
    pos = torch.arange(T)
    scaling = cfg.get("rope_scaling") or {}
    theta = cfg.get("rope_theta", 10000.0)

    def lin(name, v, has_bias=False):
        y = v @ W[name + ".weight"].T
        return y + W[name + ".bias"] if has_bias else y

    def norm(name, v):
        return rms_norm(v, norm_offset + W[name + ".weight"], eps)

    if input_scale is not None:
        x = x * torch.tensor(input_scale, dtype=x.dtype)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = norm(p + "input_layernorm", x)
        q = lin(p + "self_attn.q_proj", h, qkv_bias).view(T, nq, hd).transpose(0, 1)
        k = lin(p + "self_attn.k_proj", h, qkv_bias).view(T, nkv, hd).transpose(0, 1)
        v = lin(p + "self_attn.v_proj", h, qkv_bias).view(T, nkv, hd).transpose(0, 1)
        q, k = rope(q, pos, hd, theta, scaling), rope(k, pos, hd, theta, scaling)
        a = causal_attention(q, k, v).transpose(0, 1).reshape(T, nq * hd)
        x = x + lin(p + "self_attn.o_proj", a, o_bias)
        h = norm(p + "post_attention_layernorm", x)
        m = f(lin(p + "mlp.gate_proj", h)) * lin(p + "mlp.up_proj", h)
        x = x + lin(p + "mlp.down_proj", m)
    x = norm("model.norm", x)
    head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]
    return x @ head.T


def llama_forward(cfg, W, x):
    bias = cfg.get("attention_bias", False)
    return llama_family_forward(cfg, W, x, bias, bias, act(cfg["hidden_act"]),
                                tied=cfg.get("tie_word_embeddings", False))


def qwen2_forward(cfg, W, x):
    """Qwen2ForCausalLM: biases on q/k/v always, none on o_proj (no sliding window)."""
    assert not cfg.get("use_sliding_window", False)
    return llama_family_forward(cfg, W, x, True, False, act(cfg["hidden_act"]),
                                tied=cfg.get("tie_word_embeddings", False))


def gemma_forward(cfg, W, x):
    """GemmaForCausalLM (Gemma 1): inputs times sqrt(hidden) (the normalizer in the
    hidden dtype, F32 here), RMSNorm by (1 + weight), GeGLU with hidden_activation
    (gelu_pytorch_tanh when absent, hidden_act ignored, as transformers 4.39-4.47),
    explicit head_dim, q/k/v/o biases when attention_bias, tied output by default."""
    bias = cfg.get("attention_bias", False)
    f = act(cfg.get("hidden_activation") or "gelu_pytorch_tanh")
    return llama_family_forward(cfg, W, x, bias, bias, f, norm_offset=1.0, input_scale=cfg["hidden_size"] ** 0.5,
                                tied=cfg.get("tie_word_embeddings", True))


def phi_forward(cfg, W, x):
    H, nq = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nq)
    hd = H // nq
    rd = int(hd * cfg["partial_rotary_factor"])
    eps = cfg["layer_norm_eps"]
    T = x.shape[0]
    pos = torch.arange(T)
    f = act(cfg["hidden_act"])

    def lin(name, v):
        return v @ W[name + ".weight"].T + W[name + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
        q = lin(p + "self_attn.q_proj", h).view(T, nq, hd).transpose(0, 1)
        k = lin(p + "self_attn.k_proj", h).view(T, nkv, hd).transpose(0, 1)
        v = lin(p + "self_attn.v_proj", h).view(T, nkv, hd).transpose(0, 1)
        if cfg.get("qk_layernorm", False):
            q = layer_norm(q, W[p + "self_attn.q_layernorm.weight"], W[p + "self_attn.q_layernorm.bias"], eps)
            k = layer_norm(k, W[p + "self_attn.k_layernorm.weight"], W[p + "self_attn.k_layernorm.bias"], eps)
        q, k = rope(q, pos, rd, cfg["rope_theta"]), rope(k, pos, rd, cfg["rope_theta"])
        a = causal_attention(q, k, v).transpose(0, 1).reshape(T, nq * hd)
        attn = lin(p + "self_attn.dense", a)
        mlp = lin(p + "mlp.fc2", f(lin(p + "mlp.fc1", h)))
        x = attn + mlp + x
    x = layer_norm(x, W["model.final_layernorm.weight"], W["model.final_layernorm.bias"], eps)
    return x @ W["lm_head.weight"].T + W["lm_head.bias"]


def openelm_forward(cfg, W, x):
    hd = cfg["head_dim"]
    T = x.shape[0]
    pos = torch.arange(T)
    f = act(cfg["activation_fn_name"])
    eps = 1e-6
    for i in range(cfg["num_transformer_layers"]):
        p = f"transformer.layers.{i}."
        nq, nkv = cfg["num_query_heads"][i], cfg["num_kv_heads"][i]
        h = rms_norm(x, W[p + "attn_norm.weight"], eps)
        qkv = (h @ W[p + "attn.qkv_proj.weight"].T).view(T, nq + 2 * nkv, hd).transpose(0, 1)
        q, k, v = qkv.split([nq, nkv, nkv], dim=0)
        if cfg.get("normalize_qk_projections", False):
            q = rms_norm(q, W[p + "attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "attn.k_norm.weight"], eps)
        q, k = rope(q, pos, hd, cfg["rope_freq_constant"]), rope(k, pos, hd, cfg["rope_freq_constant"])
        a = causal_attention(q, k, v).transpose(0, 1).reshape(T, nq * hd)
        x = x + a @ W[p + "attn.out_proj.weight"].T
        h = rms_norm(x, W[p + "ffn_norm.weight"], eps)
        y = h @ W[p + "ffn.proj_1.weight"].T
        if cfg.get("ffn_with_glu", True):
            y1, y2 = y.chunk(2, dim=-1)
            y = f(y1) * y2
        else:
            y = f(y)
        x = x + y @ W[p + "ffn.proj_2.weight"].T
    x = rms_norm(x, W["transformer.norm.weight"], eps)
    head = W["transformer.token_embeddings.weight"] if cfg.get("share_input_output_layers") else W["lm_head.weight"]
    return x @ head.T


FORWARD = {"LlamaForCausalLM": llama_forward, "PhiForCausalLM": phi_forward, "OpenELMForCausalLM": openelm_forward,
           "Qwen2ForCausalLM": qwen2_forward, "GemmaForCausalLM": gemma_forward}
EMBED = {"LlamaForCausalLM": "model.embed_tokens.weight", "PhiForCausalLM": "model.embed_tokens.weight",
         "OpenELMForCausalLM": "transformer.token_embeddings.weight", "Qwen2ForCausalLM": "model.embed_tokens.weight",
         "GemmaForCausalLM": "model.embed_tokens.weight"}


def run(cfg, W, ids=None, embeds=None):
    arch = cfg["architectures"][0]
    x = W[EMBED[arch]][ids] if embeds is None else embeds
    with torch.no_grad():
        return FORWARD[arch](cfg, W, x)


def greedy(cfg, W, ids, n):
    ids = list(ids)
    out = []
    for _ in range(n):
        nxt = int(run(cfg, W, torch.tensor(ids))[-1].argmax())
        out.append(nxt)
        ids.append(nxt)
    return out


def spliced(cfg, W, ids, at, rows):
    e = W[EMBED[cfg["architectures"][0]]]
    return torch.cat([e[ids[:at]], rows, e[ids[at:]]], dim=0)


# ----------------------------------------------------------------------------- commands
SHARED_LMS = ("llama-tiny", "phi-tiny", "openelm-tiny", "qwen2-tiny", "gemma-tiny")


def check():
    for name in SHARED_LMS:
        d = os.path.join(SHARED, name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        W, _ = load_safetensors(os.path.join(d, "model.safetensors"))
        io, meta = load_safetensors(os.path.join(d, "io.safetensors"))
        ids = io["input_ids"]
        logits = run(cfg, W, ids)
        err = (logits - io["logits"]).norm() / io["logits"].norm()
        at = int(meta["inserted_at"])
        ins = run(cfg, W, embeds=spliced(cfg, W, ids, at, io["inserted_embeds"]))
        err2 = (ins - io["logits_with_inserted_embeds"]).norm() / io["logits_with_inserted_embeds"].norm()
        g = greedy(cfg, W, ids.tolist(), len(io["greedy_ids"]))
        print(f"{name}: logits {err:.2e}, inserted {err2:.2e}, greedy {'ok' if g == io['greedy_ids'].tolist() else g}")
        assert err < 1e-5 and err2 < 1e-5 and g == io["greedy_ids"].tolist()


def bf16_references(out_dir):
    """The shared fixtures' prompts through their model.bf16.safetensors, computed in
    F32 on the BF16-rounded weights: what an exact F32 engine gives on those files."""
    os.makedirs(out_dir, exist_ok=True)
    for name in SHARED_LMS:
        d = os.path.join(SHARED, name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        W, _ = load_safetensors(os.path.join(d, "model.bf16.safetensors"))
        io, _ = load_safetensors(os.path.join(d, "io.safetensors"))
        ids = io["input_ids"]
        out = {"logits": run(cfg, W, ids), "greedy_ids": torch.tensor(greedy(cfg, W, ids.tolist(), len(io["greedy_ids"])))}
        save_safetensors(os.path.join(out_dir, name + ".safetensors"), out,
                         {"source": name + "/model.bf16.safetensors", "made_by": "tools/lm_reference.py bf16"})
        err = (out["logits"] - io["logits"]).norm() / io["logits"].norm()
        print(f"{name}: BF16-weight logits differ from the F32 fixture by {err:.2e}")


def random_weights(cfg, gen):
    """Shapes as the checkpoints hold them; values ~ N(0, 1/fan_in), norms near 1."""
    arch = cfg["architectures"][0]
    W = {}

    def mat(name, out, inp):
        W[name] = torch.randn(out, inp, generator=gen) / math.sqrt(inp)

    def vec(name, n, centre):
        W[name] = centre + 0.1 * torch.randn(n, generator=gen)

    if arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "GemmaForCausalLM"):
        H, nq = cfg["hidden_size"], cfg["num_attention_heads"]
        nkv, hd, F = cfg["num_key_value_heads"], cfg.get("head_dim", H // nq), cfg["intermediate_size"]
        W["model.embed_tokens.weight"] = torch.randn(cfg["vocab_size"], H, generator=gen)
        if arch == "Qwen2ForCausalLM":
            biased = ("q_proj", "k_proj", "v_proj")
        else:
            biased = ("q_proj", "k_proj", "v_proj", "o_proj") if cfg.get("attention_bias", False) else ()
        # Gemma stores norm weights as (scale - 1).
        centre = 0.0 if arch == "GemmaForCausalLM" else 1.0
        tied = cfg.get("tie_word_embeddings", arch == "GemmaForCausalLM")
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            vec(p + "input_layernorm.weight", H, centre)
            vec(p + "post_attention_layernorm.weight", H, centre)
            for n, o, k in (("q_proj", nq * hd, H), ("k_proj", nkv * hd, H), ("v_proj", nkv * hd, H), ("o_proj", H, nq * hd)):
                mat(p + "self_attn." + n + ".weight", o, k)
                if n in biased:
                    vec(p + "self_attn." + n + ".bias", o, 0.0)
            mat(p + "mlp.gate_proj.weight", F, H)
            mat(p + "mlp.up_proj.weight", F, H)
            mat(p + "mlp.down_proj.weight", H, F)
        vec("model.norm.weight", H, centre)
        if not tied:
            mat("lm_head.weight", cfg["vocab_size"], H)
    elif arch == "PhiForCausalLM":
        H, nq = cfg["hidden_size"], cfg["num_attention_heads"]
        nkv, F = cfg["num_key_value_heads"], cfg["intermediate_size"]
        hd = H // nq
        W["model.embed_tokens.weight"] = torch.randn(cfg["vocab_size"], H, generator=gen)
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            vec(p + "input_layernorm.weight", H, 1.0)
            vec(p + "input_layernorm.bias", H, 0.0)
            for n, o, k in (("q_proj", nq * hd, H), ("k_proj", nkv * hd, H), ("v_proj", nkv * hd, H), ("dense", H, nq * hd)):
                mat(p + "self_attn." + n + ".weight", o, k)
                vec(p + "self_attn." + n + ".bias", o, 0.0)
            if cfg.get("qk_layernorm", False):
                for n in ("q_layernorm", "k_layernorm"):
                    vec(p + "self_attn." + n + ".weight", hd, 1.0)
                    vec(p + "self_attn." + n + ".bias", hd, 0.0)
            mat(p + "mlp.fc1.weight", F, H)
            vec(p + "mlp.fc1.bias", F, 0.0)
            mat(p + "mlp.fc2.weight", H, F)
            vec(p + "mlp.fc2.bias", H, 0.0)
        vec("model.final_layernorm.weight", H, 1.0)
        vec("model.final_layernorm.bias", H, 0.0)
        mat("lm_head.weight", cfg["vocab_size"], H)
        vec("lm_head.bias", cfg["vocab_size"], 0.0)
    else:
        H, hd = cfg["model_dim"], cfg["head_dim"]
        W["transformer.token_embeddings.weight"] = torch.randn(cfg["vocab_size"], H, generator=gen)
        for i in range(cfg["num_transformer_layers"]):
            p = f"transformer.layers.{i}."
            nq, nkv, F = cfg["num_query_heads"][i], cfg["num_kv_heads"][i], cfg["_ffn_dims"][i]
            vec(p + "attn_norm.weight", H, 1.0)
            vec(p + "ffn_norm.weight", H, 1.0)
            mat(p + "attn.qkv_proj.weight", (nq + 2 * nkv) * hd, H)
            if cfg.get("normalize_qk_projections", False):
                vec(p + "attn.q_norm.weight", hd, 1.0)
                vec(p + "attn.k_norm.weight", hd, 1.0)
            mat(p + "attn.out_proj.weight", H, nq * hd)
            mat(p + "ffn.proj_1.weight", (2 if cfg.get("ffn_with_glu", True) else 1) * F, H)
            mat(p + "ffn.proj_2.weight", H, F)
        vec("transformer.norm.weight", H, 1.0)
        if not cfg.get("share_input_output_layers", False):
            mat("lm_head.weight", cfg["vocab_size"], H)
    return W


VARIANTS = {
    # Longer prompt, GQA groups of 3, theta 5e5, linear RoPE scaling, tied output, attention biases.
    "llama-variant": ({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                       "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6,
                       "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
                       "rope_scaling": {"type": "linear", "factor": 2.0}, "attention_bias": True,
                       "vocab_size": 64, "max_position_embeddings": 512, "tie_word_embeddings": True,
                       "bos_token_id": 1, "eos_token_id": 2}, 200, 5),
    # Llama-3-style frequency scaling (a short context so that every band occurs), head_dim 16.
    "llama3-variant": ({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-5,
                        "rope_theta": 500000.0,
                        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                        "vocab_size": 40, "max_position_embeddings": 256, "tie_word_embeddings": False,
                        "bos_token_id": 1, "eos_token_id": 2}, 120, 4),
    # Phi with GQA, q/k LayerNorm, half rotary, theta 1000.
    "phi-variant": ({"architectures": ["PhiForCausalLM"], "model_type": "phi", "hidden_act": "gelu_new",
                     "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "partial_rotary_factor": 0.5, "rope_theta": 1000.0,
                     "layer_norm_eps": 1e-5, "vocab_size": 72, "max_position_embeddings": 256, "qk_layernorm": True,
                     "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0}, 150, 7),
    # Qwen2 untied, GQA groups of 3, theta 1e6 with linear RoPE scaling; sliding-window fields that
    # would slide layer 1 if use_sliding_window were true (it is false, as in released models).
    "qwen2-variant": ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
                       "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6,
                       "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                       "rope_scaling": {"type": "linear", "factor": 2.0}, "vocab_size": 64,
                       "max_position_embeddings": 512, "tie_word_embeddings": False, "use_sliding_window": False,
                       "sliding_window": 32, "max_window_layers": 1, "bos_token_id": 1, "eos_token_id": 2}, 150, 4),
    # Gemma with sqrt(48) as the input scale (not a round number in F32), head_dim 16 != 48 / 4,
    # GQA, q/k/v/o biases, untied output, and hidden_act "gelu" without hidden_activation (the
    # tanh GELU runs: hidden_act is ignored).
    "gemma-variant": ({"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "hidden_act": "gelu",
                       "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                       "attention_bias": True, "vocab_size": 64, "max_position_embeddings": 512,
                       "tie_word_embeddings": False, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0},
                      150, 6),
    # OpenELM without GLU, q/k norms or tied output; four layers of different widths; base 20000.
    # Head counts and FFN widths are what OpenELMConfig derives from the multipliers.
    "openelm-variant": ({"architectures": ["OpenELMForCausalLM"], "model_type": "openelm",
                         "activation_fn_name": "swish", "model_dim": 48, "head_dim": 8,
                         "num_transformer_layers": 4, "num_gqa_groups": 2, "num_query_heads": [4, 4, 6, 6],
                         "num_kv_heads": [2, 2, 3, 3], "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": [0.5, 2.0],
                         "ffn_dim_divisor": 16, "ffn_with_glu": False, "normalization_layer_name": "rms_norm",
                         "normalize_qk_projections": False, "rope_freq_constant": 20000, "rope_max_length": 4096,
                         "share_input_output_layers": False, "vocab_size": 80, "max_context_length": 512,
                         "bos_token_id": 1, "eos_token_id": 2, "_ffn_dims": [32, 48, 80, 96]}, 160, 3),
}


def make(out_dir):
    for name, (cfg, prompt_len, insert_at) in VARIANTS.items():
        gen = torch.Generator().manual_seed(1234)
        W = random_weights(cfg, gen)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        saved = {k: v for k, v in cfg.items() if not k.startswith("_")}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(saved, f, indent=2)
        save_safetensors(os.path.join(d, "model.safetensors"), W, {"format": "pt"})
        ids = torch.randint(0, cfg["vocab_size"], (prompt_len,), generator=gen)
        hidden = cfg.get("hidden_size", cfg.get("model_dim"))
        inserted = torch.randn(3, hidden, generator=gen)
        io = {"input_ids": ids, "logits": run(saved, W, ids),
              "greedy_ids": torch.tensor(greedy(saved, W, ids.tolist(), 6)),
              "inserted_embeds": inserted,
              "logits_with_inserted_embeds": run(saved, W, embeds=spliced(saved, W, ids, insert_at, inserted))}
        save_safetensors(os.path.join(d, "io.safetensors"), io, {"inserted_at": str(insert_at)})
        print(name, {k: tuple(v.shape) for k, v in io.items()})


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "check":
        check()
    elif len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "bf16":
        bf16_references(sys.argv[2])
    else:
        sys.exit(__doc__)
