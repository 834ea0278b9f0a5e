#!/usr/bin/python3
"""TinyEmo's projector trainer re-run in PyTorch, for comparison with tinyemo.

Reproduces projector_mps/src/model/model.py's Model.train() on precomputed
features: AlignmentMLP (Linear -> BatchNorm1d -> GELU -> Dropout(0.2) ->
Linear), L2-normalised image and label embeddings, TinyEmo's pos_neg_infoNCE
(or CosineEmbedding / NT-Xent), AdamW(lr=2e-5, weight decay 0.01) with
OneCycleLR(max_lr=5e-4, pct_start=0.005) stepped every batch, DataLoader
(batch 32, shuffle, drop_last). Label anchors: learned from N(0, 1) like
`tinyemo projector train` without --anchors (TinyEmo takes them from the LM).
Evaluation: nearest anchor by L2 between normalised vectors (TinyEmo's
compute_top_accuracy).

Modes:
  accuracy on the held-out files a tinyemo model recorded:
    /usr/bin/python3 tools/tinyemo_reference_train.py --features DIR \
        --split-from MODEL.safetensors [--loss infonce] [--seeds 0 1 2 3 4]
  or the held-out files of a `tinyemo eval --out R` report (R.json):
    /usr/bin/python3 tools/tinyemo_reference_train.py --features DIR \
        --held-out-from R.json --dataset emotion6 --seeds 0 1 2 3 4 5 6 7 8 9
  time 5 epochs on N x D -> H like bench/projector_train_bench:
    /usr/bin/python3 tools/tinyemo_reference_train.py --bench [--threads 2]
Needs torch (1.13 here); tinyemo itself never does.
"""
import argparse
import glob
import json
import os
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from projector_reference import alignment_mlp, nt_xent, pos_neg_info_nce


def load_folder(root):
    """TinyEmo layout <label>/<name>.pt, in its dataloader's order."""
    labels = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    xs, ys, files = [], [], []
    for li, label in enumerate(labels):
        for path in sorted(glob.glob(os.path.join(root, label, "*.pt"))):
            xs.append(torch.load(path).float().reshape(-1))
            ys.append(li)
            files.append(f"{label}/{os.path.splitext(os.path.basename(path))[0]}")
    return torch.stack(xs), torch.tensor(ys), files, labels


def held_out_files(model_path):
    with open(model_path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["__metadata__"]
    return set(json.loads(meta["split"])["val_files"])


def eval_held_out_files(report_path, dataset):
    with open(report_path) as f:
        report = json.load(f)
    return set(report["protocol"]["datasets"][dataset]["held_out_files"])


def train(x, y, num_labels, hidden, epochs, loss_name, seed, batch=32):
    torch.manual_seed(seed)
    model = alignment_mlp(x.shape[1], hidden)
    anchors = nn.Parameter(torch.randn(num_labels, hidden))
    opt = torch.optim.AdamW(list(model.parameters()) + [anchors], lr=2e-5)
    batches = len(x) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.0005, total_steps=batches * epochs, pct_start=0.005)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for b in range(batches):
            idx = perm[b * batch:(b + 1) * batch]
            labels = y[idx]
            image = F.normalize(model(x[idx]), p=2, dim=1)
            text = F.normalize(anchors[labels], p=2, dim=1)
            if loss_name == "infonce":
                loss = pos_neg_info_nce(image, text, labels)
            elif loss_name == "cosine":
                loss = nn.CosineEmbeddingLoss(margin=0.5)(image, text, torch.ones(len(idx)))
            else:
                loss = nt_xent(image, labels, text)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model, anchors


def accuracy(model, anchors, x, y):
    model.eval()
    with torch.no_grad():
        u = F.normalize(model(x), p=2, dim=1)
        a = F.normalize(anchors, p=2, dim=1)
        predicted = torch.cdist(u, a).argmin(dim=1)
    return (predicted == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", help="feature folder <label>/<name>.pt")
    ap.add_argument("--split-from", help="tinyemo model whose recorded held-out files to evaluate on")
    ap.add_argument("--held-out-from", help="tinyemo eval JSON report whose held-out files to evaluate on")
    ap.add_argument("--dataset", default="emotion6", help="the dataset of --held-out-from")
    ap.add_argument("--loss", default="infonce", choices=["infonce", "cosine", "ntxent"])
    ap.add_argument("--hidden", type=int, default=1280)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", action="store_true", help="time 5 epochs on 1386 x 768 -> 1280 (random features)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.bench:
        torch.manual_seed(0)
        x, y = torch.randn(1386, 768) * 0.7, torch.arange(1386) % 6
        t0 = time.perf_counter()
        train(x, y, 6, args.hidden, args.epochs, args.loss, seed=0)
        print(json.dumps({"pytorch": torch.__version__, "threads": torch.get_num_threads(), "samples": 1386,
                          "input": 768, "hidden": args.hidden, "epochs": args.epochs, "loss": args.loss,
                          "seconds": time.perf_counter() - t0}))
        return

    x, y, files, labels = load_folder(args.features)
    held = eval_held_out_files(args.held_out_from, args.dataset) if args.held_out_from else held_out_files(args.split_from)
    is_val = torch.tensor([f in held for f in files])
    assert int(is_val.sum()) == len(held), "the folder lacks some of the model's held-out files"
    accs = []
    for seed in args.seeds:
        model, anchors = train(x[~is_val], y[~is_val], len(labels), args.hidden, args.epochs, args.loss, seed)
        accs.append(accuracy(model, anchors, x[is_val], y[is_val]))
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / len(accs)) ** 0.5
    print(json.dumps({"loss": args.loss, "train": int((~is_val).sum()), "val": int(is_val.sum()), "seeds": args.seeds,
                      "accuracy": accs, "mean": mean, "std": std}))


if __name__ == "__main__":
    main()
