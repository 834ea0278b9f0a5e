#!/usr/bin/python3
"""The cross-validation behind `tinyemo projector train --recipe best`.

Every candidate recipe is scored by stratified 5-fold cross-validation (x2
seeds) on the *development* part of Emotion6's training folder only: the files
a tinyemo model recorded as held out (`--split-from`, 20% of each emotion)
are removed first and never looked at, so the held-out accuracy reported in
docs/projector.md is not tuned on. Results are printed as JSON lines
{cfg, mean, std, n}; docs/projector.md lists them.

    /usr/bin/python3 tools/projector_recipe_search.py --features DIR \
        --split-from MODEL.safetensors --stage 1 [--workers 12] [--device cuda]

Stages (what docs/projector.md reports): 1 = losses x temperatures x epochs x
input normalisation (+ dropout, weight decay, learning rate, SWA probes);
2 = around the best (cosine, 5 epochs): epochs, learning rate, ensembles,
weight-averaged "soups", input noise, batch size, dropout, warm-up, CE
temperatures; 3 = a linear-probe ceiling, centred inputs, ensemble variants.
Runs on CPU or a GPU; a GPU machine with 16 cores did each stage in 1-2 minutes.
"""
import argparse
import itertools
import json
import multiprocessing as mp
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from projector_reference import alignment_mlp  # noqa: E402
from tinyemo_reference_train import held_out_files, load_folder  # noqa: E402


def stage_configs(stage):
    cfgs = []
    if stage == 1:
        for ep, norm in itertools.product([5, 10, 20], ["none", "l2"]):
            cfgs.append({"loss": "cosine", "epochs": ep, "norm": norm})
        for tau, ls, ep, norm in itertools.product([0.05, 0.1, 0.2], [0.0, 0.1], [5, 10, 20], ["none", "l2"]):
            cfgs.append({"loss": "ce", "tau": tau, "ls": ls, "epochs": ep, "norm": norm})
        cfgs += [{"loss": "infonce"}, {"loss": "infonce", "epochs": 10}, {"loss": "infonce", "epochs": 20},
                 {"loss": "ntxent"}, {"loss": "ntxent", "epochs": 20}]
        for extra in [{"drop": 0.5}, {"wd": 0.1}, {"max_lr": 1e-3}, {"max_lr": 2e-4}, {"swa": 5}]:
            cfgs.append({"loss": "ce", "tau": 0.1, "ls": 0.1, "epochs": 20, "norm": "l2", **extra})
            cfgs.append({"loss": "cosine", "epochs": 20, "norm": "l2", **extra})
    elif stage == 2:
        base = {"loss": "cosine", "epochs": 5}
        variants = [{"epochs": e} for e in [3, 4, 6, 8]]
        variants += [{"max_lr": lr, "epochs": e} for lr, e in itertools.product([2e-4, 1e-3], [5, 10])]
        variants += [{"ens": 5}, {"ens": 5, "norm": "l2"}, {"soup": 5}, {"soup": 5, "epochs": 10}]
        variants += [{"noise": n} for n in [0.1, 0.3, 0.6]]
        variants += [{"bs": 16}, {"bs": 64}, {"drop": 0.0}, {"drop": 0.5}, {"drop": 0.5, "epochs": 10},
                     {"wd": 0.05}, {"wd": 0.2}, {"pct": 0.1}, {"pct": 0.3}, {"swa": 3, "epochs": 8},
                     {"swa": 5, "epochs": 10, "max_lr": 2e-4}]
        cfgs = [{**base, **v} for v in variants]
        cfgs += [{"loss": "ce", "tau": t, "epochs": 5} for t in [0.3, 0.5, 1.0]]
        cfgs += [{"loss": "ce", "tau": 0.3, "epochs": 5, "ens": 5}, {"loss": "infonce", "ens": 5}]
    else:
        cfgs = [{"loss": "linear", "wd": wd, "norm": "l2"} for wd in [1e-4, 1e-3, 1e-2, 1e-1]]
        base = {"loss": "cosine", "epochs": 5}
        for v in [{"norm": "cl2"}, {"norm": "cl2", "ens": 5}, {"ens": 5, "bs": 16, "norm": "l2"},
                  {"ens": 5, "pct": 0.3, "norm": "l2"}, {"ens": 10, "norm": "l2"},
                  {"ens": 5, "bs": 16, "pct": 0.3, "norm": "l2"}, {"ens": 5, "epochs": 10, "max_lr": 2e-4, "norm": "l2"}]:
            cfgs.append({**base, **v})
        cfgs += [{"loss": "ce", "tau": 0.5, "epochs": 5, "ens": 5, "norm": "l2"},
                 {"loss": "ce", "tau": 0.5, "epochs": 5, "bs": 16}]
    return cfgs


def info_nce_batched(C, y, t=0.1):
    # TinyEmo's pos_neg_infoNCE on the cosine matrix C [B, L] (numerator = the
    # first P entries of [pos, negatives in batch order]), vectorised.
    same = y[:, None] == y[None, :]
    P = same.sum(1) - 1
    neg = ~same
    S = C[:, y] / t
    e_pos = torch.exp(torch.gather(C, 1, y[:, None])[:, 0] / t)
    in_num = neg & (torch.cumsum(neg.long(), 1) <= (P[:, None] - 1))
    e = torch.exp(S)
    den, num = e_pos + (e * neg).sum(1), e_pos + (e * in_num).sum(1)
    valid = (P > 0) & (neg.sum(1) > 0)
    return -(torch.log(num / den))[valid].mean() if valid.any() else None


def nt_xent_batched(C, y, t=0.07):
    same = y[:, None] == y[None, :]
    P = same.sum(1) - 1
    neg = ~same
    sp = torch.gather(C, 1, y[:, None])[:, 0] / t
    den = torch.exp(sp) + (torch.exp(C[:, y] / t) * neg).sum(1)
    if P.sum() == 0 or neg.sum() == 0:
        return None
    return (-torch.log(torch.exp(sp) / den + torch.finfo(torch.float32).tiny) * P).sum() / P.sum()


def prep(x, mode, mean):
    if mode == "l2":
        return F.normalize(x, dim=1) * np.sqrt(x.shape[1])
    if mode == "cl2":
        return F.normalize(x - mean, dim=1) * np.sqrt(x.shape[1])
    return x


def set_flat(params, vec):
    with torch.no_grad():
        off = 0
        for p in params:
            p.copy_(vec[off:off + p.numel()].view_as(p))
            off += p.numel()


def train_eval(xtr, ytr, xva, yva, dev, seed=0, loss="infonce", epochs=5, H=1280, max_lr=5e-4, pct=0.005, wd=0.01,
               drop=0.2, norm="none", ls=0.0, tau=None, ens=1, bs=32, swa=0, soup=1, noise=0.0):
    mean = xtr.mean(0)
    xtr, xva = prep(xtr, norm, mean), prep(xva, norm, mean)
    if loss == "linear":  # logistic-regression ceiling, L2-regularised, LBFGS
        W = torch.zeros(xtr.shape[1], 6, device=dev, requires_grad=True)
        b = torch.zeros(6, device=dev, requires_grad=True)
        opt = torch.optim.LBFGS([W, b], max_iter=500, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            l = F.cross_entropy(xtr @ W + b, ytr) + wd * (W * W).sum()
            l.backward()
            return l
        opt.step(closure)
        return ((xva @ W + b).argmax(1) == yva).float().mean().item()
    sims, soup_vecs = 0, []
    for e in range(max(ens, soup)):
        torch.manual_seed(seed * 100 + (0 if soup > 1 else e))  # soups share the initialisation
        m = alignment_mlp(xtr.shape[1], H).to(dev)
        m[3].p = drop
        A = nn.Parameter(torch.randn(6, H, device=dev))
        params = list(m.parameters()) + [A]
        opt = torch.optim.AdamW(params, lr=max_lr / 25, weight_decay=wd)
        if soup > 1:
            torch.manual_seed(seed * 100 + e + 1000)
        nb = len(xtr) // bs
        sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=nb * epochs, pct_start=pct)
        avg, n_avg = None, 0
        for ep in range(epochs):
            m.train()
            perm = torch.randperm(len(xtr), device=dev)
            for bi in range(nb):
                idx = perm[bi * bs:(bi + 1) * bs]
                x, y = xtr[idx], ytr[idx]
                if noise > 0:
                    x = x + noise * torch.randn_like(x) * x.std()
                C = F.normalize(m(x), dim=1) @ F.normalize(A, dim=1).t()
                if loss == "infonce":
                    l = info_nce_batched(C, y, tau or 0.1)
                elif loss == "cosine":
                    l = (1 - torch.gather(C, 1, y[:, None])).mean()
                elif loss == "ntxent":
                    l = nt_xent_batched(C, y, tau or 0.07)
                else:
                    l = F.cross_entropy(C / (tau or 0.1), y, label_smoothing=ls)
                opt.zero_grad()
                if l is not None:
                    l.backward()
                opt.step()
                sch.step()
            if swa and ep >= epochs - swa:
                v = torch.cat([p.detach().flatten() for p in params])
                avg, n_avg = (v.clone() if avg is None else avg + v), n_avg + 1
        averaged = None
        if swa:
            averaged = avg / n_avg
        elif soup > 1:
            soup_vecs.append(torch.cat([p.detach().flatten() for p in params]))
            if len(soup_vecs) < soup:
                continue
            averaged = torch.stack(soup_vecs).mean(0)
        if averaged is not None:  # weight averages need fresh BatchNorm statistics
            set_flat(params, averaged)
            with torch.no_grad():
                z1 = m[0](xtr)
                m[1].running_mean.copy_(z1.mean(0))
                m[1].running_var.copy_(z1.var(0, unbiased=True))
        m.eval()
        with torch.no_grad():
            sims = sims + F.normalize(m(xva), dim=1) @ F.normalize(A, dim=1).t()
    return (sims.argmax(1) == yva).float().mean().item()


def folds(y, k=5, seed=123):
    g = np.random.RandomState(seed)
    f = np.zeros(len(y), int)
    for c in np.unique(y):
        idx = np.where(y == c)[0]
        g.shuffle(idx)
        f[idx] = np.arange(len(idx)) % k
    return f


_DATA = {}


def job(args):
    cfg, fold, seed, device = args
    torch.set_num_threads(1)
    x, y = (t.to(device) for t in _DATA["xy"])
    f = _DATA["folds"]
    tr, va = torch.tensor(np.where(f != fold)[0]).to(device), torch.tensor(np.where(f == fold)[0]).to(device)
    return json.dumps(cfg), train_eval(x[tr], y[tr], x[va], y[va], device, seed=seed, **cfg)


def init_worker(x, y, f):
    _DATA["xy"], _DATA["folds"] = (x, y), f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True)
    ap.add_argument("--split-from", required=True, help="tinyemo model whose held-out files are excluded")
    ap.add_argument("--stage", type=int, choices=[1, 2, 3], required=True)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    x, y, files, _ = load_folder(args.features)
    held = held_out_files(args.split_from)
    dev = torch.tensor([f not in held for f in files])
    x, y = x[dev], y[dev]
    f = folds(y.numpy())
    cfgs = stage_configs(args.stage)
    jobs = [(c, j, s, args.device) for c in cfgs for s in range(args.seeds) for j in range(5)]
    results = {}
    with mp.get_context("spawn").Pool(args.workers, initializer=init_worker, initargs=(x, y, f)) as pool:
        for key, acc in pool.imap_unordered(job, jobs):
            results.setdefault(key, []).append(acc)
    for c in cfgs:
        a = results[json.dumps(c)]
        print(json.dumps({"cfg": c, "mean": float(np.mean(a)), "std": float(np.std(a)), "n": len(a)}))


if __name__ == "__main__":
    main()
