// The DSL's ops. Each call appends a node to the open trace and returns a Tensor; no numerics run.
import { LomocError } from '../diagnostics.ts';
import { fmtShape, normalizeAxes, numel } from '../ir/shape.ts';
import type { Shape } from '../ir/types.ts';
import { callerLoc } from './location.ts';
import { checkShape, describe, emit } from './trace.ts';
import type { Tensor } from './tensor.ts';

const one = (xs: Tensor[]): Tensor => xs[0];

/** Composites read their operand's shape before emit checks it: check it first, under the name the user called. */
function tensorArg(what: string, x: unknown, which = 'the operand'): Tensor {
  if (x === null || typeof x !== 'object' || typeof (x as Tensor).id !== 'number' || !Array.isArray((x as Tensor).shape))
    throw new LomocError(`${what}: ${which} must be a tensor, got ${describe(x)}`, callerLoc());
  return x as Tensor;
}

/** A constant: every element equals `value`. */
export function constant(value: number, shape: Shape = []): Tensor {
  const loc = callerLoc();
  if (typeof value !== 'number') throw new LomocError(`constant: the value must be a number, got ${describe(value)}`, loc);
  return one(emit('fill', [], { value, shape: checkShape('constant', shape, loc), dtype: 'f32' }, 'constant'));
}

function lift(x: Tensor | number, like: Tensor | number, name: string): Tensor {
  if (typeof x !== 'number') return x;
  const dtype = typeof like === 'number' ? 'f32' : like.dtype;
  if (typeof like === 'number') throw new LomocError(`${name}: at least one operand must be a tensor, got two numbers`, callerLoc());
  return one(emit('fill', [], { value: x, shape: [], dtype }, name));
}

export interface MatmulOptions {
  readonly transA?: boolean;
  readonly transB?: boolean;
}
/**
 * Batched matrix product over the last two axes; leading axes broadcast.
 * @example const y = matmul(x, w)            // [B, T, D] x [D, F] -> [B, T, F]
 * @example const s = matmul(q, k, { transB: true })
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  return one(emit('matmul', [a, b], { transA: opts.transA ?? false, transB: opts.transB ?? false }));
}

/** Elementwise with numpy broadcasting; either side may be a number. */
export const add = (a: Tensor | number, b: Tensor | number): Tensor =>
  one(emit('add', [lift(a, b, 'add'), lift(b, a, 'add')], {}));
export const sub = (a: Tensor | number, b: Tensor | number): Tensor =>
  one(emit('sub', [lift(a, b, 'sub'), lift(b, a, 'sub')], {}));
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number' && typeof a !== 'number') return one(emit('scale', [a], { c: b }, 'mul'));
  if (typeof a === 'number' && typeof b !== 'number') return one(emit('scale', [b], { c: a }, 'mul'));
  return one(emit('mul', [lift(a, b, 'mul'), lift(b, a, 'mul')], {}));
}
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number' && typeof a !== 'number') return one(emit('scale', [a], { c: 1 / b }, 'div'));
  return one(emit('div', [lift(a, b, 'div'), lift(b, a, 'div')], {}));
}

export const neg = (x: Tensor): Tensor => one(emit('neg', [x], {}));
export const exp = (x: Tensor): Tensor => one(emit('exp', [x], {}));
export const log = (x: Tensor): Tensor => one(emit('log', [x], {}));
export const sqrt = (x: Tensor): Tensor => one(emit('sqrt', [x], {}));
export const rsqrt = (x: Tensor): Tensor => one(emit('rsqrt', [x], {}));
export const tanh = (x: Tensor): Tensor => one(emit('tanh', [x], {}));
/** GELU with GPT-2's tanh approximation. */
export const gelu = (x: Tensor): Tensor => one(emit('gelu', [x], {}));
export const silu = (x: Tensor): Tensor => one(emit('silu', [x], {}));
export const relu = (x: Tensor): Tensor => one(emit('relu', [x], {}));

function axesOf(name: string, x: Tensor, axes: number | readonly number[] | undefined): number[] {
  tensorArg(name, x);
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const norm = Array.isArray(list) ? normalizeAxes(list, x.shape.length) : undefined;
  if (!norm)
    throw new LomocError(
      `${name}: axes must be integers in [-${x.shape.length}, ${x.shape.length}) for ${fmtShape(x.shape)}, got ${describe(axes)}`,
      callerLoc(),
    );
  return norm;
}
/** Reductions over `axes` (default: all). */
export const sum = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor =>
  one(emit('sum', [x], { axes: axesOf('sum', x, axes), keepDims }));
export const mean = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor =>
  one(emit('mean', [x], { axes: axesOf('mean', x, axes), keepDims }));
export const max = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor =>
  one(emit('max', [x], { axes: axesOf('max', x, axes), keepDims }));

/** One dimension may be -1: it is inferred. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  tensorArg('reshape', x);
  const loc = callerLoc();
  if (!Array.isArray(shape)) throw new LomocError(`reshape: the new shape must be an array of integers, got ${describe(shape)}`, loc);
  const bad = shape.findIndex((d) => !Number.isInteger(d) || (d < 1 && d !== -1));
  if (bad >= 0)
    throw new LomocError(`reshape: dimension ${bad} of the new shape must be a positive integer or -1, got ${typeof shape[bad] === 'number' ? shape[bad] : describe(shape[bad])} in ${fmtShape(shape)}`, loc);
  if (shape.filter((d) => d === -1).length > 1)
    throw new LomocError(`reshape: at most one dimension of the new shape may be -1, got ${fmtShape(shape)}`, loc);
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const total = numel(x.shape);
  const resolved = shape.map((d) => (d === -1 ? total / known : d));
  if (resolved.some((d) => !Number.isInteger(d)))
    throw new LomocError(`reshape: the new shape must hold the same number of elements (${total}), got ${fmtShape(shape)}`, loc);
  return one(emit('reshape', [x], { shape: resolved }));
}

/** An axis in [-rank, rank) as a non-negative index, or a user error naming `what`. */
function axisOf(what: string, x: Tensor, axis: unknown): number {
  const r = x.shape.length;
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -r || axis >= r)
    throw new LomocError(`${what}: axis must be an integer in [-${r}, ${r}) for ${fmtShape(x.shape)}, got ${describe(axis)}`, callerLoc());
  return axis < 0 ? axis + r : axis;
}

/** Permutes axes; the default swaps the last two. */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  tensorArg('transpose', x);
  const r = x.shape.length;
  if (perm === undefined && r < 2)
    throw new LomocError(`transpose: with no perm the operand must have rank >= 2 (the last two axes swap), got ${fmtShape(x.shape)}`, callerLoc());
  const p = perm ?? x.shape.map((_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
  return one(emit('transpose', [x], { perm: p.map((a) => (a < 0 ? a + r : a)) }));
}
export const permute = (x: Tensor, perm: readonly number[]): Tensor => transpose(x, perm);

/** Elements [start, end) along one axis. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  tensorArg('slice', x);
  const a = axisOf('slice', x, axis);
  const starts = x.shape.map((_, i) => (i === a ? start : 0));
  const ends = x.shape.map((d, i) => (i === a ? end : d));
  return one(emit('slice', [x], { starts, ends }));
}
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new LomocError(`concat: expected a non-empty array of tensors, got ${describe(xs)}`, callerLoc());
  return one(emit('concat', xs, { axis: xs[0]?.shape ? axisOf('concat', xs[0], axis) : axis }));
}
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  tensorArg('broadcastTo', x);
  return one(emit('broadcastTo', [x], { shape: checkShape('broadcastTo', shape, callerLoc(), x.dtype) }));
}

/** Over the last axis. */
export const softmax = (x: Tensor): Tensor => one(emit('softmax', [x], {}));
export const logSoftmax = (x: Tensor): Tensor => one(emit('logSoftmax', [x], {}));
export const layerNorm = (x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor =>
  one(emit('layerNorm', [x, gamma, beta], { eps }));
export const rmsNorm = (x: Tensor, gamma: Tensor, eps = 1e-6): Tensor => one(emit('rmsNorm', [x, gamma], { eps }));

/** Rows of `table` [V, D] picked by i32 `ids` [...] -> [..., D]. */
export const embedding = (table: Tensor, ids: Tensor): Tensor => one(emit('embedding', [table, ids], {}));

/** Rotary position embedding on x [..., T, Dh] (positions along axis -2). */
export const rope = (x: Tensor, base = 10000): Tensor => one(emit('rope', [x], { base, inverse: false }));

export interface AttentionOptions {
  readonly causal?: boolean;
  /** Defaults to 1 / sqrt(head dim). */
  readonly scale?: number;
}
/**
 * Scaled dot-product self-attention on q, k, v [..., T, Dh].
 *
 * One op with its own VJP rather than matmul + softmax + matmul: the backward recomputes the
 * T x T probabilities from q, k and the forward's per-row log-sum-exp (as FlashAttention does,
 * 4 bytes a query row and head saved), so nothing of size T x T is ever
 * saved for backward. Composed of primitives, every layer would keep [B, H, T, T] probabilities
 * alive until backward: 4 GiB of LLaMA-7B's activations at batch 8, sequence 512, in f16.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const dh = tensorArg('attention', q, 'q').shape.at(-1) ?? 1;
  return one(emit('attention', [q, k, v], { scale: opts.scale ?? 1 / Math.sqrt(dh), causal: opts.causal ?? true }));
}

/** Per-position cross-entropy of logits [..., V] against i32 targets [...]; take the mean for a loss. */
export const crossEntropy = (logits: Tensor, targets: Tensor): Tensor =>
  one(emit('crossEntropy', [logits, targets], {}, 'crossEntropy'));

/** [B, T, H*Dh] -> [B, H, T, Dh] */
export function splitHeads(x: Tensor, heads: number): Tensor {
  tensorArg('splitHeads', x);
  const loc = callerLoc();
  if (!Number.isInteger(heads) || heads < 1) throw new LomocError(`splitHeads: heads must be a positive integer, got ${describe(heads)}`, loc);
  const [b, t, d] = x.shape;
  if (x.shape.length !== 3 || d % heads !== 0)
    throw new LomocError(`splitHeads: expected [batch, seq, heads * headDim] with width divisible by ${heads}, got ${fmtShape(x.shape)}`, loc);
  return transpose(reshape(x, [b, t, heads, d / heads]), [0, 2, 1, 3]);
}
/** [B, H, T, Dh] -> [B, T, H*Dh] */
export function mergeHeads(x: Tensor): Tensor {
  tensorArg('mergeHeads', x);
  if (x.shape.length !== 4)
    throw new LomocError(`mergeHeads: expected [batch, heads, seq, headDim] (rank 4), got ${fmtShape(x.shape)}`, callerLoc());
  const [b, h, t, dh] = x.shape;
  return reshape(transpose(x, [0, 2, 1, 3]), [b, t, h * dh]);
}
