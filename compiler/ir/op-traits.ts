// The traits of every op, in one table the type checker keeps complete: what kind of computation
// it is and, for an elementwise op, its formulas (elementwise-ops.ts). Passes ask this table, never
// a list of their own: the fuse pass's fusible set is exactly the elementwise ops here, so a new
// elementwise op fuses without touching passes/fuse.ts.
import { elementwiseDef, elementwiseOpNames, type ElementwiseDef, type ElementwiseOp } from './elementwise-ops.ts';
import type { Op } from './ops.ts';

export type OpKind =
  /** One output element from the same (broadcast) element of each operand, by a formula: fusible. */
  | 'elementwise'
  /** Per element but not a formula of aligned operands: fill (no operand), maxGrad (reads its reduction's slots). */
  | 'map'
  /** Only moves elements. */
  | 'layout'
  | 'reduce'
  /** Over the last axis, a row at a time (softmaxes, norms, cross-entropy, rope). */
  | 'rows'
  | 'matmul'
  | 'attention'
  /** Indexed by i32 token ids. */
  | 'tokens'
  /** The optimizer step. */
  | 'update'
  /** A matmul and a row reduction over its output in one region (the LM head and its loss). */
  | 'linearLoss';

export type OpTraits =
  | { readonly kind: 'elementwise'; readonly def: ElementwiseDef }
  | { readonly kind: Exclude<OpKind, 'elementwise'> };

const elementwiseTraits = Object.fromEntries(
  elementwiseOpNames.map((op): [ElementwiseOp, OpTraits] => [op, { kind: 'elementwise', def: elementwiseDef(op) }]),
) as { readonly [O in ElementwiseOp]: OpTraits };

const k = <K extends Exclude<OpKind, 'elementwise'>>(kind: K) => ({ kind }) as const;

export const opTraits = {
  ...elementwiseTraits,
  matmul: k('matmul'),
  fill: k('map'),
  sum: k('reduce'),
  mean: k('reduce'),
  max: k('reduce'),
  reshape: k('layout'),
  transpose: k('layout'),
  slice: k('layout'),
  concat: k('layout'),
  broadcastTo: k('layout'),
  softmax: k('rows'),
  logSoftmax: k('rows'),
  layerNorm: k('rows'),
  rmsNorm: k('rows'),
  embedding: k('tokens'),
  rope: k('rows'),
  attention: k('attention'),
  crossEntropy: k('rows'),
  maxGrad: k('map'),
  pad: k('layout'),
  softmaxGrad: k('rows'),
  logSoftmaxGrad: k('rows'),
  layerNormGrad: k('rows'),
  rmsNormGrad: k('rows'),
  embeddingGrad: k('tokens'),
  attentionGrad: k('attention'),
  crossEntropyGrad: k('rows'),
  optimizerUpdate: k('update'),
  sumSquares: k('reduce'),
  clipFactor: k('map'),
  // Inference (compiler/inference/): a key/value cache at a runtime position.
  positionSlice: k('layout'),
  ropeAt: k('rows'),
  cacheWrite: k('layout'),
  cachedAttention: k('attention'),
  linearCrossEntropy: k('linearLoss'),
  linearCrossEntropyGrad: k('linearLoss'),
} satisfies { readonly [O in Op]: OpTraits };

/** Ops a fused kernel evaluates per element in registers: exactly the elementwise ops. */
export const fusibleOps: ReadonlySet<Op> = new Set(
  (Object.keys(opTraits) as Op[]).filter((op) => opTraits[op].kind === 'elementwise'),
);
