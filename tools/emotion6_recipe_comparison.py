#!/usr/bin/python3
"""tinyemo's TinyEmo recipe against TinyEmo's PyTorch trainer on the Emotion6
features: the statistics behind docs/data.md ("Emotion6: tinyemo against the
PyTorch trainer"). Standard library only; reads the JSON that the commands
below write.

1. Same held-out split (split seed 0), training seeds 0-9, both implementations:
     build/tinyemo eval --dataset emotion6=../shared/data/emotion6-clip-vit-l-14/train \\
         --train emotion6 --seeds 0-9 --out R/tinyemo10
     (cd tools && /usr/bin/python3 tinyemo_reference_train.py --features ../../shared/data/emotion6-clip-vit-l-14/train \\
         --held-out-from R/tinyemo10.json --dataset emotion6 --seeds 0 1 2 3 4 5 6 7 8 9 > R/torch10.json)
2. Paired over held-out splits k = 0-9 (each implementation trained with seed k on split k):
     build/tinyemo eval ... --seeds K --split-seed K --no-linear-probe --out R/split_K
     (cd tools && ... --held-out-from R/split_K.json --seeds K > R/torch_split_K.json)

    /usr/bin/python3 tools/emotion6_recipe_comparison.py R
"""
import itertools
import json
import math
import os
import sys


def mean(v):
    return sum(v) / len(v)


def sd(v):
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def t_cdf(t, df, panels=20000):
    """P(T <= t) by Simpson integration of the density (accurate to ~1e-9 here)."""
    def pdf(x):
        return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) * \
            (1 + x * x / df) ** (-(df + 1) / 2)
    a = abs(t)
    h = a / panels
    s = pdf(0) + pdf(a) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, panels))
    half = s * h / 3
    return 0.5 + half if t >= 0 else 0.5 - half


def t_quantile_975(df):
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < 0.975 else (lo, mid)
    return (lo + hi) / 2


def ci95(v):
    half = t_quantile_975(len(v) - 1) * sd(v) / math.sqrt(len(v))
    return mean(v) - half, mean(v) + half


def welch(a, b):
    va, vb = sd(a) ** 2 / len(a), sd(b) ** 2 / len(b)
    t = (mean(a) - mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, df, 2 * t_cdf(-abs(t), df)


def rank_sum_exact(a, b):
    """Two-sided exact Mann-Whitney (Wilcoxon rank-sum) p with mid-ranks, by enumeration."""
    allv = sorted((round(x, 12), i) for i, x in enumerate(a + b))
    ranks = [0.0] * len(allv)
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[allv[k][1]] = (i + j) / 2 + 1
        i = j + 1
    n = len(a)
    observed = sum(ranks[:n])
    centre = n * (len(a) + len(b) + 1) / 2
    count = total = 0
    for combo in itertools.combinations(range(len(ranks)), n):
        w = sum(ranks[c] for c in combo)
        total += 1
        count += abs(w - centre) >= abs(observed - centre) - 1e-9
    return observed, count / total


def paired(a, b):
    d = [x - y for x, y in zip(a, b)]
    t = mean(d) / (sd(d) / math.sqrt(len(d)))
    p_t = 2 * t_cdf(-abs(t), len(d) - 1)
    nz = [x for x in d if abs(x) > 1e-12]
    mags = sorted((round(abs(x), 12), i) for i, x in enumerate(nz))
    ranks = [0.0] * len(nz)
    i = 0
    while i < len(mags):
        j = i
        while j + 1 < len(mags) and mags[j + 1][0] == mags[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[mags[k][1]] = (i + j) / 2 + 1
        i = j + 1
    w_plus = sum(r for r, x in zip(ranks, nz) if x > 0)
    centre = len(nz) * (len(nz) + 1) / 4
    count = sum(abs(sum(r for r, s in zip(ranks, signs) if s) - centre) >= abs(w_plus - centre) - 1e-9
                for signs in itertools.product([0, 1], repeat=len(nz)))
    return mean(d), sd(d), t, p_t, w_plus, count / 2 ** len(nz), d


def main():
    root = sys.argv[1]
    tinyemo = json.load(open(os.path.join(root, "tinyemo10.json")))
    ours = next(c for c in tinyemo["cells"] if c["method"].startswith("tinyemo projector"))
    torch = json.load(open(os.path.join(root, "torch10.json")))
    a, b = ours["accuracy"], torch["accuracy"]
    assert ours["seeds"] == torch["seeds"], "the two runs used other seeds"
    out = {"same_split": {
        "seeds": ours["seeds"], "n_test": ours["n"],
        "tinyemo": {"accuracy": a, "mean": mean(a), "sd": sd(a), "ci95": ci95(a), "min": min(a)},
        "pytorch": {"accuracy": b, "mean": mean(b), "sd": sd(b), "ci95": ci95(b), "min": min(b)}}}
    t, df, p = welch(a, b)
    w, p_rs = rank_sum_exact(a, b)
    out["same_split"]["welch"] = {"t": t, "df": df, "p": p}
    out["same_split"]["rank_sum"] = {"w_tinyemo": w, "p_exact": p_rs}
    md, sdd, t, p_t, w_plus, p_w, d = paired(a, b)
    out["same_split"]["paired_by_seed_number"] = {"mean_difference": md, "sd": sdd, "t": t, "p_t": p_t,
                                                  "w_plus": w_plus, "p_wilcoxon": p_w}
    splits_a, splits_b = [], []
    for k in range(10):
        fa = os.path.join(root, f"split_{k}.json")
        fb = os.path.join(root, f"torch_split_{k}.json")
        if not (os.path.exists(fa) and os.path.exists(fb)) or os.path.getsize(fb) == 0:
            continue
        splits_a.append(next(c for c in json.load(open(fa))["cells"] if c["method"].startswith("tinyemo"))["accuracy"][0])
        splits_b.append(json.load(open(fb))["accuracy"][0])
    if len(splits_a) >= 2:
        md, sdd, t, p_t, w_plus, p_w, d = paired(splits_a, splits_b)
        out["paired_over_splits"] = {
            "splits": len(splits_a), "tinyemo": splits_a, "pytorch": splits_b, "differences": d,
            "tinyemo_mean": mean(splits_a), "tinyemo_sd": sd(splits_a),
            "pytorch_mean": mean(splits_b), "pytorch_sd": sd(splits_b),
            "mean_difference": md, "sd_difference": sdd, "ci95_difference": ci95(d),
            "t": t, "p_t": p_t, "w_plus": w_plus, "p_wilcoxon": p_w}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
