"""Timed runs of peer benchmarks, shared by bench/peers/*_rounds.py: a fresh
process per run, and a run during which other processes took CPU time is
discarded and repeated.

A run is contended when the machine's busy time over the run (/proc/stat:
user, nice, system, irq, softirq, steal) exceeds the run's own CPU time
(getrusage of the waited child: every thread of it) by more than
`slack` x wall x CPUs + 0.1 s; it is repeated, at most `max_retries` times,
after which the least contended attempt is kept and marked `contended`.
Standard library only.
"""
import json
import os
import resource
import shlex
import struct
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq + steal) / HZ


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(cmd, env, prog="peer"):
    """Runs cmd; returns (stdout, wall, own CPU seconds, others' CPU seconds). Exits naming cmd when it fails."""
    c0, b0, t0 = children_cpu(), busy_seconds(), time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall, busy, own = time.monotonic() - t0, busy_seconds() - b0, children_cpu() - c0
    if p.returncode != 0:
        sys.exit(f"{prog}: {shlex.join(cmd)} failed with exit code {p.returncode}:\n{p.stderr.strip()}")
    return p.stdout, wall, own, max(0.0, busy - own)


def measured(cmd, env, args, label, prog="peer"):
    """Runs cmd (its last stdout line is JSON), repeating a contended run up to args.max_retries times with
    args.slack as above; returns (parsed JSON, round record)."""
    cpus = os.cpu_count()
    best = None
    for attempt in range(args.max_retries + 1):
        out, wall, own, other = run_once(cmd, env, prog)
        allowed = args.slack * wall * cpus + 0.1
        rec = {"wall_seconds": round(wall, 3), "cpu_seconds": round(own, 3), "others_cpu_seconds": round(other, 3),
               "others_allowed_seconds": round(allowed, 3), "retries": attempt}
        result = json.loads(out.strip().splitlines()[-1])
        if best is None or other < best[1]["others_cpu_seconds"]:
            best = (result, rec)
        if other <= allowed:
            rec["contended"] = False
            return result, rec
        print(f"{prog}: {label}: others used {other:.2f} CPU s of {wall:.1f} s wall (allowed {allowed:.2f}); "
              f"{'repeating' if attempt < args.max_retries else 'keeping the least contended attempt'}",
              file=sys.stderr)
    best[1]["contended"] = True
    best[1]["retries"] = args.max_retries
    return best


def contention_rule(args):
    """What the JSON documents record about the rule above."""
    return {"slack": args.slack, "max_retries": args.max_retries,
            "rule": "others' CPU s over a run (/proc/stat busy - the run's rusage) <= slack x wall x cpus + 0.1"}


def machine_name():
    lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
    return next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")


def write_json_atomic(path, doc):
    """Writes doc (indented) to path through a temporary file beside it; returns the text."""
    text = json.dumps(doc, indent=2) + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return text


def read_safetensors_f32(path, key, prog="peer"):
    """Tensor `key` of a .safetensors file as a float32 array (exits naming the file unless it is F32)."""
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        e = json.loads(f.read(n))[key]
        if e["dtype"] != "F32":
            sys.exit(f"{prog}: {path}: {key} is {e['dtype']}, expected F32")
        b, end = e["data_offsets"]
        f.seek(8 + n + b)
        return np.frombuffer(f.read(end - b), dtype="<f4").reshape(e["shape"])


def worst_row(a, b):
    """max over rows of ||a - b|| / ||b||, in float64."""
    a, b = a.astype("float64"), b.astype("float64")
    return float(max(((a[r] - b[r]) ** 2).sum() ** 0.5 / (b[r] ** 2).sum() ** 0.5 for r in range(b.shape[0])))
