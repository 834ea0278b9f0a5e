#!/usr/bin/env python3
"""The measuring half of bench/peers/clip_ort.sh (read that file's header):
cross-checks tinyemo against ONNX Runtime on the same pixels, then times both
in alternated rounds, a fresh process per run, and prints one JSON document
(stdout and OUT) and a markdown table (stderr).

A run is contended when the machine's busy time over the run (/proc/stat:
user, nice, system, irq, softirq, steal) exceeds the run's own CPU time
(getrusage of the waited child: every thread of it) by more than
`--slack` x wall x CPUs + 0.1 s; it is discarded and repeated, at most
`--max-retries` times, after which the least contended attempt is kept and
marked `contended` (bench/peers/peer_runs.py). Needs only the standard
library and numpy.
"""
import argparse
import functools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np

import peer_runs

# Fresh-process runs with the contention check (bench/peers/peer_runs.py), messages prefixed clip_ort.
run_once = functools.partial(peer_runs.run_once, prog="clip_ort")
measured = functools.partial(peer_runs.measured, prog="clip_ort")


def read_safetensors_f32(path, key):
    return peer_runs.read_safetensors_f32(path, key, prog="clip_ort")


worst_row = peer_runs.worst_row


def cross_check(shape, d, meta, args, env):
    te_out = os.path.join(args.work, f"{shape}.tinyemo_embeds.safetensors")
    ort_out = os.path.join(args.work, f"{shape}.ort_embeds.f32")
    cmd = [args.tinyemo, "clip", "encode", "--model", d, "--pixels", os.path.join(d, "pixels.safetensors"),
           "--out", te_out, "--threads", str(args.threads)] + shlex.split(args.encode_args)
    run_once(cmd, env)
    run_once(["node", args.node_script, "--ort", args.ort, "--model", os.path.join(d, "model.onnx"),
              "--image-size", str(meta["image_size"]), "--threads", str(args.threads),
              "--check", os.path.join(d, "pixels.f32"), "--out", ort_out], env)
    rows, proj = meta["check_batch"], meta["projection_dim"]
    te = read_safetensors_f32(te_out, "image_embeds")
    ort = np.fromfile(ort_out, dtype="<f4").reshape(rows, proj)
    ref = np.fromfile(os.path.join(d, "torch_embeds.f32"), dtype="<f4").reshape(rows, proj)
    if te.shape != ort.shape:
        sys.exit(f"clip_ort: {shape}: tinyemo gave {list(te.shape)}, ORT {list(ort.shape)}")
    r = {"shape": shape, "rows": rows, "tinyemo_args": args.encode_args,
         "tinyemo_vs_ort": worst_row(te, ort), "tinyemo_vs_torch": worst_row(te, ref), "ort_vs_torch": worst_row(ort, ref),
         "bound": args.bound}
    r["ok"] = r["tinyemo_vs_ort"] <= args.bound
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tinyemo", required=True)
    ap.add_argument("--node-script", required=True)
    ap.add_argument("--ort", required=True, help="folder holding node_modules/onnxruntime-node")
    ap.add_argument("--models", required=True, help="folder of <shape>/ made by tools/clip_ort_model.py")
    ap.add_argument("--work", required=True)
    ap.add_argument("--shapes", default="vit-b-16,vit-l-14,vit-l-14-336")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--slack", type=float, default=0.03)
    ap.add_argument("--max-retries", type=int, default=3)
    ap.add_argument("--tinyemo-args", default="")
    ap.add_argument("--encode-args", default="")
    ap.add_argument("--bound", type=float, default=1e-3)
    args = ap.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    batches = [int(b) for b in args.batches.split(",") if b]
    os.makedirs(args.work, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("UV_THREADPOOL_SIZE", "1")  # libuv's pool (unused by session.run, which is synchronous) kept small

    lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
    machine = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    version = subprocess.run([args.tinyemo, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    doc = {
        "benchmark": "CLIP vision tower (image_embeds, f32 weights): tinyemo clip bench vs onnxruntime-node",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine, "cpus": os.cpu_count(), "threads": args.threads,
        "shapes": shapes, "batches": batches, "rounds": args.rounds, "min_seconds_per_run": args.min_seconds,
        "contention": {"slack": args.slack, "max_retries": args.max_retries,
                       "rule": "others' CPU s over a run (/proc/stat busy - the run's rusage) <= slack x wall x cpus + 0.1"},
        "tinyemo": {"binary": args.tinyemo, "version": version, "args": args.tinyemo_args,
                    "encode_args": args.encode_args},
        "onnxruntime": {"package": "onnxruntime-node", "session_options": {
            "intraOpNumThreads": args.threads, "interOpNumThreads": 1, "graphOptimizationLevel": "all",
            "executionMode": "sequential", "executionProviders": ["cpu"]},
            "UV_THREADPOOL_SIZE": env["UV_THREADPOOL_SIZE"]},
    }

    metas = {}
    for shape in shapes:
        d = os.path.join(args.models, shape)
        with open(os.path.join(d, "meta.json")) as f:
            metas[shape] = json.load(f)
    checks = [cross_check(s, os.path.join(args.models, s), metas[s], args, env) for s in shapes]
    doc["cross_check"] = checks
    for c in checks:
        print(f"clip_ort: {c['shape']}: worst-row ||tinyemo - ORT|| / ||ORT|| = {c['tinyemo_vs_ort']:.2e} "
              f"(bound {c['bound']:g}); vs torch: tinyemo {c['tinyemo_vs_torch']:.2e}, ORT {c['ort_vs_torch']:.2e}",
              file=sys.stderr)
    failed = [c["shape"] for c in checks if not c["ok"]]

    results = []
    if not failed:
        for shape in shapes:
            d, meta = os.path.join(args.models, shape), metas[shape]
            for batch in batches:
                te_cmd = [args.tinyemo, "clip", "bench", "--model", d, "--batch", str(batch), "--threads",
                          str(args.threads), "--json", "--min-seconds", str(args.min_seconds)] + shlex.split(args.tinyemo_args)
                ort_cmd = ["node", args.node_script, "--ort", args.ort, "--model", os.path.join(d, "model.onnx"),
                           "--image-size", str(meta["image_size"]), "--batch", str(batch), "--threads", str(args.threads),
                           "--min-seconds", str(args.min_seconds)]
                entry = {"shape": shape, "image_size": meta["image_size"], "batch": batch,
                         "tinyemo_seconds_per_image": [], "ort_seconds_per_image": [], "rounds": []}
                for rnd in range(args.rounds):
                    for engine, cmd in (("tinyemo", te_cmd), ("ort", ort_cmd)):
                        label = f"{shape} batch {batch} round {rnd + 1} {engine}"
                        result, rec = measured(cmd, env, args, label)
                        s = result["seconds_per_image"]
                        entry[f"{engine}_seconds_per_image"].append(s)
                        rec.update({"engine": engine, "round": rnd + 1, "seconds_per_image": s, "runs": result["runs"]})
                        if engine == "ort":
                            doc["onnxruntime"]["version"] = result.get("version")
                            doc["onnxruntime"]["node"] = result.get("node")
                            busy = [t for t in result["process_threads"] if t["cpu_seconds"] > 0.01]
                            rec["node_threads"] = len(result["process_threads"])
                            rec["node_busy_threads"] = busy
                        else:
                            doc["tinyemo"]["weights"] = result.get("weights")
                        entry["rounds"].append(rec)
                        print(f"clip_ort: {label}: {s:.4f} s/image ({result['runs']} runs, wall {rec['wall_seconds']:.1f} s, "
                              f"others {rec['others_cpu_seconds']:.2f} CPU s)", file=sys.stderr)
                te, ort = statistics.median(entry["tinyemo_seconds_per_image"]), statistics.median(entry["ort_seconds_per_image"])
                entry.update({"tinyemo_median": te, "ort_median": ort, "throughput_ratio_tinyemo_over_ort": ort / te,
                              "contended_rounds": sum(r["contended"] for r in entry["rounds"]),
                              "repeated_runs": sum(r["retries"] for r in entry["rounds"])})
                results.append(entry)
    doc["results"] = results
    doc["ok"] = not failed

    text = json.dumps(doc, indent=2) + "\n"
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    sys.stdout.write(text)

    md = ["| shape | batch | tinyemo s/image | ORT s/image | tinyemo/ORT throughput | worst-row diff | contended runs |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    diff = {c["shape"]: c["tinyemo_vs_ort"] for c in checks}
    for e in results:
        md.append(f"| {e['shape']} ({e['image_size']}) | {e['batch']} | {e['tinyemo_median']:.3f} | {e['ort_median']:.3f} | "
                  f"{e['throughput_ratio_tinyemo_over_ort']:.2f} | {diff[e['shape']]:.1e} | {e['contended_rounds']} of {2 * args.rounds} |")
    print("\n".join(md), file=sys.stderr)
    if failed:
        print(f"clip_ort: tinyemo and ORT disagree beyond {args.bound:g} on {', '.join(failed)}; not timed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
