#!/usr/bin/python3
"""Reference numbers for tinyemo's Metric Projector tests, computed with PyTorch.

Writes tests/data/projector/reference.safetensors (small tensors only):
  * a training-mode forward/backward of TinyEmo's AlignmentMLP (Linear ->
    BatchNorm1d -> GELU -> Dropout -> Linear) with a given dropout mask, then
    L2 normalisation and each loss against fixed label anchors: the output,
    the loss, every parameter gradient, the BatchNorm running statistics
    after the batch, and the eval-mode output;
  * AdamW + OneCycleLR: the learning rate and beta1 of every step (float64
    bit patterns, stored as I64) and the parameters after each of a few steps,
    for TinyEmo's schedule and for one with a visible warm-up.

Run:  /usr/bin/python3 tools/projector_reference.py [--out DIR]
Needs torch (1.13 here); the tests read the numbers and never need torch.
"""
import argparse
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


def save_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer (the format is a JSON header + raw bytes)."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def alignment_mlp(d_in, hidden):
    # TinyEmo projector.py AlignmentMLP.model
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Dropout(0.2),
                         nn.Linear(hidden, hidden))


def pos_neg_info_nce(image_embds, text_embds, labels, temperature=0.1):
    # TinyEmo utils.py pos_neg_infoNCE, semantics kept (including its numerator).
    batch_loss = []
    for i, label in enumerate(labels):
        pos_idxs = (labels == label).nonzero().squeeze()
        pos_idxs = pos_idxs[pos_idxs != i]
        neg_idxs = labels != label
        if pos_idxs.numel() == 0 or neg_idxs.sum() == 0:
            continue
        if pos_idxs.dim() == 0:
            pos_idxs = pos_idxs.unsqueeze(0)
        cos_pos = F.cosine_similarity(image_embds[i].unsqueeze(0), text_embds[i].unsqueeze(0)) / temperature
        cos_neg = F.cosine_similarity(image_embds[i].unsqueeze(0), text_embds[neg_idxs]) / temperature
        e = torch.exp(torch.cat([cos_pos, cos_neg], dim=0))
        batch_loss.append(-torch.log(e[: pos_idxs.size(0)].sum() / e.sum()))
    return torch.stack(batch_loss).mean()


def nt_xent(embeddings, labels, ref_emb, temperature=0.07):
    # pytorch_metric_learning NTXentLoss(embeddings, labels, ref_emb=ref_emb,
    # ref_labels=labels) with ref_labels the same tensor as labels (as TinyEmo
    # calls it): positives (i, j != i) with equal labels, negatives (i, k) with
    # different labels; cosine similarity; mean over positive pairs.
    mat = F.normalize(embeddings, dim=1) @ F.normalize(ref_emb, dim=1).t()
    matches = labels.unsqueeze(1) == labels.unsqueeze(0)
    diffs = ~matches
    matches = matches.clone()
    matches.fill_diagonal_(False)
    a1, p = torch.where(matches)
    a2, n = torch.where(diffs)
    pos = mat[a1, p].unsqueeze(1) / temperature
    neg = mat[a2, n] / temperature
    n_per_p = (a2.unsqueeze(0) == a1.unsqueeze(1)).float()
    neg = neg * n_per_p
    neg[n_per_p == 0] = torch.finfo(torch.float32).min
    max_val = torch.max(pos, torch.max(neg, dim=1, keepdim=True)[0]).detach()
    numerator = torch.exp(pos - max_val).squeeze(1)
    denominator = torch.sum(torch.exp(neg - max_val), dim=1) + numerator
    losses = -torch.log(numerator / denominator + torch.finfo(torch.float32).tiny)
    return losses.mean()


def forward_backward_reference(out):
    torch.manual_seed(1234)
    D, H, B, L = 12, 10, 8, 4
    model = alignment_mlp(D, H)
    with torch.no_grad():  # non-trivial BN affine and running stats
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.3, 0.3)
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(B, D) * 2.0
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 1])
    anchors = torch.randn(L, H)
    keep = (torch.rand(B, H) >= 0.2).float() / 0.8  # the dropout mask, as a scale

    out["x"] = x
    out["labels"] = labels
    out["anchors"] = anchors
    out["keep_scale"] = keep
    sd = model.state_dict()
    for k in ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "4.weight", "4.bias"]:
        out["init.model." + k] = sd[k].clone()

    model.eval()
    with torch.no_grad():
        out["eval_output"] = model(x)

    text = F.normalize(anchors[labels], p=2, dim=1)
    losses = {
        "infonce": lambda u: pos_neg_info_nce(u, text, labels),
        "cosine": lambda u: nn.CosineEmbeddingLoss(margin=0.5)(u, text, torch.ones(B)),
        "ntxent": lambda u: nt_xent(u, labels, text),
    }
    for name, fn in losses.items():
        m = alignment_mlp(D, H)
        m.load_state_dict(model.state_dict())
        m.train()
        h = m[2](m[1](m[0](x)))
        z = m[4](h * keep)  # Dropout(h) with the recorded mask
        u = F.normalize(z, p=2, dim=1)
        loss = fn(u)
        loss.backward()
        out[f"{name}.output"] = z.detach()
        out[f"{name}.loss"] = loss.detach().reshape(1)
        for pname, p in m.named_parameters():
            out[f"{name}.grad.{pname}"] = p.grad.clone()
        out[f"{name}.running_mean"] = m[1].running_mean.clone()
        out[f"{name}.running_var"] = m[1].running_var.clone()


def optimizer_reference(out, tag, total_steps, pct_start, steps_recorded):
    torch.manual_seed(99)
    p = nn.Parameter(torch.randn(37))
    out[f"{tag}.init"] = p.detach().clone()
    opt = torch.optim.AdamW([p], lr=2e-5)  # TinyEmo: lr overridden by the schedule
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-4, total_steps=total_steps, pct_start=pct_start)
    lrs, betas, params, grads = [], [], [], []
    for step in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        betas.append(opt.param_groups[0]["betas"][0])
        if step < steps_recorded:
            g = torch.randn(37) * 0.1
            opt.zero_grad()
            p.grad = g.clone()
            opt.step()
            grads.append(g)
            params.append(p.detach().clone())
        sched.step()  # past the recorded steps only the schedule advances
    out[f"{tag}.lr_f64_bits"] = torch.tensor(lrs, dtype=torch.float64).view(torch.int64)
    out[f"{tag}.beta1_f64_bits"] = torch.tensor(betas, dtype=torch.float64).view(torch.int64)
    out[f"{tag}.grads"] = torch.stack(grads)
    out[f"{tag}.params"] = torch.stack(params)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "projector"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = {}
    forward_backward_reference(out)
    optimizer_reference(out, "onecycle_tinyemo", total_steps=170, pct_start=0.005, steps_recorded=6)
    optimizer_reference(out, "onecycle_warmup", total_steps=12, pct_start=0.3, steps_recorded=12)
    save_safetensors(os.path.join(args.out, "reference.safetensors"), out,
                     {"generator": "tools/projector_reference.py", "torch": torch.__version__})
    print(f"wrote {len(out)} tensors to {os.path.join(args.out, 'reference.safetensors')}")


if __name__ == "__main__":
    main()
