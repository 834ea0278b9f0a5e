#!/usr/bin/env python3
"""Every hidden state of small vision towers, as Hugging Face's
output_hidden_states returns them (index 0 the embeddings, i the output of
block i), for tests of `vision_feature_layer` at every index:

- tests/data/mm/siglip-tower/: a SiglipVisionModel (HF semantics written out
  below, `transformers` is not installed here): biased patch conv, learned
  positions, no class token, no pre-LayerNorm, pre-LN blocks (eps 1e-6),
  attention with biases, MLP with the tanh GELU; post_layernorm and the
  attention-pooling head are stored as real checkpoints carry them (unused).
  Image 23 with patch 7: the conv drops the last 2 rows and columns.
- tests/data/mm/clip-tower/: a CLIPVisionModel (tools/clip_torch_model.py),
  4 blocks, for the same indices with a class token and pre-LayerNorm.

Each folder: config.json, model.safetensors, io.safetensors with
pixel_values [B, 3, N, N] and hidden_states [layers + 1, B, tokens, hidden].
Run with /usr/bin/python3 from the repo root.
"""
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_torch_model import VisionTransformer, hf_state_dict  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = "tests/data/mm"


class SiglipLayer(nn.Module):
    def __init__(self, width, heads, inter, eps):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.q_proj, self.k_proj = nn.Linear(width, width), nn.Linear(width, width)
        self.v_proj, self.out_proj = nn.Linear(width, width), nn.Linear(width, width)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)
        self.fc1, self.fc2 = nn.Linear(width, inter), nn.Linear(inter, width)

    def attention(self, x):
        b, t, w = x.shape
        d = w // self.heads
        split = lambda y: y.view(b, t, self.heads, d).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        p = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1, dtype=torch.float32)
        return self.out_proj((p @ v).transpose(1, 2).reshape(b, t, w))

    def forward(self, x):
        x = x + self.attention(self.layer_norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.layer_norm2(x)), approximate="tanh"))


class SiglipTower(nn.Module):
    def __init__(self, c):
        super().__init__()
        w, grid = c["hidden_size"], c["image_size"] // c["patch_size"]
        self.patch_embedding = nn.Conv2d(3, w, c["patch_size"], c["patch_size"], bias=True)
        self.position_embedding = nn.Parameter(0.5 * torch.randn(grid * grid, w))
        self.layers = nn.ModuleList(SiglipLayer(w, c["num_attention_heads"], c["intermediate_size"],
                                                c["layer_norm_eps"]) for _ in range(c["num_hidden_layers"]))
        self.post_layernorm = nn.LayerNorm(w, eps=c["layer_norm_eps"])
        self.head_probe = nn.Parameter(torch.randn(1, 1, w))
        self.head_attention = nn.MultiheadAttention(w, c["num_attention_heads"], batch_first=True)
        self.head_layernorm = nn.LayerNorm(w, eps=c["layer_norm_eps"])
        self.head_fc1, self.head_fc2 = nn.Linear(w, c["intermediate_size"]), nn.Linear(c["intermediate_size"], w)

    def forward(self, pixels):
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2) + self.position_embedding
        hidden = [x]
        for layer in self.layers:
            x = layer(x)
            hidden.append(x)
        return torch.stack(hidden)

    def hf_state_dict(self):
        sd, out, v = self.state_dict(), {}, "vision_model."
        out[v + "embeddings.patch_embedding.weight"] = sd["patch_embedding.weight"]
        out[v + "embeddings.patch_embedding.bias"] = sd["patch_embedding.bias"]
        out[v + "embeddings.position_embedding.weight"] = sd["position_embedding"]
        for key, t in sd.items():
            if key.startswith("layers."):
                out[v + "encoder." + key.replace(".q_proj", ".self_attn.q_proj").replace(".k_proj", ".self_attn.k_proj")
                    .replace(".v_proj", ".self_attn.v_proj").replace(".out_proj", ".self_attn.out_proj")
                    .replace(".fc1", ".mlp.fc1").replace(".fc2", ".mlp.fc2")] = t
        for n in ("weight", "bias"):
            out[v + "post_layernorm." + n] = sd["post_layernorm." + n]
            out[v + "head.layernorm." + n] = sd["head_layernorm." + n]
            out[v + "head.mlp.fc1." + n] = sd["head_fc1." + n]
            out[v + "head.mlp.fc2." + n] = sd["head_fc2." + n]
            out[v + "head.attention.out_proj." + n] = sd["head_attention.out_proj." + n]
        out[v + "head.probe"] = sd["head_probe"]
        out[v + "head.attention.in_proj_weight"] = sd["head_attention.in_proj_weight"]
        out[v + "head.attention.in_proj_bias"] = sd["head_attention.in_proj_bias"]
        return {k: t.contiguous() for k, t in out.items()}


def clip_hidden_states(model, pixels):
    """hidden_states of OpenAI's VisionTransformer, batch first."""
    x = model.conv1(pixels).flatten(2).permute(0, 2, 1)
    cls = model.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = model.ln_pre(torch.cat([cls, x], dim=1) + model.positional_embedding).permute(1, 0, 2)
    hidden = [x]
    for block in model.transformer.resblocks:
        x = block(x)
        hidden.append(x)
    return torch.stack([h.permute(1, 0, 2) for h in hidden])


def perturb(model):
    with torch.no_grad():
        for p in model.parameters():  # non-trivial LayerNorm parameters and biases too
            p.add_(0.05 * torch.randn_like(p))


def save(name, config, state_dict, pixels, hidden):
    os.makedirs(f"{OUT}/{name}", exist_ok=True)
    write_safetensors(f"{OUT}/{name}/model.safetensors", state_dict, {"format": "pt"})
    with open(f"{OUT}/{name}/config.json", "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(f"{OUT}/{name}/io.safetensors", {"pixel_values": pixels, "hidden_states": hidden.contiguous()})
    print(name, tuple(hidden.shape))


def main():
    torch.manual_seed(17)
    siglip = {"architectures": ["SiglipVisionModel"], "model_type": "siglip_vision_model", "hidden_size": 24,
              "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 3, "image_size": 23,
              "patch_size": 7, "num_channels": 3, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6}
    tower = SiglipTower(siglip).eval()
    perturb(tower)
    pixels = torch.randn(2, 3, 23, 23)
    with torch.no_grad():
        save("siglip-tower", siglip, tower.hf_state_dict(), pixels, tower(pixels))

    clip = {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model", "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "image_size": 28,
            "patch_size": 14, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3}
    model = VisionTransformer(16, 4, 2, 14, 28, 0, mlp_width=32).eval()
    perturb(model)
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        hidden = clip_hidden_states(model, pixels)
    sd = hf_state_dict(model)
    sd.pop("visual_projection.weight", None)
    save("clip-tower", clip, sd, pixels, hidden)


if __name__ == "__main__":
    main()
