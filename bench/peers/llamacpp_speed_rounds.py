#!/usr/bin/env python3
"""The measuring half of bench/peers/llamacpp_speed.sh (read that file's
header): checks that llama.cpp and tinyemo compute the same logits from each
GGUF file, then times `tinyemo lm bench` and bench/peers/llamacpp_bench.cpp on
it in alternated rounds, a fresh process per run (contended runs repeated:
bench/peers/peer_runs.py), and prints one JSON document (stdout and OUT) and a
markdown table (stderr). Needs only the standard library and numpy.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

import peer_runs

PROG = "llamacpp_speed"
# The prompt of the logits check (ids below every vocabulary's size here).
CHECK_IDS = [1, 17, 300, 5, 99, 511, 42, 7, 250, 3, 64, 128]


def run_once(cmd, env):
    return peer_runs.run_once(cmd, env, PROG)


def write_ids(path, ids):
    """A safetensors file holding input_ids, I64 [T]."""
    data = np.asarray(ids, dtype="<i8").tobytes()
    header = json.dumps({"input_ids": {"dtype": "I64", "shape": [len(ids)], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


def read_logits(path):
    return peer_runs.read_safetensors_f32(path, "logits", prog=PROG)


worst_row = peer_runs.worst_row


def cross_check(f, args, env):
    """llama.cpp's and tinyemo's logits of CHECK_IDS from the same file, with llamacpp_check.sh's bounds; for a
    quantised file also each engine's distance to the exact F32 logits of its dequantised weights."""
    name, path, quant = f["name"], f["path"], f["quant"]
    ids = os.path.join(args.work, "check_ids.safetensors")
    write_ids(ids, CHECK_IDS)
    ours = os.path.join(args.work, f"{name}.tinyemo_logits.safetensors")
    theirs = os.path.join(args.work, f"{name}.llamacpp_logits.f32")
    run_once([args.tinyemo, "--threads", str(args.threads), "lm", "logits", "--model", path, "--ids", ids,
              "--out", ours], env)
    run_once([args.llamacpp_logits, path, theirs] + [str(i) for i in CHECK_IDS], env)
    a = read_logits(ours)
    b = np.fromfile(theirs, dtype="<f4").reshape(a.shape[0], -1)
    if a.shape != b.shape:
        sys.exit(f"{PROG}: {name}: tinyemo gave logits {list(a.shape)}, llama.cpp {list(b.shape)}")
    bound = {"f32": 1e-3, "f16": 2e-3}.get(quant, 3e-2)
    r = {"file": name, "positions": int(a.shape[0]), "vocab": int(a.shape[1]), "bound": bound,
         "worst_row_rel_diff": worst_row(a, b), "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1)))}
    ok = r["worst_row_rel_diff"] <= bound
    if quant not in ("f32", "f16"):
        exact_path = os.path.join(args.work, f"{name}.exact_logits.safetensors")
        run_once([args.tinyemo, "--threads", str(args.threads), "lm", "logits", "--model", path, "--dtype", "f32",
                  "--ids", ids, "--out", exact_path], env)
        exact = read_logits(exact_path)
        r["llamacpp_vs_exact"], r["tinyemo_vs_exact"] = worst_row(b, exact), worst_row(a, exact)
        ok = ok and r["llamacpp_vs_exact"] <= bound
    r["ok"] = bool(ok)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tinyemo", required=True)
    ap.add_argument("--llamacpp-bench", required=True)
    ap.add_argument("--llamacpp-logits", required=True)
    ap.add_argument("--files", required=True, help="comma-separated NAME=ARCH:QUANT:PATH.gguf")
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--flash-attn", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--poll", type=int, default=50, help="llama.cpp's threadpool polling level (llama-bench's 50)")
    ap.add_argument("--slack", type=float, default=0.03)
    ap.add_argument("--max-retries", type=int, default=3)
    ap.add_argument("--tinyemo-args", default="",
                    help="extra `tinyemo lm bench` options for the timed runs only, e.g. \"--compute bf16\" (the "
                         "logits cross-check keeps the defaults)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    env = dict(os.environ)

    files = []
    for spec in (s for s in args.files.split(",") if s):
        name, rest = spec.split("=", 1)
        arch, quant, path = rest.split(":", 2)
        files.append({"name": name, "arch": arch, "quant": quant, "path": path, "bytes": os.path.getsize(path)})

    version = subprocess.run([args.tinyemo, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    doc = {
        "benchmark": "LM prefill and batch-1 decode on the same GGUF files: tinyemo lm bench vs llama.cpp "
                     "(bench/peers/llamacpp_bench.cpp on node-llama-cpp's prebuilt libllama)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": peer_runs.machine_name(), "cpus": os.cpu_count(), "threads": args.threads,
        "prompt_tokens": args.prompt_tokens, "gen_tokens": args.gen_tokens, "rounds": args.rounds,
        "files": files,
        "schedule": "both: the faster of two prefills of prompt_tokens ids (i * 7919 + 13) mod vocab from an empty "
                    "cache, then gen_tokens single-token decodes after the prompt, each fed the previous argmax",
        "contention": peer_runs.contention_rule(args),
        "tinyemo": {"binary": args.tinyemo, "version": version, "lm_bench_args": args.tinyemo_args.split()},
        "llamacpp": {"binary": args.llamacpp_bench, "settings": {
            "n_threads": args.threads, "n_threads_batch": args.threads, "n_batch": max(2048, args.prompt_tokens),
            "n_ubatch": max(512, args.prompt_tokens), "kv_cache": "f16", "flash_attn": args.flash_attn,
            "threadpool_poll": args.poll, "n_gpu_layers": 0}},
    }

    checks = [cross_check(f, args, env) for f in files]
    doc["cross_check"] = checks
    for c in checks:
        extra = (f"; vs exact F32 logits: llama.cpp {c['llamacpp_vs_exact']:.2e}, tinyemo {c['tinyemo_vs_exact']:.2e}"
                 if "llamacpp_vs_exact" in c else "")
        print(f"{PROG}: {c['file']}: worst-row ||tinyemo - llama.cpp|| / ||llama.cpp|| = {c['worst_row_rel_diff']:.2e} "
              f"(bound {c['bound']:g}), top-1 agreement {c['top1_agreement']:.2f}{extra}", file=sys.stderr)
    failed = [c["file"] for c in checks if not c["ok"]]

    results = []
    if not failed:
        for f in files:
            te_cmd = [args.tinyemo, "--threads", str(args.threads), "lm", "bench", "--model", f["path"],
                      "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens), "--json",
                      *args.tinyemo_args.split()]
            lc_cmd = [args.llamacpp_bench, f["path"], "--threads", str(args.threads), "--prompt-tokens",
                      str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens), "--flash-attn", args.flash_attn, "--poll", str(args.poll)]
            entry = {"file": f["name"], "arch": f["arch"], "quant": f["quant"], "rounds": []}
            series = {f"{e}_{k}": [] for e in ("tinyemo", "llamacpp") for k in ("prefill_tokens_per_s", "decode_tokens_per_s")}
            for rnd in range(args.rounds):
                for engine, cmd in (("tinyemo", te_cmd), ("llamacpp", lc_cmd)):
                    label = f"{f['name']} round {rnd + 1} {engine}"
                    result, rec = peer_runs.measured(cmd, env, args, label, PROG)
                    if result.get("threads") != args.threads:
                        sys.exit(f"{PROG}: {label} ran {result.get('threads')} threads, not {args.threads}")
                    rec.update({"engine": engine, "round": rnd + 1,
                                "prefill_tokens_per_s": result["prefill_tokens_per_s"],
                                "decode_tokens_per_s": result["decode_tokens_per_s"]})
                    for k in ("prefill_tokens_per_s", "decode_tokens_per_s"):
                        series[f"{engine}_{k}"].append(result[k])
                    if engine == "llamacpp":
                        doc["llamacpp"]["cpu_backend"] = result.get("cpu_backend")
                        doc["llamacpp"]["system_info"] = result.get("system_info")
                        doc["llamacpp"]["flash_attn_log"] = result.get("flash_attn_log")
                    else:
                        rec["weight_dtype"] = result.get("weight_dtype")
                        rec["copy_bandwidth_gb_s"] = result.get("copy_bandwidth_gb_s")
                    entry["rounds"].append(rec)
                    print(f"{PROG}: {label}: prefill {rec['prefill_tokens_per_s']:.1f} tok/s, decode "
                          f"{rec['decode_tokens_per_s']:.2f} tok/s (wall {rec['wall_seconds']:.1f} s, others "
                          f"{rec['others_cpu_seconds']:.2f} CPU s)", file=sys.stderr)
            entry.update(series)
            med = {k: statistics.median(v) for k, v in series.items()}
            entry["medians"] = med
            entry["ratio_tinyemo_over_llamacpp"] = {
                "prefill": med["tinyemo_prefill_tokens_per_s"] / med["llamacpp_prefill_tokens_per_s"],
                "decode": med["tinyemo_decode_tokens_per_s"] / med["llamacpp_decode_tokens_per_s"]}
            entry["contended_runs"] = sum(r["contended"] for r in entry["rounds"])
            entry["repeated_runs"] = sum(r["retries"] for r in entry["rounds"])
            results.append(entry)
    doc["results"] = results
    doc["ok"] = not failed

    sys.stdout.write(peer_runs.write_json_atomic(args.out, doc))

    md = ["| file | prefill tok/s tinyemo | llama.cpp | ratio | decode tok/s tinyemo | llama.cpp | ratio | "
          "worst-row diff | contended runs |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    diff = {c["file"]: c["worst_row_rel_diff"] for c in checks}
    for e in results:
        m, r = e["medians"], e["ratio_tinyemo_over_llamacpp"]
        md.append(f"| {e['file']} | {m['tinyemo_prefill_tokens_per_s']:.1f} | {m['llamacpp_prefill_tokens_per_s']:.1f} | "
                  f"{r['prefill']:.2f} | {m['tinyemo_decode_tokens_per_s']:.2f} | {m['llamacpp_decode_tokens_per_s']:.2f} | "
                  f"{r['decode']:.2f} | {diff[e['file']]:.1e} | {e['contended_runs']} of {2 * args.rounds} |")
    print("\n".join(md), file=sys.stderr)
    if failed:
        print(f"{PROG}: tinyemo and llama.cpp disagree beyond the bounds on {', '.join(failed)}; not timed",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
