#!/usr/bin/env python3
"""TinyLLaVA's pipeline in PyTorch, timed as `tinyemo mm bench` times tinyemo:
the PyTorch peer of bench/mm_torch_compare.py.

Loads a TinyLLaVA folder written by `tinyemo mm bench --save-checkpoint DIR`
(the same random F32 weights tinyemo runs) and runs, per image, what
TinyLLaVA Factory's inference does (run_tiny_llava.py / modeling_tinyllava.py):

- the image processor (CLIPImageProcessor: shorter side to N, center crop;
  SiglipImageProcessor: resize to N x N) with Pillow's bicubic and numpy;
- the whole vision tower with output_hidden_states (as VisionTower.forward
  calls the HF model: every block and the post-LayerNorm run), then
  hidden_states[vision_feature_layer], `patch` drops token 0;
- the connector (Linear, GELU, Linear, ...);
- the spliced prompt prefilled in one pass (TinyLLaVA keeps no cache between
  images, so the system prompt is computed for every image), then greedy
  decoding with a KV cache as transformers' generate(use_cache=True) does.

The modules are written out here from the Hugging Face / Apple modeling code
semantics (transformers is not installed): CLIPVisionModel, SiglipVisionModel,
OpenELMForCausalLM, PhiForCausalLM, LlamaForCausalLM; torch.inference_mode,
F32 (PyTorch has no Q8_0 matmul: the comparison with tinyemo's q8_0 is
against F32 here, and the JSON says so).

    /usr/bin/python3 tools/tinyllava_torch_bench.py --model DIR --threads 2 --gen-tokens 128 --json
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_reference import act, layer_norm, rms_norm, rope  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def synthetic_image(width, height, variant):
    """The image `tinyemo mm bench` uses: gradients and a pattern moving with `variant`."""
    x = np.arange(width)[None, :].repeat(height, 0)
    y = np.arange(height)[:, None].repeat(width, 1)
    r = (x * 255) // max(1, width - 1)
    g = (y * 255) // max(1, height - 1)
    b = ((x + y) * 7 + variant * 37) & 0xFF
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


def preprocess(img, vcfg):
    n = vcfg["image_size"]
    if vcfg["model_type"] == "siglip_vision_model":
        img = img.resize((n, n), resample=Image.BICUBIC, reducing_gap=None)
        mean, std = [0.5] * 3, [0.5] * 3
        arr = np.array(img)
    else:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        size = (n, int(n * long / short)) if w <= h else (int(n * long / short), n)
        arr = np.array(img.resize(size, resample=Image.BICUBIC, reducing_gap=None))
        top, left = (arr.shape[0] - n) // 2, (arr.shape[1] - n) // 2
        arr = arr[top:top + n, left:left + n]
        mean, std = CLIP_MEAN, CLIP_STD
    arr = (arr.astype(np.float64) / 255.0).astype(np.float32)
    arr = (arr - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def vision_hidden_states(W, vcfg, pixels):
    """Every hidden state of the tower (HF output_hidden_states), and the pooled output."""
    p, w, heads = "vision_tower._vision_tower.vision_model.", vcfg["hidden_size"], vcfg["num_attention_heads"]
    eps = vcfg["layer_norm_eps"]
    siglip = vcfg["model_type"] == "siglip_vision_model"
    x = torch.nn.functional.conv2d(pixels, W[p + "embeddings.patch_embedding.weight"],
                                   W.get(p + "embeddings.patch_embedding.bias"), stride=vcfg["patch_size"])
    x = x.flatten(2).transpose(1, 2)[0]
    if not siglip:
        x = torch.cat([W[p + "embeddings.class_embedding"][None], x], 0)
    x = x + W[p + "embeddings.position_embedding.weight"]
    if not siglip:
        x = layer_norm(x, W[p + "pre_layrnorm.weight"], W[p + "pre_layrnorm.bias"], eps)
    f = act(vcfg["hidden_act"]) if vcfg["hidden_act"] != "quick_gelu" else (lambda v: v * torch.sigmoid(1.702 * v))
    hidden = [x]
    T, d = x.shape[0], w // heads
    for i in range(vcfg["num_hidden_layers"]):
        q = f"{p}encoder.layers.{i}."
        lin = lambda name, v: v @ W[q + name + ".weight"].T + W[q + name + ".bias"]  # noqa: E731
        h = layer_norm(x, W[q + "layer_norm1.weight"], W[q + "layer_norm1.bias"], eps)
        qh = lin("self_attn.q_proj", h).view(T, heads, d).transpose(0, 1)
        kh = lin("self_attn.k_proj", h).view(T, heads, d).transpose(0, 1)
        vh = lin("self_attn.v_proj", h).view(T, heads, d).transpose(0, 1)
        a = torch.softmax(qh @ kh.transpose(1, 2) * d ** -0.5, dim=-1) @ vh
        x = x + lin("self_attn.out_proj", a.transpose(0, 1).reshape(T, w))
        h = layer_norm(x, W[q + "layer_norm2.weight"], W[q + "layer_norm2.bias"], eps)
        x = x + lin("mlp.fc2", f(lin("mlp.fc1", h)))
        hidden.append(x)
    post = layer_norm(x if siglip else x[:1], W[p + "post_layernorm.weight"], W[p + "post_layernorm.bias"], eps)
    return hidden, post


def connector(W, cfg, rows):
    depth = int(cfg["connector_type"][3:].split("x")[0])
    for k in range(depth):
        rows = rows @ W[f"connector._connector.{2 * k}.weight"].T + W[f"connector._connector.{2 * k}.bias"]
        if k + 1 < depth:
            rows = torch.nn.functional.gelu(rows)
    return rows


class CachedLm:
    """The LM with a KV cache: forward(x [T, H]) appends T positions, returns the last logits."""

    def __init__(self, cfg, W):
        self.cfg, self.arch = cfg, cfg["architectures"][0]
        self.W = {k[len("language_model."):]: v for k, v in W.items() if k.startswith("language_model.")}
        self.cache = {}
        self.length = 0
        if self.arch == "OpenELMForCausalLM":
            self.embed = self.W["transformer.token_embeddings.weight"]
            groups = cfg["num_gqa_groups"]
            self.heads = []
            for i in range(cfg["num_transformer_layers"]):
                rows = self.W[f"transformer.layers.{i}.attn.qkv_proj.weight"].shape[0] // cfg["head_dim"]
                nq = rows * groups // (groups + 2)
                self.heads.append((nq, nq // groups))
        else:
            self.embed = self.W["model.embed_tokens.weight"]

    def attend(self, i, q, k, v):
        if i in self.cache:
            k = torch.cat([self.cache[i][0], k], 1)
            v = torch.cat([self.cache[i][1], v], 1)
        self.cache[i] = (k, v)
        groups = q.shape[0] // k.shape[0]
        k, v = k.repeat_interleave(groups, 0), v.repeat_interleave(groups, 0)
        T, S = q.shape[1], k.shape[1]
        scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        mask = torch.ones(T, S, dtype=torch.bool).triu(S - T + 1)
        return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1) @ v

    def forward(self, x):
        c, W, T = self.cfg, self.W, x.shape[0]
        pos = torch.arange(self.length, self.length + T)
        if self.arch == "OpenELMForCausalLM":
            hd, f, eps = c["head_dim"], act(c["activation_fn_name"]), 1e-6
            for i, (nq, nkv) in enumerate(self.heads):
                p = f"transformer.layers.{i}."
                h = rms_norm(x, W[p + "attn_norm.weight"], eps)
                qkv = (h @ W[p + "attn.qkv_proj.weight"].T).view(T, nq + 2 * nkv, hd).transpose(0, 1)
                q, k, v = qkv.split([nq, nkv, nkv], dim=0)
                q, k = rms_norm(q, W[p + "attn.q_norm.weight"], eps), rms_norm(k, W[p + "attn.k_norm.weight"], eps)
                q, k = rope(q, pos, hd, c["rope_freq_constant"]), rope(k, pos, hd, c["rope_freq_constant"])
                a = self.attend(i, q, k, v).transpose(0, 1).reshape(T, nq * hd)
                x = x + a @ W[p + "attn.out_proj.weight"].T
                y = rms_norm(x, W[p + "ffn_norm.weight"], eps) @ W[p + "ffn.proj_1.weight"].T
                y1, y2 = y.chunk(2, dim=-1)
                x = x + (f(y1) * y2) @ W[p + "ffn.proj_2.weight"].T
            x = rms_norm(x[-1:], W["transformer.norm.weight"], eps)
            head = self.embed if c.get("share_input_output_layers") else W["lm_head.weight"]
            logits = x @ head.T
        elif self.arch == "PhiForCausalLM":
            H, nq = c["hidden_size"], c["num_attention_heads"]
            nkv, hd = c.get("num_key_value_heads", nq), H // nq
            rd, eps, f = int(hd * c["partial_rotary_factor"]), c["layer_norm_eps"], act(c["hidden_act"])
            lin = lambda name, v: v @ W[name + ".weight"].T + W[name + ".bias"]  # noqa: E731
            for i in range(c["num_hidden_layers"]):
                p = f"model.layers.{i}."
                h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
                q = lin(p + "self_attn.q_proj", h).view(T, nq, hd).transpose(0, 1)
                k = lin(p + "self_attn.k_proj", h).view(T, nkv, hd).transpose(0, 1)
                v = lin(p + "self_attn.v_proj", h).view(T, nkv, hd).transpose(0, 1)
                q, k = rope(q, pos, rd, c["rope_theta"]), rope(k, pos, rd, c["rope_theta"])
                a = self.attend(i, q, k, v).transpose(0, 1).reshape(T, nq * hd)
                x = lin(p + "self_attn.dense", a) + lin(p + "mlp.fc2", f(lin(p + "mlp.fc1", h))) + x
            x = layer_norm(x[-1:], W["model.final_layernorm.weight"], W["model.final_layernorm.bias"], eps)
            logits = x @ W["lm_head.weight"].T + W["lm_head.bias"]
        else:  # LLaMA
            H, nq = c["hidden_size"], c["num_attention_heads"]
            nkv, hd, eps, f = c.get("num_key_value_heads", nq), H // nq, c["rms_norm_eps"], act(c["hidden_act"])
            for i in range(c["num_hidden_layers"]):
                p = f"model.layers.{i}."
                h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
                q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, nq, hd).transpose(0, 1)
                k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, nkv, hd).transpose(0, 1)
                v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, nkv, hd).transpose(0, 1)
                q, k = rope(q, pos, hd, c["rope_theta"]), rope(k, pos, hd, c["rope_theta"])
                a = self.attend(i, q, k, v).transpose(0, 1).reshape(T, nq * hd)
                x = x + a @ W[p + "self_attn.o_proj.weight"].T
                h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
                x = x + (f(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)) @ \
                    W[p + "mlp.down_proj.weight"].T
            x = rms_norm(x[-1:], W["model.norm.weight"], eps)
            head = self.embed if c.get("tie_word_embeddings") else W["lm_head.weight"]
            logits = x @ head.T
        self.length += T
        return logits[0]


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--prefix-tokens", type=int, default=40)
    ap.add_argument("--question-tokens", type=int, default=80)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W, _ = read_safetensors(os.path.join(a.model, "model.safetensors"))
    vcfg, tcfg = cfg["vision_config"], cfg["text_config"]
    vocab = tcfg["vocab_size"]
    text = [(i * 7919 + 13) % vocab for i in range(a.prefix_tokens + a.question_tokens)]
    runs = []
    with torch.inference_mode():
        for r in range(a.runs):
            img = synthetic_image(640, 480, r)
            t0 = time.perf_counter()
            pixels = preprocess(img, vcfg)
            t1 = time.perf_counter()
            hidden, _ = vision_hidden_states(W, vcfg, pixels)
            rows = hidden[cfg.get("vision_feature_layer", -2)]
            if cfg.get("vision_feature_select_strategy", "patch") == "patch":
                rows = rows[1:]
            feats = connector(W, cfg, rows)
            t2 = time.perf_counter()
            lm = CachedLm(tcfg, W)
            ids = torch.tensor(text)
            x = torch.cat([lm.embed[ids[:a.prefix_tokens]], feats, lm.embed[ids[a.prefix_tokens:]]], 0)
            nxt = int(lm.forward(x).argmax())
            t3 = time.perf_counter()
            for _ in range(a.gen_tokens - 1):
                nxt = int(lm.forward(lm.embed[nxt][None]).argmax())
            t4 = time.perf_counter()
            runs.append({"preprocess_s": t1 - t0, "image_encode_s": t2 - t1, "prefill_s": t3 - t2,
                         "time_to_first_token_s": t3 - t0, "decode_s": t4 - t3,
                         "decode_tokens_per_s": (a.gen_tokens - 1) / (t4 - t3) if t4 > t3 else 0.0,
                         "total_s": t4 - t0, "prompt_positions": x.shape[0]})
    later = runs[1:] if len(runs) > 1 else runs
    out = {k: median([r[k] for r in later]) for k in runs[0] if k != "prompt_positions"}
    out.update({"threads": a.threads, "runs": a.runs, "torch": torch.__version__, "dtype": "f32",
                "prompt_positions": runs[0]["prompt_positions"], "gen_tokens": a.gen_tokens,
                "cold": {"time_to_first_token_s": runs[0]["time_to_first_token_s"], "total_s": runs[0]["total_s"]},
                "note": "TinyLLaVA's pipeline in PyTorch F32 (no q8_0 in PyTorch); medians of the runs after the first"})
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
