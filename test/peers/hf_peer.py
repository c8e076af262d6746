#!/usr/bin/python3
"""An independent PyTorch implementation of Hugging Face's GPT-2 and LLaMA forward passes, written
from the published architectures (GPT-2: Radford et al. 2019 and HF's GPT2LMHeadModel layout;
LLaMA: Touvron et al. 2023 with HF's LlamaForCausalLM layout: rotate-half rotary embeddings,
grouped-query attention by repeating k/v heads). It reads a Hugging Face folder (config.json and
model.safetensors or an index with shards, F32/F16/BF16) with its own safetensors reader, and
writes a safetensors file with the logits for the given tokens and, with --sgd LR, the loss
(mean cross-entropy against the targets) and every tensor after one SGD step p -= LR * grad.

usage: hf_peer.py JOBS.json
JOBS.json: [{"dir": DIR, "tokens": [[...]], "targets": [[...]], "out": OUT.safetensors, "lr": LR or null}, ...]
(several jobs per process: importing torch costs seconds)
Arithmetic in float64, so the lomoc side is compared against a more exact oracle.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DT = torch.float64


def read_safetensors(path):
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        raw = data[b:end]
        shape = e['shape']
        if e['dtype'] == 'F32':
            a = np.frombuffer(raw, dtype='<f4').astype(np.float64)
        elif e['dtype'] == 'F16':
            a = np.frombuffer(raw, dtype='<f2').astype(np.float64)
        elif e['dtype'] == 'BF16':
            a = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f'{path}: tensor {name}: dtype {e["dtype"]} not handled')
        out[name] = torch.tensor(a.reshape(shape), dtype=DT)
    return out


def read_folder(d):
    cfg = json.load(open(os.path.join(d, 'config.json')))
    idx = os.path.join(d, 'model.safetensors.index.json')
    w = {}
    if os.path.exists(idx):
        for f in sorted(set(json.load(open(idx))['weight_map'].values())):
            w.update(read_safetensors(os.path.join(d, f)))
    else:
        w.update(read_safetensors(os.path.join(d, 'model.safetensors')))
    return cfg, w


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def causal_attention(q, k, v):
    # q, k, v: [B, H, T, Dh]
    t = q.shape[-2]
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float('-inf'))
    return torch.softmax(s, -1) @ v


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2(cfg, w, ids):
    p = 'transformer.' if 'transformer.wte.weight' in w else ''
    W = lambda n: w[p + n]
    d, nh, eps = cfg['n_embd'], cfg['n_head'], cfg.get('layer_norm_epsilon', 1e-5)
    b, t = ids.shape
    x = W('wte.weight')[ids] + W('wpe.weight')[:t]
    heads = lambda y: y.view(b, t, nh, d // nh).transpose(1, 2)
    for i in range(cfg['n_layer']):
        h = f'h.{i}.'
        a = layer_norm(x, W(h + 'ln_1.weight'), W(h + 'ln_1.bias'), eps)
        qkv = a @ W(h + 'attn.c_attn.weight') + W(h + 'attn.c_attn.bias')  # Conv1D: x @ w, w [in, out]
        q, k, v = qkv.split(d, dim=-1)
        att = causal_attention(heads(q), heads(k), heads(v)).transpose(1, 2).reshape(b, t, d)
        x = x + att @ W(h + 'attn.c_proj.weight') + W(h + 'attn.c_proj.bias')
        m = layer_norm(x, W(h + 'ln_2.weight'), W(h + 'ln_2.bias'), eps)
        x = x + gelu_new(m @ W(h + 'mlp.c_fc.weight') + W(h + 'mlp.c_fc.bias')) @ W(h + 'mlp.c_proj.weight') + W(h + 'mlp.c_proj.bias')
    x = layer_norm(x, W('ln_f.weight'), W('ln_f.bias'), eps)
    return x @ W('wte.weight').T


def rms_norm(x, g, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * g


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), -1)


def llama(cfg, w, ids):
    d, nh = cfg['hidden_size'], cfg['num_attention_heads']
    nkv = cfg.get('num_key_value_heads', nh)
    dh, eps, theta = d // nh, cfg.get('rms_norm_eps', 1e-6), cfg.get('rope_theta', 10000.0)
    b, t = ids.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=DT) / dh))
    freqs = torch.outer(torch.arange(t, dtype=DT), inv_freq)
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos(), emb.sin()
    rope = lambda y: y * cos + rotate_half(y) * sin
    lin = lambda x, n: x @ w[n].T  # nn.Linear: weight [out, in]
    x = w['model.embed_tokens.weight'][ids]
    for i in range(cfg['num_hidden_layers']):
        h = f'model.layers.{i}.'
        a = rms_norm(x, w[h + 'input_layernorm.weight'], eps)
        q = lin(a, h + 'self_attn.q_proj.weight').view(b, t, nh, dh).transpose(1, 2)
        k = lin(a, h + 'self_attn.k_proj.weight').view(b, t, nkv, dh).transpose(1, 2)
        v = lin(a, h + 'self_attn.v_proj.weight').view(b, t, nkv, dh).transpose(1, 2)
        q, k = rope(q), rope(k)
        # Grouped-query attention: q head j reads kv head j // (nh / nkv).
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = causal_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + lin(att, h + 'self_attn.o_proj.weight')
        m = rms_norm(x, w[h + 'post_attention_layernorm.weight'], eps)
        gate = lin(m, h + 'mlp.gate_proj.weight')
        x = x + lin(gate * torch.sigmoid(gate) * lin(m, h + 'mlp.up_proj.weight'), h + 'mlp.down_proj.weight')
    x = rms_norm(x, w['model.norm.weight'], eps)
    head = w['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings', False) else w['lm_head.weight']
    return x @ head.T


def run(job):
    d, out, lr = job['dir'], job['out'], job.get('lr')
    cfg, w = read_folder(d)
    io = job
    ids = torch.tensor(io['tokens'], dtype=torch.long)
    forward = {'gpt2': gpt2, 'llama': llama, 'mistral': llama}[cfg['model_type']]
    for t in w.values():
        t.requires_grad_(lr is not None)
    logits = forward(cfg, w, ids)
    res = {'logits': logits}
    if lr is not None:
        tg = torch.tensor(io['targets'], dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1))
        loss.backward()
        res['loss'] = loss.detach().reshape(1)
        with torch.no_grad():
            for n, t in w.items():
                if t.grad is not None:
                    res['param:' + n] = t - lr * t.grad
    write_safetensors(out, res)


if __name__ == '__main__':
    for job in json.load(open(sys.argv[1])):
        run(job)
