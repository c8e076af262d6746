// Every op of the IR and the attributes baked into it. Adding an op here makes each rule table
// (traits, shape rules, VJP rules, reference kernels, WGSL emitters) fail to type-check until it
// has an entry: `satisfies { [O in Op]: ... }` keeps them complete. The elementwise ops come from
// their own table (elementwise-ops.ts), which also gives their shape rule, kernel and emitter.
import type { DType, Shape } from './dtype.ts';
import { elementwiseOpNames, type ElementwiseAttrs } from './elementwise-ops.ts';

type None = Readonly<Record<never, never>>;
interface Axes {
  /** Sorted, non-negative axes. */
  readonly axes: readonly number[];
  readonly keepDims: boolean;
}

/** The elementwise ops (add, mul, exp, gelu, geluGrad, ...) with their attrs come from elementwise-ops.ts. */
export interface OpAttrs extends ElementwiseAttrs {
  // ---- forward ops the DSL exposes ----
  /** Batched matmul over the last two axes; leading axes broadcast. */
  matmul: { readonly transA: boolean; readonly transB: boolean };
  /** A constant tensor: every element `value`. */
  fill: { readonly value: number; readonly shape: Shape; readonly dtype: DType };
  sum: Axes;
  mean: Axes;
  max: Axes;
  reshape: { readonly shape: Shape };
  transpose: { readonly perm: readonly number[] };
  /** Elements [starts[i], ends[i]) along every axis i. */
  slice: { readonly starts: readonly number[]; readonly ends: readonly number[] };
  concat: { readonly axis: number };
  broadcastTo: { readonly shape: Shape };
  /** Over the last axis. */
  softmax: None;
  logSoftmax: None;
  /** x [..., D], gamma [D], beta [D]; normalises the last axis. */
  layerNorm: { readonly eps: number };
  /** x [..., D], gamma [D]. */
  rmsNorm: { readonly eps: number };
  /** table [V, D], ids i32 [...] -> [..., D] */
  embedding: None;
  /**
   * Rotary position embedding on x [..., T, Dh]: position t = index on axis -2, pairs (i, i + Dh/2)
   * rotated by t * base^(-2i/Dh). `inverse` rotates by the negative angle (its own VJP).
   */
  rope: { readonly base: number; readonly inverse: boolean };
  /** Scaled dot-product attention (causal when `causal`): q, k, v [..., T, Dh] -> [..., T, Dh]; softmax(q k^T * scale + mask) v. */
  attention: { readonly scale: number; readonly causal: boolean };
  /** logits [..., V], targets i32 [...] -> per-position loss [...] (natural log). */
  crossEntropy: None;

  // ---- backward ops, made by VJP rules ----
  /** (x, y, dy) -> dy where x equals the max y along `axes`, else 0. */
  maxGrad: Axes;
  /** Zero padding: `before[i]` zeros before and `after[i]` after along each axis. */
  pad: { readonly before: readonly number[]; readonly after: readonly number[] };
  /** (y, dy) -> dx, y = softmax(x) */
  softmaxGrad: None;
  /** (y, dy) -> dx, y = logSoftmax(x) */
  logSoftmaxGrad: None;
  /** (x, gamma, dy) -> (dx, dgamma, dbeta) */
  layerNormGrad: { readonly eps: number };
  /** (x, gamma, dy) -> (dx, dgamma) */
  rmsNormGrad: { readonly eps: number };
  /** (ids, dy) -> dtable [vocab, D]: rows scatter-added. */
  embeddingGrad: { readonly vocab: number };
  /** (q, k, v, dout) -> (dq, dk, dv); recomputes the probabilities (nothing T x T is saved). */
  attentionGrad: { readonly scale: number; readonly causal: boolean };
  /** (logits, targets, dloss) -> dlogits */
  crossEntropyGrad: None;

  // ---- the optimizer step, made by passes/optimizer-step.ts ----
  /**
   * SGD with weight decay. Inputs [p, g, lr, wd, scale?, master?] -> [p', master'?]:
   * w = master ?? p; u = g * scale; u = clamp(u, -clipValue, clipValue); w' = w - lr * (u + wd * w);
   * p' = w' stored in p's dtype. `scale` is the clip-norm factor; `master` an f32 copy of f16 weights.
   */
  sgdUpdate: UpdateAttrs;
  /**
   * AdamW (decoupled weight decay). Inputs [p, g, lr, wd, step, scale?, m, v, master?] ->
   * [p', m', v', master'?]: u as for SGD; m' = b1 m + (1 - b1) u; v' = b2 v + (1 - b2) u^2;
   * w' = w - lr * (m' / (1 - b1^step) / (sqrt(v' / (1 - b2^step)) + eps) + wd * w).
   */
  adamwUpdate: UpdateAttrs & { readonly beta1: number; readonly beta2: number; readonly eps: number };
  /** g -> sum(g^2), an f32 scalar. */
  sumSquares: None;
  /** total -> min(1, maxNorm / (sqrt(total) + 1e-6)): the clip-norm factor. */
  clipFactor: { readonly maxNorm: number };
}

export interface UpdateAttrs {
  /** Clamp each gradient element to [-clipValue, clipValue]; null: no clamp. */
  readonly clipValue: number | null;
  /** A clip-norm factor input follows the step inputs. */
  readonly scaled: boolean;
  /** An f32 master copy of the weights is the last state input. */
  readonly master: boolean;
}

export type Op = keyof OpAttrs;

/** How many values each op produces (1 unless listed). */
export const outputCount: { readonly [O in Op]?: number } = {
  layerNormGrad: 3,
  rmsNormGrad: 2,
  attentionGrad: 3,
};

/** Outputs of the update ops: the new param, then the new state in input order. */
export function updateOutputCount(op: 'sgdUpdate' | 'adamwUpdate', a: UpdateAttrs): number {
  return 1 + (op === 'adamwUpdate' ? 2 : 0) + (a.master ? 1 : 0);
}

/** The ops OpAttrs declares itself (the elementwise ones are listed by their table). */
const declaredOps = [
  'matmul', 'fill', 'sum', 'mean', 'max', 'reshape', 'transpose', 'slice', 'concat',
  'broadcastTo', 'softmax', 'logSoftmax', 'layerNorm', 'rmsNorm', 'embedding', 'rope', 'attention',
  'crossEntropy', 'maxGrad', 'pad', 'softmaxGrad',
  'logSoftmaxGrad', 'layerNormGrad', 'rmsNormGrad', 'embeddingGrad', 'attentionGrad', 'crossEntropyGrad',
  'sgdUpdate', 'adamwUpdate', 'sumSquares', 'clipFactor',
] as const satisfies readonly Op[];
// Completeness check: every Op is listed in declaredOps or is elementwise.
type Missing = Exclude<Op, (typeof declaredOps)[number] | (typeof elementwiseOpNames)[number]>;
const _allListed: Missing extends never ? true : Missing = true;
void _allListed;

export const opNames: readonly Op[] = [...declaredOps, ...elementwiseOpNames];
