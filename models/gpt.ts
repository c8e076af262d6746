// GPT-2: learned token and position embeddings, pre-LayerNorm blocks of causal multi-head
// attention and a 4x GELU MLP, a final LayerNorm, and an LM head tied to the token embedding.
import {
  add, block, attention, crossEntropy, embedding, gelu, input, layerNorm, matmul, mean, mergeHeads, model, normal,
  ones, output, param, slice, splitHeads, zeros, type Tensor,
} from '../compiler/dsl/index.ts';

export type GptConfig = {
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  /** Rows of the position table (HF n_positions); absent: seq. A run at a shorter seq uses the first seq rows. */
  readonly positions?: number;
  /** LayerNorm epsilon (HF layer_norm_epsilon); absent: 1e-5. */
  readonly eps?: number;
};

function linear(name: string, x: Tensor, from: number, to: number, std = 0.02): Tensor {
  const w = param(`${name}.w`, [from, to], normal(std));
  const b = param(`${name}.b`, [to], zeros());
  return add(matmul(x, w), b);
}

function norm(name: string, x: Tensor, width: number, eps = 1e-5): Tensor {
  return layerNorm(x, param(`${name}.g`, [width], ones()), param(`${name}.b`, [width], zeros()), eps);
}

/** One transformer block: x + attn(ln1(x)), then + mlp(ln2(x)). */
function transformerBlock(cfg: GptConfig, i: number, x: Tensor): Tensor {
  const p = `h.${i}`;
  const d = cfg.width;
  // GPT-2 scales the residual projections' init by 1/sqrt(2 * layers): two per block.
  const residualStd = 0.02 / Math.sqrt(2 * cfg.layers);
  const a = norm(`${p}.ln1`, x, d, cfg.eps);
  const q = splitHeads(linear(`${p}.attn.q`, a, d, d), cfg.heads);
  const k = splitHeads(linear(`${p}.attn.k`, a, d, d), cfg.heads);
  const v = splitHeads(linear(`${p}.attn.v`, a, d, d), cfg.heads);
  const att = mergeHeads(attention(q, k, v, { causal: true }));
  x = add(x, linear(`${p}.attn.proj`, att, d, d, residualStd));
  const m = norm(`${p}.ln2`, x, d, cfg.eps);
  const up = gelu(linear(`${p}.mlp.fc`, m, d, 4 * d));
  return add(x, linear(`${p}.mlp.proj`, up, 4 * d, d, residualStd));
}

export default model(
  'gpt',
  (cfg: GptConfig) => {
    const tokens = input('tokens', [cfg.batch, cfg.seq], 'i32');
    const targets = input('targets', [cfg.batch, cfg.seq], 'i32');
    const wte = param('wte', [cfg.vocab, cfg.width], normal(0.02));
    const positions = cfg.positions ?? cfg.seq;
    if (positions < cfg.seq) throw new Error(`seq ${cfg.seq} exceeds the ${positions} rows of the position table (config key positions)`);
    const wpe = param('wpe', [positions, cfg.width], normal(0.01));
    // [B, T, D] + [T, D]: the first seq rows of the position table broadcast over the batch.
    let x = add(embedding(wte, tokens), positions === cfg.seq ? wpe : slice(wpe, 0, 0, cfg.seq));
    for (let i = 0; i < cfg.layers; i++) x = block(`h.${i}`, () => transformerBlock(cfg, i, x));
    const h = norm('ln_f', x, cfg.width, cfg.eps);
    // The LM head reuses wte (tied weights): its gradient sums both uses.
    const logits = matmul(h, wte, { transB: true });
    output('logits', logits);
    return mean(crossEntropy(logits, targets));
  },
  {
    presets: {
      tiny: { batch: 2, seq: 8, vocab: 32, width: 16, layers: 2, heads: 2 },
      small: { batch: 8, seq: 128, vocab: 256, width: 128, layers: 4, heads: 4 },
      // GPT-2 124M at its full context; traced and planned, never run on the reference executor.
      gpt2: { batch: 8, seq: 1024, vocab: 50257, width: 768, layers: 12, heads: 12, positions: 1024, eps: 1e-5 },
    },
  },
);
