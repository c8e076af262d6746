// The TF.js peer of bench/step.ts: models/gpt.ts written with TensorFlow.js ops on its WebGPU
// backend (bench/tfjs.ts: Dawn's default adapter, the one lomoc runs on). The same GPT-2: token +
// learned position embeddings, pre-LayerNorm blocks, causal multi-head attention with q/k/v/proj
// linears with biases, a 4x GELU (tanh) MLP, a final LayerNorm, an LM head tied to the token
// embedding, mean cross-entropy; the same inits (normal 0.02, positions 0.01, residual projections
// 0.02/sqrt(2 layers), zero biases, unit gains). A step is tf.train.sgd's minimize (forward,
// gradients of every tf.variable, update) and one readback of the loss, as lomoc's step.
import type { GptConfig } from '../models/gpt.ts';
import { loadTfjs } from './tfjs.ts';

export type { GptConfig };

export interface TfGptTrainer {
  readonly adapter: string;
  readonly version: string;
  /** Milliseconds of each step since creation (warm-up steps not included). */
  readonly stepMs: number[];
  /** Creation and warm-up (TF.js compiles its shaders at first use), in ms. */
  readonly setupMs: number;
  /** One SGD step on a batch of token ids; resolves with the loss. */
  step(tokens: Int32Array, targets: Int32Array, lr: number): Promise<number>;
  destroy(): void;
}

export async function createTfGptTrainer(cfg: GptConfig, warmup = 1): Promise<TfGptTrainer> {
  const started = performance.now();
  const { tf, adapter, version, sync } = await loadTfjs();
  const { batch: B, seq: T, vocab: V, width: D, layers: L, heads: H } = cfg;
  const N = B * T;
  const hd = D / H;
  const vars: import('@tensorflow/tfjs').Variable[] = [];
  const v = (name: string, t: import('@tensorflow/tfjs').Tensor) => {
    const x = tf.variable(t, true, `${name}_${vars.length}`);
    t.dispose();
    vars.push(x);
    return x;
  };
  const normal = (name: string, shape: number[], std: number) => v(name, tf.randomNormal(shape, 0, std, 'float32', 1 + vars.length));
  const zeros = (name: string, shape: number[]) => v(name, tf.zeros(shape));
  const ones = (name: string, shape: number[]) => v(name, tf.ones(shape));
  const lin = (name: string, from: number, to: number, std = 0.02) => ({ w: normal(`${name}.w`, [from, to], std), b: zeros(`${name}.b`, [to]) });
  const ln = (name: string) => ({ g: ones(`${name}.g`, [D]), b: zeros(`${name}.b`, [D]) });
  const wte = normal('wte', [V, D], 0.02);
  const wpe = normal('wpe', [T, D], 0.01);
  const residualStd = 0.02 / Math.sqrt(2 * L);
  const blocks = Array.from({ length: L }, (_, i) => ({
    ln1: ln(`h.${i}.ln1`),
    q: lin(`h.${i}.attn.q`, D, D),
    k: lin(`h.${i}.attn.k`, D, D),
    v: lin(`h.${i}.attn.v`, D, D),
    proj: lin(`h.${i}.attn.proj`, D, D, residualStd),
    ln2: ln(`h.${i}.ln2`),
    fc: lin(`h.${i}.mlp.fc`, D, 4 * D),
    mproj: lin(`h.${i}.mlp.proj`, 4 * D, D, residualStd),
  }));
  const lnF = ln('ln_f');
  // Additive causal mask: 0 on and below the diagonal, -1e9 above.
  const mask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9));

  type T2 = import('@tensorflow/tfjs').Tensor;
  const linear = (x: T2, p: { w: T2; b: T2 }) => tf.add(tf.matMul(x, p.w), p.b);
  const layerNorm = (x: T2, p: { g: T2; b: T2 }) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), p.g), p.b);
  };
  const c = Math.sqrt(2 / Math.PI);
  const gelu = (x: T2) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), c))));
  const split = (x: T2) => tf.transpose(tf.reshape(x, [B, T, H, hd]), [0, 2, 1, 3]); // [B, H, T, hd]
  const loss = (tokens: T2, targets: T2) => {
    let x = tf.reshape(tf.add(tf.reshape(tf.gather(wte, tf.reshape(tokens, [N])), [B, T, D]), wpe), [N, D]);
    for (const b of blocks) {
      const a = layerNorm(x, b.ln1);
      const [q, k, vv] = [split(linear(a, b.q)), split(linear(a, b.k)), split(linear(a, b.v))];
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), mask);
      const att = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), vv), [0, 2, 1, 3]), [N, D]);
      x = tf.add(x, linear(att, b.proj));
      x = tf.add(x, linear(gelu(linear(layerNorm(x, b.ln2), b.fc)), b.mproj));
    }
    const logits = tf.matMul(layerNorm(x, lnF), wte, false, true); // [N, V], tied head
    const picked = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.reshape(targets, [N]), V)), -1);
    return tf.neg(tf.mean(picked)) as import('@tensorflow/tfjs').Scalar;
  };

  let optimizer = tf.train.sgd(0.01);
  let lrNow = 0.01;
  const stepMs: number[] = [];
  const once = async (tokens: Int32Array, targets: Int32Array, lr: number) => {
    if (lr !== lrNow) {
      optimizer.dispose();
      optimizer = tf.train.sgd(lr);
      lrNow = lr;
    }
    const t0 = performance.now();
    const [tok, tgt] = [tf.tensor2d(tokens, [B, T], 'int32'), tf.tensor2d(targets, [B, T], 'int32')];
    const l = optimizer.minimize(() => loss(tok, tgt), true, vars)!;
    // As lomoc's trainer does (runtime/webgpu/trainer.ts, hostWait): submit, sleep most of the
    // quickest recent step, then wait, so Dawn's polling does not take a core from lavapipe.
    const lead = stepMs.length ? 0.8 * Math.min(...stepMs.slice(-5)) : 0;
    if (lead >= 5) await sync(lead);
    const value = (await l.data())[0];
    tf.dispose([tok, tgt, l]);
    return { value, ms: performance.now() - t0 };
  };
  const rand = (seed: number) => Int32Array.from({ length: N }, (_, i) => (i * 2654435761 + seed * 40503) % V >>> 0);
  for (let i = 0; i < warmup; i++) await once(rand(2 * i), rand(2 * i + 1), lrNow);
  return {
    adapter,
    version,
    stepMs,
    setupMs: performance.now() - started,
    async step(tokens, targets, lr) {
      const { value, ms } = await once(tokens, targets, lr);
      stepMs.push(ms);
      return value;
    },
    destroy() {
      optimizer.dispose();
      tf.dispose([...vars, mask]);
    },
  };
}
