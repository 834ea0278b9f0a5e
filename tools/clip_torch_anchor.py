#!/usr/bin/env python3
"""The speed anchor for bench/clip_bench.cpp: OpenAI CLIP's VisionTransformer
(ViT-L/14 @224 by default) with random fp32 weights in PyTorch, timed like
`tinyemo clip bench` (one warm-up, then the median of timed runs).

    /usr/bin/python3 tools/clip_torch_anchor.py --threads 2 --batch 1
Prints one JSON object. The model (tools/clip_torch_model.py) follows clip/model.py's
VisionTransformer (nn.MultiheadAttention, QuickGELU, pre-LN).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_torch_model import VisionTransformer  # noqa: E402

ARCHS = {  # width, layers, heads, patch, image, output dim
    "vit-b-32": (768, 12, 12, 32, 224, 512),
    "vit-b-16": (768, 12, 12, 16, 224, 512),
    "vit-l-14": (1024, 24, 16, 14, 224, 768),
    "vit-l-14-336": (1024, 24, 16, 14, 336, 768),
}


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
    blas = [f for f in torch.__config__.show().split(", ") if f.startswith("BLAS_INFO=")]
    print(json.dumps({"framework": f"torch {torch.__version__}", "blas": blas[0] if blas else "?", "arch": args.arch, "batch": args.batch, "threads": args.threads,
                      "runs": args.runs, "seconds_per_image": per_image}))


if __name__ == "__main__":
    main()
