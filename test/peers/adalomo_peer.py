#!/usr/bin/python3
"""AdaLomo's update of one param in PyTorch, as the published optimizer computes it (OpenLMLab/LOMO,
lomo_optim/adalomo.py, AdaLomo.fuse_update, non-ZeRO path): factored second moments exp_avg_sq_row
and exp_avg_sq_col for a matrix (rank > 2 viewed as rows over the last axis), the full exp_avg_sq
for a vector; beta2t = 1 - step^decay_rate; update normalised by max(1, RMS / clip_threshold); the
step scaled by max(eps[1], RMS(p)); weight decay as p *= 1 - lr * wd with the scaled lr. Written
with torch operations in float64 and no code shared with lomoc.

usage: adalomo_peer.py JOBS.json OUT.json
JOBS.json: [{"shape": [...], "w": [...], "g": [...], "row": [...], "col": [...], "step": t, "lr": x,
             "wd": x, "eps1": x, "eps2": x, "clipThreshold": x, "decayRate": x}, ...]
For a vector, "col" is exp_avg_sq and "row" is ignored. OUT.json: [{"w": [...], "row": [...] or null,
"col": [...]}, ...]
"""
import json
import math
import sys

import torch

DT = torch.float64


def rms(t):
    return t.norm(2) / (t.numel() ** 0.5)


def update(job):
    shape = job['shape']
    p = torch.tensor(job['w'], dtype=DT)
    grad = torch.tensor(job['g'], dtype=DT)
    beta2t = 1.0 - math.pow(job['step'], job['decayRate'])
    sq = grad ** 2 + job['eps1']
    if len(shape) > 1:
        n = shape[-1]
        p, grad, sq = p.view(-1, n), grad.view(-1, n), sq.view(-1, n)
        row = torch.tensor(job['row'], dtype=DT).mul_(beta2t).add_(sq.mean(dim=-1), alpha=1.0 - beta2t)
        col = torch.tensor(job['col'], dtype=DT).mul_(beta2t).add_(sq.mean(dim=-2), alpha=1.0 - beta2t)
        r_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt().unsqueeze(-1)
        c_factor = col.unsqueeze(-2).rsqrt()
        u = torch.mul(r_factor, c_factor).mul_(grad)
    else:
        row = None
        col = torch.tensor(job['col'], dtype=DT).mul_(beta2t).add_(sq, alpha=1.0 - beta2t)
        u = col.rsqrt().mul(grad)
    u.div_((rms(u) / job['clipThreshold']).clamp_(min=1.0))
    lr = job['lr'] * max(job['eps2'], float(rms(p)))
    p = p.clone()
    p.mul_(1.0 - lr * job['wd'])
    p.add_(u, alpha=-lr)
    return {'w': p.reshape(-1).tolist(), 'row': None if row is None else row.tolist(), 'col': col.tolist()}


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    with open(sys.argv[2], 'w') as f:
        json.dump([update(j) for j in jobs], f)


if __name__ == '__main__':
    main()
