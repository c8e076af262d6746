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
/**
 * The clip-norm factor from `total`, the gradients' sum of squares (input 0). norm = sqrt(total) /
 * lossScale (input 1 when `unscale`: the gradients were made from a scaled loss); with `previous`
 * the last input is the previous step's norm and norm = max(norm, previous). The factor is
 * min(1, maxNorm / (norm + 1e-6)) (1 when maxNorm is null) divided by lossScale. With `unscale`, a
 * non-finite total is an overflow: the factor is -1, which an update reads as "skip this step".
 * `result: 'norm'` gives the norm itself instead (the previous norm's next value), and on an
 * overflow the previous norm unchanged.
 */
export interface ClipFactorAttrs {
  readonly maxNorm: number | null;
  readonly unscale?: boolean;
  readonly previous?: boolean;
  readonly result?: 'factor' | 'norm';
}

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
  /**
   * Scaled dot-product attention (causal when `causal`): q, k, v [..., T, Dh] -> (y [..., T, Dh],
   * lse f32 [..., T]); y = softmax(q k^T * scale + mask) v, lse each query row's log-sum-exp of its
   * scaled scores, which the gradient reads (FlashAttention's L), so it needs no max/sum pass.
   */
  attention: { readonly scale: number; readonly causal: boolean };
  /** logits [..., V], targets i32 [...] -> per-position loss [...] (natural log). */
  crossEntropy: None;
  /**
   * crossEntropy(matmul(h, W)) without the logits (passes/fuse-loss.ts makes it; the DSL does not):
   * (h [..., D], W [D, V] or [V, D] when `transW`, targets i32 [...]) -> (loss [...], lse f32 [...]),
   * lse the log-sum-exp of each position's logits, which the gradient reads. Kernels visit the
   * vocabulary `chunk` columns at a time, so nothing [tokens, V] is ever stored.
   */
  linearCrossEntropy: LinearLossAttrs;

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
  /** (q, k, v, lse, dout) -> (dq, dk, dv); recomputes the probabilities from lse (nothing T x T is saved). */
  attentionGrad: { readonly scale: number; readonly causal: boolean };
  /** (logits, targets, dloss) -> dlogits */
  crossEntropyGrad: None;
  /** (h, W, targets, lse, dloss) -> (dh, dW): each logits chunk recomputed, never the whole logits. */
  linearCrossEntropyGrad: LinearLossAttrs;

  // ---- the optimizer step, made by passes/optimizer-step.ts ----
  /**
   * One parameter's optimizer step, by the update rule `attrs.rule` (compiler/optimizers/): inputs
   * by name through `attrs.inputs`, outputs [p', state'...] in `attrs.states` order. u = g * scale,
   * clamped to [-clipValue, clipValue]; w = master ?? p; the rule gives w' and new states; p' = w'
   * stored in p's dtype (and master' = w').
   */
  optimizerUpdate: UpdateAttrs;
  /** g -> sum(g^2), an f32 scalar. */
  sumSquares: None;
  /** (total, lossScale?, prevNorm?) -> the gradients' factor, or this step's norm: see ClipFactorAttrs. */
  clipFactor: ClipFactorAttrs;

  // ---- inference ops, made by compiler/inference (forward only: autodiff never sees them) ----
  /**
   * (x, pos i32[1]) -> `size` elements of x along `axis` from index pos (each index clamped to
   * the axis): a position table's rows for tokens at pos, pos+1, ...
   */
  positionSlice: { readonly axis: number; readonly size: number };
  /** (x [..., n, Dh], pos i32[1]) -> rope with row t at position pos + t. */
  ropeAt: OpAttrs['rope'];
  /** (cache [..., maxT, Dh], x [..., n, Dh], pos i32[1]) -> cache with rows pos+t (< maxT) set to x's row t. */
  cacheWrite: None;
  /** (q [..., n, Dh], kCache, vCache [..., maxT, Dh], pos i32[1]) -> [..., n, Dh]; row t attends to cache rows j <= pos + t. */
  cachedAttention: { readonly scale: number };
}

/** The fused LM head and loss: W's layout and the vocabulary columns each kernel pass covers. */
export interface LinearLossAttrs {
  readonly transW: boolean;
  readonly chunk: number;
}

/** The named inputs of an update node besides its rule's states: update-layout.ts orders them. */
export type UpdateSlot = 'p' | 'g' | 'lr' | 'wd' | 'step' | 'scale';

export interface UpdateAttrs {
  /** The update rule's name (compiler/optimizers/table.ts): sgd for both sgd and lomo. */
  readonly rule: string;
  /** Every hyper-parameter of the rule, defaults filled in. */
  readonly hyper: Readonly<Record<string, number>>;
  /** Input index of each named input: the slots, each rule state, and `master`. */
  readonly inputs: Readonly<Record<string, number>>;
  /** The states in output order (outputs[k + 1] is the new value of states[k]); `master` last. */
  readonly states: readonly string[];
  /** Clamp each gradient element to [-clipValue, clipValue]; null: no clamp. */
  readonly clipValue: number | null;
  /** A clip-norm factor input (`scale`) multiplies the gradient. */
  readonly scaled: boolean;
  /** An f32 master copy of the weights (`master`) is what the rule updates. */
  readonly master: boolean;
  /**
   * Store a 16-bit param's new value rounded stochastically with contract/stochastic-round.ts's
   * roundingBits(seed, step, param, element) (the `step` input is then present); absent: nearest.
   * `format`: the param's dtype, 'f16' (absent: bf16).
   */
  readonly stochastic?: { readonly seed: number; readonly param: number; readonly format?: 'f16' };
  /**
   * Update only elements [start, end) along `axis` of the param (and of each param-shaped state):
   * `g` has the window's shape, p' (and state') is p with that window updated, the rest kept
   * (passes/width-chunk.ts: a gradient that arrives as disjoint complete windows).
   */
  readonly window?: UpdateWindow;
}

/** A window of a param along one axis. */
export interface UpdateWindow {
  readonly axis: number;
  readonly start: number;
  readonly end: number;
}

export type Op = keyof OpAttrs;

/** How many values each op produces (1 unless listed). */
export const outputCount: { readonly [O in Op]?: number } = {
  attention: 2,
  layerNormGrad: 3,
  rmsNormGrad: 2,
  attentionGrad: 3,
  linearCrossEntropy: 2,
  linearCrossEntropyGrad: 2,
};

/**
 * Outputs that are statistics saved for the op's own gradient (never differentiated: only its
 * backward node reads them), by index: autodiff forms no gradient for them.
 */
export const statisticOutputs: { readonly [O in Op]?: readonly number[] } = {
  attention: [1],
};

/** The ops OpAttrs declares itself (the elementwise ones are listed by their table). */
const declaredOps = [
  'matmul', 'fill', 'sum', 'mean', 'max', 'reshape', 'transpose', 'slice', 'concat',
  'broadcastTo', 'softmax', 'logSoftmax', 'layerNorm', 'rmsNorm', 'embedding', 'rope', 'attention',
  'crossEntropy', 'maxGrad', 'pad', 'softmaxGrad',
  'logSoftmaxGrad', 'layerNormGrad', 'rmsNormGrad', 'embeddingGrad', 'attentionGrad', 'crossEntropyGrad',
  'optimizerUpdate', 'sumSquares', 'clipFactor', 'positionSlice', 'ropeAt', 'cacheWrite', 'cachedAttention',
  'linearCrossEntropy', 'linearCrossEntropyGrad',
] as const satisfies readonly Op[];
// Completeness check: every Op is listed in declaredOps or is elementwise.
type Missing = Exclude<Op, (typeof declaredOps)[number] | (typeof elementwiseOpNames)[number]>;
const _allListed: Missing extends never ? true : Missing = true;
void _allListed;

export const opNames: readonly Op[] = [...declaredOps, ...elementwiseOpNames];
