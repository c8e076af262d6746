// LLaMA: RMSNorm, rotary position embeddings on q and k, a SwiGLU MLP, no biases, a final
// RMSNorm and an untied LM head. `llama-7b` has the real dimensions of LLaMA-7B.
import {
  add, block, attention, crossEntropy, embedding, fanIn, input, matmul, mean, mergeHeads, model, mul, normal, ones,
  output, param, rmsNorm, rope, silu, splitHeads, type Tensor,
} from '../compiler/dsl/index.ts';

type LlamaConfig = {
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly ffn: number;
};

const linear = (name: string, x: Tensor, from: number, to: number): Tensor =>
  matmul(x, param(name, [from, to], fanIn()));

const norm = (name: string, x: Tensor, width: number): Tensor => rmsNorm(x, param(name, [width], ones()), 1e-6);

/** One transformer block: x + attn(norm(x)), then + swiglu(norm(x)). */
function transformerBlock(cfg: LlamaConfig, i: number, x: Tensor): Tensor {
  const p = `h.${i}`;
  const d = cfg.width;
  const a = norm(`${p}.attn_norm`, x, d);
  const q = rope(splitHeads(linear(`${p}.attn.wq`, a, d, d), cfg.heads));
  const k = rope(splitHeads(linear(`${p}.attn.wk`, a, d, d), cfg.heads));
  const v = splitHeads(linear(`${p}.attn.wv`, a, d, d), cfg.heads);
  const att = mergeHeads(attention(q, k, v, { causal: true }));
  x = add(x, linear(`${p}.attn.wo`, att, d, d));
  const m = norm(`${p}.mlp_norm`, x, d);
  const gate = silu(linear(`${p}.mlp.w1`, m, d, cfg.ffn));
  const up = linear(`${p}.mlp.w3`, m, d, cfg.ffn);
  return add(x, linear(`${p}.mlp.w2`, mul(gate, up), cfg.ffn, d));
}

export default model(
  'llama',
  (cfg: LlamaConfig) => {
    const tokens = input('tokens', [cfg.batch, cfg.seq], 'i32');
    const targets = input('targets', [cfg.batch, cfg.seq], 'i32');
    let x = embedding(param('tok_embeddings', [cfg.vocab, cfg.width], normal(0.02)), tokens);
    for (let i = 0; i < cfg.layers; i++) x = block(`h.${i}`, () => transformerBlock(cfg, i, x));
    const h = norm('norm', x, cfg.width);
    const logits = linear('output', h, cfg.width, cfg.vocab);
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
