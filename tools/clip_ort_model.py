#!/usr/bin/env python3
"""Random-weight CLIP vision towers of a published shape, written twice for
bench/peers/clip_ort.sh: as a checkpoint folder `tinyemo clip encode/bench
--model` loads (HF CLIPModel config.json + model.safetensors with HF names)
and as an ONNX export of the same torch module (opset 17, dynamic batch,
output = the projected `image_embeds`), plus seeded cross-check pixels and
torch's own embeddings of them.

    /usr/bin/python3 tools/clip_ort_model.py --arch vit-l-14 --out DIR [--seed 0] [--check-batch 3]

DIR gets config.json, model.safetensors, model.onnx, pixels.safetensors
(`pixel_values` [check-batch, 3, N, N] F32), pixels.f32 (the same, raw
little-endian), torch_embeds.f32 ([check-batch, proj] raw) and, last, meta.json
(its presence marks a complete folder). Every file is written to a temporary
name and renamed. Torch 1.13's exporter needs no `onnx` package.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_torch_anchor import ARCHS  # noqa: E402  width, layers, heads, patch, image, output dim
from clip_torch_model import VisionTransformer, hf_state_dict  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402


class ImageEmbeds(torch.nn.Module):
    """The tower with `image_embeds` as its only output (what `clip encode` gives)."""

    def __init__(self, tower):
        super().__init__()
        self.tower = tower

    def forward(self, pixel_values):
        return self.tower(pixel_values)


def randomise(model, gen):
    """nn's default init leaves LayerNorm at 1/0 and attention biases at 0, which
    would hide a swapped or dropped tensor; give every parameter random values."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or "ln_pre.weight" in name or "ln_post.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))


def atomic(path, write):
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-batch", type=int, default=3)
    args = ap.parse_args()
    width, layers, heads, patch, image, proj = ARCHS[args.arch]
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    model = VisionTransformer(width, layers, heads, patch, image, proj).eval()
    randomise(model, torch.Generator().manual_seed(args.seed + 1))

    config = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": proj,
        "vision_config": {
            "model_type": "clip_vision_model", "hidden_size": width, "intermediate_size": 4 * width,
            "num_hidden_layers": layers, "num_attention_heads": heads, "image_size": image,
            "patch_size": patch, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
            "projection_dim": proj, "num_channels": 3,
        },
    }
    atomic(os.path.join(args.out, "config.json"),
           lambda p: open(p, "w").write(json.dumps(config, indent=2) + "\n"))
    tensors = hf_state_dict(model)
    tokens = (image // patch) ** 2 + 1
    tensors["vision_model.embeddings.position_ids"] = torch.arange(tokens, dtype=torch.int64)[None]  # as real checkpoints
    atomic(os.path.join(args.out, "model.safetensors"),
           lambda p: write_safetensors(p, tensors, {"format": "pt", "source": f"random {args.arch}, seed {args.seed}"}))
    del tensors

    pixels = torch.randn(args.check_batch, 3, image, image, generator=torch.Generator().manual_seed(args.seed + 2))
    with torch.no_grad():
        embeds = model(pixels)
    atomic(os.path.join(args.out, "pixels.safetensors"), lambda p: write_safetensors(p, {"pixel_values": pixels}))
    atomic(os.path.join(args.out, "pixels.f32"), lambda p: pixels.numpy().tofile(p))
    atomic(os.path.join(args.out, "torch_embeds.f32"), lambda p: embeds.numpy().tofile(p))

    wrapper = ImageEmbeds(model).eval()
    with torch.no_grad():
        atomic(os.path.join(args.out, "model.onnx"), lambda p: torch.onnx.export(
            wrapper, (pixels[:1],), p, opset_version=17, input_names=["pixel_values"],
            output_names=["image_embeds"], dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            do_constant_folding=True))

    meta = {"arch": args.arch, "seed": args.seed, "image_size": image, "projection_dim": proj,
            "check_batch": args.check_batch, "torch": torch.__version__, "opset": 17,
            "onnx_input": "pixel_values", "onnx_output": "image_embeds"}
    atomic(os.path.join(args.out, "meta.json"), lambda p: open(p, "w").write(json.dumps(meta, indent=2) + "\n"))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
