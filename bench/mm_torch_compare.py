#!/usr/bin/env python3
"""tinyemo's multimodal pipeline against TinyLLaVA's in PyTorch, on the same
random weights and shapes, alternated in one run; prints one JSON object.

1. `tinyemo mm bench --preset P --random-weights --save-checkpoint DIR` writes
   the random F32 model once (skipped when DIR/config.json exists);
2. then, `--rounds` times, alternating: `tinyemo mm bench --model DIR --dtype
   q8_0`, the same with `--dtype f32`, and tools/tinyllava_torch_bench.py
   (PyTorch F32: PyTorch has no Q8_0 matmul, so tinyemo q8_0 is set against
   PyTorch F32 — the f32 row is the like-for-like one);
3. the medians over rounds of each side's per-image numbers, and ratios
   torch / tinyemo of the times (above 1: tinyemo is faster).

    python3 bench/mm_torch_compare.py --tinyemo build/tinyemo --preset tinyemo-700m \\
        --checkpoint /tmp/tinyemo-700m --threads 2 --gen-tokens 128 --rounds 3

Run with /usr/bin/python3 (Debian's torch) on a quiet machine.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TIMES = ["preprocess_s", "image_encode_s", "prefill_s", "time_to_first_token_s", "decode_s", "total_s"]


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tinyemo", default="build/tinyemo")
    ap.add_argument("--preset", default="tinyemo-700m")
    ap.add_argument("--checkpoint", required=True, help="folder for the random F32 checkpoint (written once)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3, help="images per measurement (the first is the cold one)")
    a = ap.parse_args()

    common = ["--gen-tokens", str(a.gen_tokens), "--runs", str(a.runs), "--threads", str(a.threads), "--json"]
    if not os.path.exists(os.path.join(a.checkpoint, "config.json")):
        run_json([a.tinyemo, "mm", "bench", "--preset", a.preset, "--random-weights", "--save-checkpoint",
                  a.checkpoint, "--dtype", "f32"] + common)
    sides = {
        "tinyemo_q8_0": [a.tinyemo, "mm", "bench", "--model", a.checkpoint, "--dtype", "q8_0"] + common,
        "tinyemo_f32": [a.tinyemo, "mm", "bench", "--model", a.checkpoint, "--dtype", "f32"] + common,
        "torch_f32": [sys.executable, os.path.join(HERE, "..", "tools", "tinyllava_torch_bench.py"), "--model",
                      a.checkpoint, "--threads", str(a.threads), "--gen-tokens", str(a.gen_tokens), "--runs",
                      str(a.runs), "--json"],
    }
    results = {k: [] for k in sides}
    for _ in range(a.rounds):
        for name, cmd in sides.items():
            results[name].append(run_json(cmd))
    summary = {}
    for name, rs in results.items():
        summary[name] = {k: median([r[k] for r in rs]) for k in TIMES + ["decode_tokens_per_s"]}
    ratios = {}
    for ours in ("tinyemo_q8_0", "tinyemo_f32"):
        ratios[f"torch_f32_over_{ours}"] = {k: summary["torch_f32"][k] / summary[ours][k] for k in TIMES
                                            if summary[ours][k] > 0}
    print(json.dumps({
        "preset": a.preset, "threads": a.threads, "gen_tokens": a.gen_tokens, "rounds": a.rounds,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "shapes": results["tinyemo_q8_0"][0]["shapes"],
        "medians": summary, "ratios": ratios,
        "targets": {"time_to_first_token_s": 1.5, "total_s": 2.5},
        "note": "PyTorch has no q8_0: tinyemo q8_0 is compared with PyTorch f32; tinyemo f32 is the like-for-like row",
    }))


if __name__ == "__main__":
    main()
