#!/usr/bin/env python3
"""Reference checkpoints for CLIP tower shapes the shared fixtures do not
cover, computed with OpenAI's VisionTransformer semantics
(tools/clip_torch_model.py) and written in Hugging Face layouts:

- tests/data/clip/odd-vision/: CLIPVisionModelWithProjection (flat config),
  hidden 40, 5 heads of 8, MLP 72 (not 4x), exact GELU, eps 1e-6, image 30
  with patch 7 (the conv drops the last 2 rows/columns), projection 12.
- tests/data/clip/one-layer-bf16/: CLIPVisionModel (no projection), one
  block, BF16 weights, quick_gelu.

Each folder: config.json, model.safetensors, io.safetensors (pixel_values
and the reference outputs in f32, computed from the weights as stored).
Run with /usr/bin/python3 from the repo root.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_torch_model import VisionTransformer, hf_state_dict  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = "tests/data/clip"


def build(name, config, dtype, batch, seed):
    torch.manual_seed(seed)
    model = VisionTransformer(config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
                              config["patch_size"], config["image_size"], config.get("projection_dim", 0),
                              mlp_width=config["intermediate_size"], act=config["hidden_act"],
                              eps=config["layer_norm_eps"]).eval()
    with torch.no_grad():
        for p in model.parameters():  # non-trivial LayerNorm parameters and biases too
            p.add_(0.05 * torch.randn_like(p))
        if dtype != torch.float32:  # reference = the stored (rounded) weights, computed in f32
            for p in model.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
        pixels = torch.randn(batch, 3, config["image_size"], config["image_size"])
        out = model(pixels, all_outputs=True)
    sd = hf_state_dict(model)
    if not config.get("projection_dim"):
        sd.pop("visual_projection.weight", None)
    os.makedirs(f"{OUT}/{name}", exist_ok=True)
    write_safetensors(f"{OUT}/{name}/model.safetensors", {k: v.to(dtype) for k, v in sd.items()}, {"format": "pt"})
    with open(f"{OUT}/{name}/config.json", "w") as f:
        json.dump(config, f, indent=2)
    io = {"pixel_values": pixels}
    io.update({k: v for k, v in out.items() if v is not None})
    write_safetensors(f"{OUT}/{name}/io.safetensors", io)
    print(name, {k: tuple(v.shape) for k, v in io.items()})


def main():
    build("odd-vision", {"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model",
                         "hidden_size": 40, "intermediate_size": 72, "num_hidden_layers": 2,
                         "num_attention_heads": 5, "image_size": 30, "patch_size": 7, "hidden_act": "gelu",
                         "layer_norm_eps": 1e-6, "projection_dim": 12, "num_channels": 3},
          torch.float32, batch=2, seed=11)
    build("one-layer-bf16", {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
                             "hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "image_size": 16, "patch_size": 8,
                             "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3},
          torch.bfloat16, batch=3, seed=12)


if __name__ == "__main__":
    main()
