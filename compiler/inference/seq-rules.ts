// How each op carries the sequence axis when a graph traced over the whole context is rewritten
// to process `rows` tokens at a runtime position (chunk-step.ts). A rule gets the node, its new
// inputs and the sequence axis of each (undefined: a static value, such as a param), appends the
// node's replacement and returns its output and that output's sequence axis. `null`: the op
// never lies between the tokens and the logits of a traced forward graph.
import { LomocError } from '../diagnostics.ts';
import type { GraphBuilder } from '../ir/builder.ts';
import type { Op } from '../ir/ops.ts';
import type { NodeOf, ValueId } from '../ir/types.ts';

export interface SeqContext {
  readonly b: GraphBuilder;
  /** The old graph's shapes (over the whole context). */
  readonly oldShape: (v: ValueId) => readonly number[];
  /** Tokens per step (the new length of the sequence axis) and the context (its old length). */
  readonly rows: number;
  readonly context: number;
  /** The i32[1] position input. */
  readonly pos: ValueId;
  /** A key/value cache of `shape`, declared as persistent state; returns its value. */
  cache(name: string, shape: readonly number[], dtype: 'f32' | 'f16'): ValueId;
  /** Records the value holding the cache after this step's write. */
  written(name: string, next: ValueId): void;
  /** The index of the next attention node (names its caches). */
  nextAttention(): number;
}

export interface SeqResult {
  readonly value: ValueId;
  readonly axis: number | undefined;
}

type SeqRule<O extends Op> = (c: SeqContext, n: NodeOf<O>, ins: readonly ValueId[], axes: readonly (number | undefined)[]) => SeqResult;

const unsupported = (n: NodeOf<Op>, why: string): LomocError =>
  new LomocError(`inference: ${n.op} ${why}; the key/value-cache program cannot follow the sequence axis through it`, n.loc);

const emit = <O extends Op>(c: SeqContext, n: NodeOf<O>, ins: readonly ValueId[], attrs: NodeOf<O>['attrs'], op: Op = n.op): ValueId =>
  c.b.node(op as O, ins, attrs, n.loc, 'forward')[0];

/** Elementwise unary ops: same shape out as in, the axis stays. */
const same: SeqRule<Op> = (c, n, ins, [axis]) => ({ value: emit(c, n, ins, n.attrs), axis });

/** Row ops over the last axis (softmax, norms): the sequence must not be that axis. */
const rows: SeqRule<Op> = (c, n, ins, axes) => {
  if (axes[0] === c.oldShape(n.inputs[0]).length - 1) throw unsupported(n, 'normalises over the sequence axis');
  if (axes.slice(1).some((a) => a !== undefined)) throw unsupported(n, 'has a per-token gamma or beta');
  return { value: emit(c, n, ins, n.attrs), axis: axes[0] };
};

/**
 * Broadcasting binary ops: dynamic operands must agree on the (right-aligned) axis; a static
 * operand that spans the whole context along it (a learned position table) is sliced at the position.
 */
const binary: SeqRule<Op> = (c, n, ins, axes) => {
  const outRank = c.oldShape(n.outputs[0]).length;
  const aligned = axes.map((a, k) => (a === undefined ? undefined : outRank - c.oldShape(n.inputs[k]).length + a));
  const A = aligned.find((a) => a !== undefined)!;
  if (aligned.some((a) => a !== undefined && a !== A)) throw unsupported(n, 'combines values along different sequence axes');
  const fixed = ins.map((v, k) => {
    if (axes[k] !== undefined) return v;
    const shape = c.oldShape(n.inputs[k]);
    const at = A - (outRank - shape.length);
    if (at < 0 || shape[at] === 1) return v;
    if (shape[at] !== c.context) throw unsupported(n, `broadcasts a static ${shape.length}-d operand along the sequence axis`);
    return c.b.node('positionSlice', [v, c.pos], { axis: at, size: c.rows }, n.loc, 'forward')[0];
  });
  return { value: emit(c, n, fixed, n.attrs), axis: A };
};

const matmul: SeqRule<'matmul'> = (c, n, ins, [a, b]) => {
  const [ra, rb] = [c.oldShape(n.inputs[0]).length, c.oldShape(n.inputs[1]).length];
  const outRank = c.oldShape(n.outputs[0]).length;
  const batchAxis = (x: number | undefined, r: number) => (x !== undefined && x < r - 2 ? outRank - r + x : undefined);
  const [ba, bb] = [batchAxis(a, ra), batchAxis(b, rb)];
  let axis: number | undefined;
  if (a !== undefined && ba === undefined) {
    if (a !== (n.attrs.transA ? ra - 1 : ra - 2) || b !== undefined) throw unsupported(n, 'contracts over the sequence axis');
    axis = outRank - 2;
  } else if (b !== undefined && bb === undefined) throw unsupported(n, 'contracts over the sequence axis');
  else {
    if (ba !== undefined && bb !== undefined && ba !== bb) throw unsupported(n, 'has operands with different sequence axes');
    axis = ba ?? bb;
  }
  return { value: emit(c, n, ins, n.attrs), axis };
};

/** The new position of the sequence axis after a reshape: where the elements before it end alike. */
const reshape: SeqRule<'reshape'> = (c, n, ins, [axis]) => {
  const from = c.oldShape(n.inputs[0]);
  const to = n.attrs.shape;
  const before = from.slice(0, axis).reduce((x, y) => x * y, 1);
  let acc = 1;
  let at = -1;
  for (let i = 0; i < to.length; i++) {
    if (acc === before && to[i] === from[axis!]) {
      at = i;
      break;
    }
    acc *= to[i];
  }
  if (at < 0) throw unsupported(n, `splits or merges the sequence axis (${from.join('x')} -> ${to.join('x')})`);
  const shape = to.map((d, i) => (i === at ? c.rows : d));
  return { value: emit(c, n, ins, { shape }), axis: at };
};

const reduce: SeqRule<'sum' | 'mean' | 'max'> = (c, n, ins, [axis]) => {
  if (n.attrs.axes.includes(axis!)) throw unsupported(n, 'reduces over the sequence axis');
  const out = n.attrs.keepDims ? axis! : axis! - n.attrs.axes.filter((x) => x < axis!).length;
  return { value: emit(c, n, ins, n.attrs), axis: out };
};

const dynamicOnly = (n: NodeOf<Op>, axes: readonly (number | undefined)[]): number => {
  if (axes.some((a) => a === undefined || a !== axes[0])) throw unsupported(n, 'mixes static and per-token operands');
  return axes[0]!;
};

const tokenRows = (c: SeqContext, n: NodeOf<Op>, axis: number | undefined, v: ValueId): void => {
  if (axis !== c.oldShape(v).length - 2) throw unsupported(n, 'expects the sequence on axis -2');
};

export const seqRules: { readonly [O in Op]: SeqRule<O> | null } = {
  matmul,
  add: binary,
  sub: binary,
  mul: binary,
  div: binary,
  neg: same,
  scale: same,
  fill: null, // no inputs: always static
  exp: same,
  log: same,
  sqrt: same,
  rsqrt: same,
  tanh: same,
  gelu: same,
  silu: same,
  relu: same,
  sum: reduce,
  mean: reduce,
  max: reduce,
  reshape,
  transpose: (c, n, ins, [axis]) => ({ value: emit(c, n, ins, n.attrs), axis: n.attrs.perm.indexOf(axis!) }),
  slice: (c, n, ins, [axis]) => {
    if (n.attrs.starts[axis!] !== 0 || n.attrs.ends[axis!] !== c.context) throw unsupported(n, 'slices the sequence axis');
    const ends = n.attrs.ends.map((e, i) => (i === axis ? c.rows : e));
    return { value: emit(c, n, ins, { starts: n.attrs.starts, ends }), axis };
  },
  concat: (c, n, ins, axes) => {
    const axis = dynamicOnly(n, axes);
    if (axis === n.attrs.axis) throw unsupported(n, 'concatenates along the sequence axis');
    return { value: emit(c, n, ins, n.attrs), axis };
  },
  broadcastTo: (c, n, ins, [axis]) => {
    const r = c.oldShape(n.inputs[0]).length;
    const at = n.attrs.shape.length - r + axis!;
    return { value: emit(c, n, ins, { shape: n.attrs.shape.map((d, i) => (i === at ? c.rows : d)) }), axis: at };
  },
  softmax: rows,
  logSoftmax: rows,
  layerNorm: rows,
  rmsNorm: rows,
  embedding: (c, n, ins, [table, ids]) => {
    if (table !== undefined) throw unsupported(n, 'has a per-token table');
    return { value: emit(c, n, ins, n.attrs), axis: ids };
  },
  rope: (c, n, ins, [axis]) => {
    tokenRows(c, n, axis, n.inputs[0]);
    return { value: c.b.node('ropeAt', [ins[0], c.pos], n.attrs, n.loc, 'forward')[0], axis };
  },
  attention: (c, n, ins, axes) => {
    const axis = dynamicOnly(n, axes);
    tokenRows(c, n, axis, n.inputs[0]);
    if (!n.attrs.causal) throw unsupported(n, 'is not causal (a key/value cache needs causal attention)');
    const i = c.nextAttention();
    const shape = c.oldShape(n.inputs[1]);
    const dtype = c.b.values[ins[1]].dtype as 'f32' | 'f16';
    const write = (name: string, x: ValueId) => {
      const next = c.b.node('cacheWrite', [c.cache(name, shape, dtype), x, c.pos], {}, n.loc, 'forward')[0];
      c.written(name, next);
      return next;
    };
    const k = write(`kv.${i}.k`, ins[1]);
    const v = write(`kv.${i}.v`, ins[2]);
    return { value: c.b.node('cachedAttention', [ins[0], k, v, c.pos], { scale: n.attrs.scale }, n.loc, 'forward')[0], axis };
  },
  crossEntropy: null,
  geluGrad: null,
  siluGrad: null,
  reluGrad: null,
  tanhGrad: null,
  maxGrad: null,
  pad: null,
  softmaxGrad: null,
  logSoftmaxGrad: null,
  layerNormGrad: null,
  rmsNormGrad: null,
  embeddingGrad: null,
  attentionGrad: null,
  crossEntropyGrad: null,
  // The training pipeline's fused loss (passes/fuse-loss.ts): inference never compiles it.
  linearCrossEntropy: null,
  linearCrossEntropyGrad: null,
  optimizerUpdate: null,
  sumSquares: null,
  clipFactor: null,
  positionSlice: null,
  ropeAt: null,
  cacheWrite: null,
  cachedAttention: null,
};
