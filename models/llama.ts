// LLaMA: RMSNorm, rotary position embeddings on q and k, a SwiGLU MLP, no biases, a final
// RMSNorm and an LM head (untied unless `tied`). Grouped-query attention when kvHeads < heads. `llama-7b` has the real dimensions of LLaMA-7B.
import {
  add, block, attention, broadcastTo, crossEntropy, embedding, fanIn, input, matmul, mean, mergeHeads, model, mul, normal, ones,
  output, param, reshape, rmsNorm, rope, silu, splitHeads, type Tensor,
} from '../compiler/dsl/index.ts';

type LlamaConfig = {
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly ffn: number;
  /** Key/value heads (HF num_key_value_heads); absent: heads. Fewer is grouped-query attention. */
  readonly kvHeads?: number;
  /** Rotary base (HF rope_theta); absent: 10000. */
  readonly ropeTheta?: number;
  /** RMSNorm epsilon (HF rms_norm_eps); absent: 1e-6. */
  readonly normEps?: number;
  /** LM head tied to the token embedding (HF tie_word_embeddings); absent: false. */
  readonly tied?: boolean;
};

const linear = (name: string, x: Tensor, from: number, to: number): Tensor =>
  matmul(x, param(name, [from, to], fanIn()));

const norm = (name: string, x: Tensor, width: number, eps = 1e-6): Tensor => rmsNorm(x, param(name, [width], ones()), eps);

/** [B, KV, T, Dh] -> [B, KV * group, T, Dh], each kv head repeated for its group of q heads; the VJP sums over the group. */
function repeatKv(x: Tensor, group: number): Tensor {
  if (group === 1) return x;
  const [b, kv, t, dh] = x.shape;
  return reshape(broadcastTo(reshape(x, [b, kv, 1, t, dh]), [b, kv, group, t, dh]), [b, kv * group, t, dh]);
}

/** One transformer block: x + attn(norm(x)), then + swiglu(norm(x)). */
function transformerBlock(cfg: LlamaConfig, i: number, x: Tensor): Tensor {
  const p = `h.${i}`;
  const d = cfg.width;
  const kvHeads = cfg.kvHeads ?? cfg.heads;
  const kvWidth = (d / cfg.heads) * kvHeads;
  const [theta, eps] = [cfg.ropeTheta ?? 10000, cfg.normEps];
  const a = norm(`${p}.attn_norm`, x, d, eps);
  const q = rope(splitHeads(linear(`${p}.attn.wq`, a, d, d), cfg.heads), theta);
  const k = repeatKv(rope(splitHeads(linear(`${p}.attn.wk`, a, d, kvWidth), kvHeads), theta), cfg.heads / kvHeads);
  const v = repeatKv(splitHeads(linear(`${p}.attn.wv`, a, d, kvWidth), kvHeads), cfg.heads / kvHeads);
  const att = mergeHeads(attention(q, k, v, { causal: true }));
  x = add(x, linear(`${p}.attn.wo`, att, d, d));
  const m = norm(`${p}.mlp_norm`, x, d, eps);
  const gate = silu(linear(`${p}.mlp.w1`, m, d, cfg.ffn));
  const up = linear(`${p}.mlp.w3`, m, d, cfg.ffn);
  return add(x, linear(`${p}.mlp.w2`, mul(gate, up), cfg.ffn, d));
}

export default model(
  'llama',
  (cfg: LlamaConfig) => {
    const tokens = input('tokens', [cfg.batch, cfg.seq], 'i32');
    const targets = input('targets', [cfg.batch, cfg.seq], 'i32');
    const kvHeads = cfg.kvHeads ?? cfg.heads;
    if (cfg.width % cfg.heads !== 0 || cfg.heads % kvHeads !== 0)
      throw new Error(`width ${cfg.width} must divide into heads ${cfg.heads}, and heads into kvHeads ${kvHeads}`);
    const table = param('tok_embeddings', [cfg.vocab, cfg.width], normal(0.02));
    let x = embedding(table, tokens);
    for (let i = 0; i < cfg.layers; i++) x = block(`h.${i}`, () => transformerBlock(cfg, i, x));
    const h = norm('norm', x, cfg.width, cfg.normEps);
    const logits = cfg.tied ? matmul(h, table, { transB: true }) : linear('output', h, cfg.width, cfg.vocab);
    output('logits', logits);
    return mean(crossEntropy(logits, targets));
  },
  {
    presets: {
      tiny: { batch: 2, seq: 8, vocab: 32, width: 16, layers: 2, heads: 2, ffn: 40 },
      // LLaMA-7B: 6,738,415,616 params. Compiled and planned, never run on the reference executor.
      'llama-7b': { batch: 8, seq: 512, vocab: 32000, width: 4096, layers: 32, heads: 32, ffn: 11008 },
    },
  },
);
