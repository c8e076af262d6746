// The shape and dtype rule of every op: given the inputs' types and the attrs, the outputs' types,
// or a ShapeError saying what was expected and what was found.
import { elementwiseDef, elementwiseOpNames, type ElementwiseOp, type Operands } from './elementwise-ops.ts';
import type { Op, OpAttrs, UpdateAttrs } from './ops.ts';
import type { DType, Shape } from './types.ts';
import { updateRule } from '../optimizers/table.ts';
import { updateAttrs, updateInputOrder } from '../optimizers/update-layout.ts';
import { broadcastShapes, fmtShape, isFloat, reducedShape, sameShape, sizeProblem } from './shape.ts';

export interface TensorType {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** A rule's complaint. `operand` (an input index) points the user's note at where that operand was made. */
export class ShapeError extends Error {
  constructor(message: string, readonly operand?: number) {
    super(message);
  }
}

type Rule<O extends Op> = (ins: readonly TensorType[], attrs: OpAttrs[O]) => TensorType[];

const ordinal = ['first', 'second', 'third', 'fourth', 'fifth'];
const operandName = (i: number, n: number): string =>
  n === 2 ? (i === 0 ? 'left' : 'right') : ordinal[i] ?? `#${i + 1}`;

function arity(ins: readonly TensorType[], n: number): void {
  if (ins.length !== n) throw new ShapeError(`expected ${n} operand${n === 1 ? '' : 's'}, got ${ins.length}`);
}
function float(ins: readonly TensorType[], i: number, what = `the ${operandName(i, ins.length)} operand`): void {
  if (!isFloat(ins[i].dtype)) throw new ShapeError(`${what} must be a float tensor, got ${ins[i].dtype}`, i);
}
function int(ins: readonly TensorType[], i: number, what: string): void {
  if (ins[i].dtype !== 'i32') throw new ShapeError(`${what} must be an i32 tensor, got ${ins[i].dtype}`, i);
}
function sameDtype(ins: readonly TensorType[]): DType {
  const d = ins[0].dtype;
  ins.forEach((t, i) => {
    if (t.dtype !== d)
      throw new ShapeError(`operands must have the same dtype, got ${d} and ${t.dtype}`, i);
  });
  return d;
}
function rankAtLeast(ins: readonly TensorType[], i: number, r: number, what: string): void {
  if (ins[i].shape.length < r)
    throw new ShapeError(`${what} must have rank >= ${r}, got ${fmtShape(ins[i].shape)}`, i);
}
function mustEqual(ins: readonly TensorType[], i: number, want: Shape, what: string): void {
  if (!sameShape(ins[i].shape, want))
    throw new ShapeError(`${what} must have shape ${fmtShape(want)}, got ${fmtShape(ins[i].shape)}`, i);
}

const unary: Rule<Op> = (ins) => {
  arity(ins, 1);
  float(ins, 0, 'the operand');
  return [ins[0]];
};
const binary: Rule<Op> = (ins) => {
  arity(ins, 2);
  const dtype = sameDtype(ins);
  if (!isFloat(dtype)) throw new ShapeError(`operands must be float tensors, got ${dtype}`, 0);
  const shape = broadcastShapes(ins[0].shape, ins[1].shape);
  if (!shape)
    throw new ShapeError(
      `shapes must broadcast, got ${fmtShape(ins[0].shape)} and ${fmtShape(ins[1].shape)}`,
      1,
    );
  return [{ shape, dtype }];
};
/** (x, dy) -> dx of x's type */
const unaryGrad: Rule<Op> = (ins) => {
  arity(ins, 2);
  mustEqual(ins, 1, ins[0].shape, 'the incoming gradient');
  return [ins[0]];
};
const reduce: Rule<'sum' | 'mean' | 'max'> = (ins, a) => {
  arity(ins, 1);
  float(ins, 0, 'the operand');
  if (a.axes.some((x) => x >= ins[0].shape.length))
    throw new ShapeError(`axes ${fmtShape(a.axes)} out of range for ${fmtShape(ins[0].shape)}`, 0);
  return [{ shape: reducedShape(ins[0].shape, a.axes, a.keepDims), dtype: ins[0].dtype }];
};
const lastAxis: Rule<Op> = (ins) => {
  arity(ins, 1);
  float(ins, 0, 'the operand');
  rankAtLeast(ins, 0, 1, 'the operand');
  return [ins[0]];
};

function matmulShape(a: Shape, b: Shape, transA: boolean, transB: boolean): number[] {
  const [m, k1] = transA ? [a[a.length - 1], a[a.length - 2]] : [a[a.length - 2], a[a.length - 1]];
  const [k2, n] = transB ? [b[b.length - 1], b[b.length - 2]] : [b[b.length - 2], b[b.length - 1]];
  if (k1 !== k2) {
    const t = (x: boolean) => (x ? ' (transposed)' : '');
    throw new ShapeError(
      `inner dimensions must match, got ${fmtShape(a)}${t(transA)} and ${fmtShape(b)}${t(transB)}`,
      1,
    );
  }
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  if (!batch)
    throw new ShapeError(`batch dimensions must broadcast, got ${fmtShape(a)} and ${fmtShape(b)}`, 1);
  return [...batch, m, n];
}

/** The elementwise ops' rules, by how their operands combine (elementwise-ops.ts). */
/** h [..., D] and W [D, V] ([V, D] when transW), floats of one dtype; a chunk in 1..V. */
function linearLossOperands(ins: readonly TensorType[], a: OpAttrs['linearCrossEntropy']): [TensorType, TensorType] {
  const [h, w] = ins;
  float(ins, 0, 'the hidden state');
  float(ins, 1, 'the head weight');
  sameDtype(ins.slice(0, 2));
  rankAtLeast(ins, 0, 1, 'the hidden state');
  if (w.shape.length !== 2) throw new ShapeError(`the head weight must have rank 2, got ${fmtShape(w.shape)}`, 1);
  const d = h.shape[h.shape.length - 1];
  const [wd, v] = a.transW ? [w.shape[1], w.shape[0]] : w.shape;
  if (wd !== d) throw new ShapeError(`the head weight must have ${d} ${a.transW ? 'columns' : 'rows'} (the hidden width), got ${fmtShape(w.shape)}`, 1);
  if (!(Number.isInteger(a.chunk) && a.chunk >= 1 && a.chunk <= Math.max(1, v)))
    throw new ShapeError(`the vocabulary chunk must be an integer in 1..${v}, got ${a.chunk}`, 1);
  return [h, w];
}

const byOperands = { unary, binary, gradient: unaryGrad } satisfies Record<Operands, Rule<Op>>;
const elementwiseRules = Object.fromEntries(
  elementwiseOpNames.map((op) => [op, byOperands[elementwiseDef(op).operands]]),
) as { readonly [O in ElementwiseOp]: Rule<O> };

export const shapeRules: { readonly [O in Op]: Rule<O> } = {
  ...elementwiseRules,
  matmul: (ins, a) => {
    arity(ins, 2);
    const dtype = sameDtype(ins);
    float(ins, 0);
    rankAtLeast(ins, 0, 2, 'the left operand');
    rankAtLeast(ins, 1, 2, 'the right operand');
    return [{ shape: matmulShape(ins[0].shape, ins[1].shape, a.transA, a.transB), dtype }];
  },
  fill: (ins, a) => {
    arity(ins, 0);
    return [{ shape: a.shape, dtype: a.dtype }];
  },
  sum: reduce,
  mean: reduce,
  max: reduce,
  reshape: (ins, a) => {
    arity(ins, 1);
    const from = ins[0].shape.reduce((x, y) => x * y, 1);
    const to = a.shape.reduce((x, y) => x * y, 1);
    const bad = a.shape.findIndex((d) => !Number.isInteger(d) || d < 1);
    if (bad >= 0) throw new ShapeError(`dimension ${bad} of the new shape must be a positive integer, got ${a.shape[bad]}`, 0);
    if (from !== to)
      throw new ShapeError(
        `the new shape must hold the same number of elements (${from}), got ${fmtShape(a.shape)} (${to})`,
        0,
      );
    return [{ shape: a.shape, dtype: ins[0].dtype }];
  },
  transpose: (ins, a) => {
    arity(ins, 1);
    const r = ins[0].shape.length;
    const ok = a.perm.length === r && [...a.perm].sort((x, y) => x - y).every((p, i) => p === i);
    if (!ok)
      throw new ShapeError(`perm must be a permutation of 0..${r - 1}, got ${fmtShape(a.perm)}`, 0);
    return [{ shape: a.perm.map((p) => ins[0].shape[p]), dtype: ins[0].dtype }];
  },
  slice: (ins, a) => {
    arity(ins, 1);
    const s = ins[0].shape;
    const ok =
      a.starts.length === s.length &&
      a.ends.length === s.length &&
      s.every((d, i) => 0 <= a.starts[i] && a.starts[i] < a.ends[i] && a.ends[i] <= d);
    if (!ok)
      throw new ShapeError(
        `slice bounds must satisfy 0 <= start < end <= size on every axis of ${fmtShape(s)}, got starts ${fmtShape(a.starts)} ends ${fmtShape(a.ends)}`,
        0,
      );
    return [{ shape: s.map((_, i) => a.ends[i] - a.starts[i]), dtype: ins[0].dtype }];
  },
  concat: (ins, a) => {
    if (ins.length < 1) throw new ShapeError('expected at least one operand, got 0');
    const dtype = sameDtype(ins);
    const s0 = ins[0].shape;
    if (a.axis < 0 || a.axis >= s0.length) throw new ShapeError(`axis ${a.axis} out of range for ${fmtShape(s0)}`, 0);
    ins.forEach((t, i) => {
      const ok = t.shape.length === s0.length && t.shape.every((d, j) => j === a.axis || d === s0[j]);
      if (!ok)
        throw new ShapeError(
          `operands must match on every axis but ${a.axis}, got ${fmtShape(s0)} and ${fmtShape(t.shape)}`,
          i,
        );
    });
    const shape = [...s0];
    shape[a.axis] = ins.reduce((acc, t) => acc + t.shape[a.axis], 0);
    return [{ shape, dtype }];
  },
  broadcastTo: (ins, a) => {
    arity(ins, 1);
    const b = broadcastShapes(ins[0].shape, a.shape);
    if (!b || !sameShape(b, a.shape))
      throw new ShapeError(`cannot broadcast ${fmtShape(ins[0].shape)} to ${fmtShape(a.shape)}`, 0);
    return [{ shape: a.shape, dtype: ins[0].dtype }];
  },
  softmax: lastAxis,
  logSoftmax: lastAxis,
  layerNorm: (ins) => {
    arity(ins, 3);
    float(ins, 0, 'the input');
    rankAtLeast(ins, 0, 1, 'the input');
    const d = ins[0].shape[ins[0].shape.length - 1];
    mustEqual(ins, 1, [d], 'gamma');
    mustEqual(ins, 2, [d], 'beta');
    sameDtype(ins);
    return [ins[0]];
  },
  rmsNorm: (ins) => {
    arity(ins, 2);
    float(ins, 0, 'the input');
    rankAtLeast(ins, 0, 1, 'the input');
    mustEqual(ins, 1, [ins[0].shape[ins[0].shape.length - 1]], 'gamma');
    sameDtype(ins);
    return [ins[0]];
  },
  embedding: (ins) => {
    arity(ins, 2);
    float(ins, 0, 'the table');
    if (ins[0].shape.length !== 2) throw new ShapeError(`the table must be [vocab, dim], got ${fmtShape(ins[0].shape)}`, 0);
    int(ins, 1, 'token ids');
    return [{ shape: [...ins[1].shape, ins[0].shape[1]], dtype: ins[0].dtype }];
  },
  rope: (ins) => {
    arity(ins, 1);
    float(ins, 0, 'the operand');
    rankAtLeast(ins, 0, 2, 'the operand');
    const dh = ins[0].shape[ins[0].shape.length - 1];
    if (dh % 2 !== 0) throw new ShapeError(`the last axis (head dim) must be even, got ${dh}`, 0);
    return [ins[0]];
  },
  attention: (ins) => {
    arity(ins, 3);
    const dtype = sameDtype(ins);
    float(ins, 0, 'q');
    rankAtLeast(ins, 0, 2, 'q');
    mustEqual(ins, 1, ins[0].shape, 'k');
    mustEqual(ins, 2, ins[0].shape, 'v');
    return [{ shape: ins[0].shape, dtype }, { shape: ins[0].shape.slice(0, -1), dtype: 'f32' as DType }];
  },
  crossEntropy: (ins) => {
    arity(ins, 2);
    float(ins, 0, 'the logits');
    rankAtLeast(ins, 0, 1, 'the logits');
    int(ins, 1, 'the targets');
    mustEqual(ins, 1, ins[0].shape.slice(0, -1), 'the targets');
    return [{ shape: ins[1].shape, dtype: ins[0].dtype }];
  },
  linearCrossEntropy: (ins, a) => {
    arity(ins, 3);
    const [h] = linearLossOperands(ins, a);
    int(ins, 2, 'the targets');
    mustEqual(ins, 2, h.shape.slice(0, -1), 'the targets');
    return [{ shape: ins[2].shape, dtype: h.dtype }, { shape: ins[2].shape, dtype: 'f32' as DType }];
  },
  linearCrossEntropyGrad: (ins, a) => {
    arity(ins, 5);
    const [h, w] = linearLossOperands(ins, a);
    int(ins, 2, 'the targets');
    mustEqual(ins, 2, h.shape.slice(0, -1), 'the targets');
    mustEqual(ins, 3, ins[2].shape, 'the log-sum-exp');
    mustEqual(ins, 4, ins[2].shape, 'the incoming gradient');
    return [h, w];
  },
  maxGrad: (ins, a) => {
    arity(ins, 3);
    const y = reducedShape(ins[0].shape, a.axes, a.keepDims);
    mustEqual(ins, 1, y, 'the max');
    mustEqual(ins, 2, y, 'the incoming gradient');
    return [ins[0]];
  },
  pad: (ins, a) => {
    arity(ins, 1);
    const s = ins[0].shape;
    if (a.before.length !== s.length || a.after.length !== s.length)
      throw new ShapeError(`padding must name every axis of ${fmtShape(s)}`, 0);
    return [{ shape: s.map((d, i) => d + a.before[i] + a.after[i]), dtype: ins[0].dtype }];
  },
  softmaxGrad: unaryGrad,
  logSoftmaxGrad: unaryGrad,
  layerNormGrad: (ins) => {
    arity(ins, 3);
    mustEqual(ins, 2, ins[0].shape, 'the incoming gradient');
    return [ins[0], ins[1], ins[1]];
  },
  rmsNormGrad: (ins) => {
    arity(ins, 3);
    mustEqual(ins, 2, ins[0].shape, 'the incoming gradient');
    return [ins[0], ins[1]];
  },
  embeddingGrad: (ins, a) => {
    arity(ins, 2);
    int(ins, 0, 'token ids');
    const d = ins[1].shape[ins[1].shape.length - 1];
    mustEqual(ins, 1, [...ins[0].shape, d], 'the incoming gradient');
    return [{ shape: [a.vocab, d], dtype: ins[1].dtype }];
  },
  attentionGrad: (ins) => {
    arity(ins, 5);
    for (const i of [1, 2, 4]) mustEqual(ins, i, ins[0].shape, 'every operand');
    mustEqual(ins, 3, ins[0].shape.slice(0, -1), 'the log-sum-exp');
    if (ins[3].dtype !== 'f32') throw new ShapeError(`the log-sum-exp must be an f32 tensor, got ${ins[3].dtype}`, 3);
    return [ins[0], ins[0], ins[0]];
  },
  crossEntropyGrad: (ins) => {
    arity(ins, 3);
    mustEqual(ins, 2, ins[1].shape, 'the incoming gradient');
    return [ins[0]];
  },
  optimizerUpdate: (ins, a) => updateTypes(ins, a),
  sumSquares: (ins) => {
    arity(ins, 1);
    float(ins, 0, 'the gradient');
    return [{ shape: [], dtype: 'f32' }];
  },
  clipFactor: (ins, a) => {
    arity(ins, 1 + (a.unscale ? 1 : 0) + (a.previous ? 1 : 0));
    ins.forEach((_, k) => mustEqual(ins, k, [], k === 0 ? 'the squared norm' : a.unscale && k === 1 ? 'the loss scale' : 'the previous norm'));
    return [{ shape: [], dtype: 'f32' }];
  },
  positionSlice: (ins, a) => {
    arity(ins, 2);
    position(ins, 1);
    const s = ins[0].shape;
    if (!(a.axis >= 0 && a.axis < s.length && Number.isInteger(a.size) && a.size >= 1 && a.size <= s[a.axis]))
      throw new ShapeError(`the slice must fit axis ${a.axis} of ${fmtShape(s)}, got ${a.size} elements`, 0);
    return [{ shape: s.map((d, i) => (i === a.axis ? a.size : d)), dtype: ins[0].dtype }];
  },
  ropeAt: (ins) => {
    arity(ins, 2);
    position(ins, 1);
    return shapeRules.rope([ins[0]], { base: 1, inverse: false });
  },
  cacheWrite: (ins) => {
    arity(ins, 3);
    position(ins, 2);
    float(ins, 0, 'the cache');
    rankAtLeast(ins, 0, 2, 'the cache');
    const c = ins[0].shape;
    mustEqual(ins, 1, [...c.slice(0, -2), ins[1].shape.at(-2) ?? 0, c[c.length - 1]], 'the new rows');
    if (ins[1].shape[c.length - 2] > c[c.length - 2]) throw new ShapeError(`the new rows must fit the cache ${fmtShape(c)}, got ${fmtShape(ins[1].shape)}`, 1);
    sameDtype(ins.slice(0, 2));
    return [ins[0]];
  },
  cachedAttention: (ins) => {
    arity(ins, 4);
    position(ins, 3);
    float(ins, 0, 'q');
    rankAtLeast(ins, 0, 2, 'q');
    const q = ins[0].shape;
    const rows = ins[1].shape.at(-2) ?? 0;
    mustEqual(ins, 1, [...q.slice(0, -2), rows, q[q.length - 1]], 'the key cache');
    mustEqual(ins, 2, ins[1].shape, 'the value cache');
    sameDtype(ins.slice(0, 3));
    return [ins[0]];
  },
};

/** A position operand: i32 [1]. */
function position(ins: readonly TensorType[], i: number): void {
  int(ins, i, 'the position');
  mustEqual(ins, i, [1], 'the position');
}

/** Named inputs (p, g, the step scalars, the rule's states, master) -> [p', state'...]. */
function updateTypes(ins: readonly TensorType[], a: UpdateAttrs): TensorType[] {
  const rule = updateRule(a.rule);
  const layout = updateAttrs(rule, a);
  const names = updateInputOrder(a);
  if (names.join() !== updateInputOrder(layout).join() || a.states.join() !== layout.states.join())
    throw new ShapeError(`the ${a.rule} update takes inputs ${updateInputOrder(layout).join(', ')}, got ${names.join(', ')}`);
  arity(ins, names.length);
  const at = (name: string) => a.inputs[name];
  float(ins, at('p'), 'the param');
  const w = a.window;
  const ps = ins[at('p')].shape;
  if (w && !(Number.isInteger(w.axis) && w.axis >= 0 && w.axis < ps.length && Number.isInteger(w.start) && Number.isInteger(w.end) && w.start >= 0 && w.start < w.end && w.end <= ps[w.axis]))
    throw new ShapeError(`the update window [${w.start}, ${w.end}) on axis ${w.axis} is not within the param's shape [${ps.join(', ')}]`);
  mustEqual(ins, at('g'), w ? ps.map((d, k) => (k === w.axis ? w.end - w.start : d)) : ps, 'the gradient');
  for (const name of ['lr', 'wd', 'step', 'scale']) if (at(name) !== undefined) mustEqual(ins, at(name), [], 'every step scalar');
  const p = ins[at('p')];
  const shapes = new Map(rule.states.map((s) => [s.name, s.shape(p.shape)]));
  for (const name of a.states) {
    if (w && !sameShape(shapes.get(name) ?? p.shape, p.shape)) throw new ShapeError(`an update window needs states of the param's shape; '${name}' has its own`);
    mustEqual(ins, at(name), shapes.get(name) ?? p.shape, `optimizer state '${name}'`);
    if (ins[at(name)].dtype !== 'f32') throw new ShapeError(`optimizer state must be f32, got ${ins[at(name)].dtype}`, at(name));
  }
  return [p, ...a.states.map((name) => ({ shape: ins[at(name)].shape, dtype: 'f32' as const }))];
}

/** Applies an op's rule; the one entry point the tracer, autodiff and the verifier share. */
export function inferTypes<O extends Op>(op: O, ins: readonly TensorType[], attrs: OpAttrs[O]): TensorType[] {
  const out = (shapeRules[op] as Rule<O>)(ins, attrs);
  // Every size downstream (numel, bytes, offsets) is a JS number: past 2^53 it silently rounds.
  for (const t of out) {
    const problem = sizeProblem(t.shape, t.dtype);
    if (problem) throw new ShapeError(`the result ${problem}`);
  }
  return out;
}
