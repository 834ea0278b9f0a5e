#!/usr/bin/env python3
"""The speed anchor for bench/clip_bench.cpp: OpenAI CLIP's VisionTransformer
(ViT-L/14 @224 by default) with random fp32 weights in PyTorch, timed like
`tinyemo clip bench` (one warm-up, then the median of timed runs).

    /usr/bin/python3 tools/clip_torch_anchor.py --threads 2 --batch 1
Prints one JSON object. The model is a line-for-line equivalent of
clip/model.py's VisionTransformer (nn.MultiheadAttention, QuickGELU, pre-LN).
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn

ARCHS = {  # width, layers, heads, patch, image, output dim
    "vit-b-32": (768, 12, 12, 32, 224, 512),
    "vit-b-16": (768, 12, 12, 16, 224, 512),
    "vit-l-14": (1024, 24, 16, 14, 224, 768),
    "vit-l-14-336": (1024, 24, 16, 14, 336, 768),
}


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width * 4), QuickGELU(), nn.Linear(width * 4, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, width, layers, heads, patch, image, output_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
        x = self.blocks(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="vit-l-14", choices=sorted(ARCHS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ARCHS[args.arch]
    model = VisionTransformer(*cfg).eval()
    x = torch.randn(args.batch, 3, cfg[4], cfg[4])
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(args.runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    per_image = statistics.median(times) / args.batch
    print(json.dumps({"framework": f"torch {torch.__version__}", "blas": torch.__config__.show().count("OpenBLAS") > 0
                      and "OpenBLAS" or "other", "arch": args.arch, "batch": args.batch, "threads": args.threads,
                      "runs": args.runs, "seconds_per_image": per_image}))


if __name__ == "__main__":
    main()
