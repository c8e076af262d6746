#!/usr/bin/env python3
"""PyTorch CPU peer for bench/step.ts: models/gpt.ts in PyTorch, one SGD training step timed.

The same GPT-2 as models/gpt.ts (token + learned position embeddings, pre-LayerNorm blocks,
causal multi-head attention with q/k/v/proj linears with biases, a 4x GELU (tanh) MLP, a final
LayerNorm, an LM head tied to the token embedding, mean cross-entropy), initialised the same way
(normal 0.02, position table 0.01, residual projections 0.02/sqrt(2 layers), zero biases, unit
gains). Each step: forward, backward, SGD update, and `loss.item()` (one readback, as lomoc's).
Warm-up steps first, then the median of the timed steps. Prints one JSON line.

  python3 scripts/bench-peers/gpt_torch.py [--steps 5] [--warmup 2] [--threads N]
Debian: apt-get install -y python3-torch libopenblas0-pthread (then /usr/bin/python3).
"""
import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--batch', type=int, default=8)
p.add_argument('--seq', type=int, default=128)
p.add_argument('--vocab', type=int, default=256)
p.add_argument('--width', type=int, default=128)
p.add_argument('--layers', type=int, default=4)
p.add_argument('--heads', type=int, default=4)
p.add_argument('--steps', type=int, default=5)
p.add_argument('--warmup', type=int, default=2)
p.add_argument('--lr', type=float, default=0.01)
p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)

B, T, V, D, L, H = a.batch, a.seq, a.vocab, a.width, a.layers, a.heads


def normal(*shape, std):
    return (torch.randn(*shape) * std).requires_grad_()


def zeros(*shape):
    return torch.zeros(*shape, requires_grad=True)


def ones(*shape):
    return torch.ones(*shape, requires_grad=True)


res_std = 0.02 / math.sqrt(2 * L)
params = {'wte': normal(V, D, std=0.02), 'wpe': normal(T, D, std=0.01), 'ln_f.g': ones(D), 'ln_f.b': zeros(D)}
for i in range(L):
    h = f'h.{i}'
    params.update({
        f'{h}.ln1.g': ones(D), f'{h}.ln1.b': zeros(D), f'{h}.ln2.g': ones(D), f'{h}.ln2.b': zeros(D),
        f'{h}.attn.q.w': normal(D, D, std=0.02), f'{h}.attn.q.b': zeros(D),
        f'{h}.attn.k.w': normal(D, D, std=0.02), f'{h}.attn.k.b': zeros(D),
        f'{h}.attn.v.w': normal(D, D, std=0.02), f'{h}.attn.v.b': zeros(D),
        f'{h}.attn.proj.w': normal(D, D, std=res_std), f'{h}.attn.proj.b': zeros(D),
        f'{h}.mlp.fc.w': normal(D, 4 * D, std=0.02), f'{h}.mlp.fc.b': zeros(4 * D),
        f'{h}.mlp.proj.w': normal(4 * D, D, std=res_std), f'{h}.mlp.proj.b': zeros(D),
    })
P = params
mask = torch.triu(torch.full((T, T), float('-inf')), diagonal=1)


def linear(x, name):
    return torch.addmm(P[f'{name}.b'], x, P[f'{name}.w'])


def heads(x):  # [B*T, D] -> [B, H, T, D/H]
    return x.view(B, T, H, D // H).transpose(1, 2)


def forward(tokens, targets):
    x = (P['wte'][tokens] + P['wpe']).view(B * T, D)
    for i in range(L):
        h = f'h.{i}'
        n = F.layer_norm(x, (D,), P[f'{h}.ln1.g'], P[f'{h}.ln1.b'], 1e-5)
        q, k, v = (heads(linear(n, f'{h}.attn.{w}')) for w in 'qkv')
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H) + mask, dim=-1) @ v
        x = x + linear(att.transpose(1, 2).reshape(B * T, D), f'{h}.attn.proj')
        n = F.layer_norm(x, (D,), P[f'{h}.ln2.g'], P[f'{h}.ln2.b'], 1e-5)
        x = x + linear(F.gelu(linear(n, f'{h}.mlp.fc'), approximate='tanh'), f'{h}.mlp.proj')
    x = F.layer_norm(x, (D,), P['ln_f.g'], P['ln_f.b'], 1e-5)
    return F.cross_entropy(x @ P['wte'].t(), targets.view(-1))


opt = torch.optim.SGD(list(P.values()), lr=a.lr)
g = torch.Generator().manual_seed(2)
ms, losses = [], []
for step in range(a.warmup + a.steps):
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = forward(tokens, targets)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    dt = (time.perf_counter() - t0) * 1000
    if step >= a.warmup:
        ms.append(dt)
m = statistics.median(ms)
print(json.dumps({
    'torch': torch.__version__, 'threads': torch.get_num_threads(), 'msPerStep': m,
    'tokensPerSecond': B * T * 1000 / m, 'stepMs': ms, 'losses': losses,
    'params': sum(t.numel() for t in P.values()),
}))
