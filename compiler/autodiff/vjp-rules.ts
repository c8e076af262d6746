// One VJP rule per op, in one table the type checker keeps complete (tinygrad's gradient.py,
// jax's transpose rules). A rule gets the forward node, the gradient of each of its outputs, and
// which inputs need a gradient; it appends backward nodes and returns one gradient per input
// (undefined where none is needed or none exists, as for integer token ids).
// Backward-only ops are `null`: lomoc does not take second derivatives.
import type { Op } from '../ir/ops.ts';
import { numel, reducedShape } from '../ir/shape.ts';
import type { NodeOf, ValueId } from '../ir/types.ts';
import type { VjpContext } from './vjp-context.ts';

export type Grads = (ValueId | undefined)[];
export type VjpRule<O extends Op> = (
  c: VjpContext,
  n: NodeOf<O>,
  dy: readonly ValueId[],
  need: readonly boolean[],
) => Grads;

const when = (need: boolean, f: () => ValueId): ValueId | undefined => (need ? f() : undefined);

/** Weight gradients of a rank-2 operand against a batched one: fold the batch into the rows. */
function matmulGrads(c: VjpContext, n: NodeOf<'matmul'>, dy: ValueId, need: readonly boolean[]): Grads {
  const [a, b] = n.inputs;
  const { transA, transB } = n.attrs;
  const mm = (x: ValueId, y: ValueId, ta: boolean, tb: boolean) => c.one('matmul', [x, y], { transA: ta, transB: tb });
  const sa = c.shape(a);
  const sb = c.shape(b);
  const flat = (v: ValueId) => {
    const s = c.shape(v);
    return c.reshape(v, [numel(s.slice(0, -1)), s[s.length - 1]]);
  };
  let da: ValueId | undefined;
  let db: ValueId | undefined;
  if (need[0]) {
    if (!transA && !transB) da = mm(dy, b, false, true);
    else if (!transA && transB) da = mm(dy, b, false, false);
    else if (transA && !transB) da = mm(b, dy, false, true);
    else da = mm(b, dy, true, true);
    da = c.unbroadcast(da, sa);
  }
  if (need[1]) {
    if (sb.length === 2 && sa.length > 2 && !transA) {
      // [..., M, K] x [K, N]: dB = A'^T dY' with the batch folded into M, so no [batch, K, N] temporary.
      db = transB ? mm(flat(dy), flat(a), true, false) : mm(flat(a), flat(dy), true, false);
    } else {
      if (!transA && !transB) db = mm(a, dy, true, false);
      else if (!transA && transB) db = mm(dy, a, true, false);
      else if (transA && !transB) db = mm(a, dy, false, false);
      else db = mm(dy, a, true, true);
      db = c.unbroadcast(db, sb);
    }
  }
  return [da, db];
}

const unaryWith =
  <O extends Op>(grad: 'geluGrad' | 'siluGrad' | 'reluGrad'): VjpRule<O> =>
  (c, n, [dy]) => [c.one(grad, [n.inputs[0], dy], {})];

function reduceBack(c: VjpContext, x: ValueId, dy: ValueId, axes: readonly number[]): ValueId {
  const kept = reducedShape(c.shape(x), axes, true);
  return c.one('broadcastTo', [c.reshape(dy, kept)], { shape: c.shape(x) });
}

export const vjpRules: { readonly [O in Op]: VjpRule<O> | null } = {
  matmul: (c, n, [dy], need) => matmulGrads(c, n, dy, need),
  add: (c, n, [dy], need) => [
    when(need[0], () => c.unbroadcast(dy, c.shape(n.inputs[0]))),
    when(need[1], () => c.unbroadcast(dy, c.shape(n.inputs[1]))),
  ],
  sub: (c, n, [dy], need) => [
    when(need[0], () => c.unbroadcast(dy, c.shape(n.inputs[0]))),
    when(need[1], () => c.unbroadcast(c.one('neg', [dy], {}), c.shape(n.inputs[1]))),
  ],
  mul: (c, n, [dy], need) => [
    when(need[0], () => c.unbroadcast(c.one('mul', [dy, n.inputs[1]], {}), c.shape(n.inputs[0]))),
    when(need[1], () => c.unbroadcast(c.one('mul', [dy, n.inputs[0]], {}), c.shape(n.inputs[1]))),
  ],
  div: (c, n, [dy], need) => [
    when(need[0], () => c.unbroadcast(c.one('div', [dy, n.inputs[1]], {}), c.shape(n.inputs[0]))),
    // d(a/b)/db = -a/b^2 = -y/b
    when(need[1], () => {
      const q = c.one('div', [n.outputs[0], n.inputs[1]], {});
      return c.unbroadcast(c.one('neg', [c.one('mul', [dy, q], {})], {}), c.shape(n.inputs[1]));
    }),
  ],
  neg: (c, _n, [dy]) => [c.one('neg', [dy], {})],
  scale: (c, n, [dy]) => [c.one('scale', [dy], { c: n.attrs.c })],
  fill: () => [],
  exp: (c, n, [dy]) => [c.one('mul', [dy, n.outputs[0]], {})],
  log: (c, n, [dy]) => [c.one('div', [dy, n.inputs[0]], {})],
  sqrt: (c, n, [dy]) => [c.one('scale', [c.one('div', [dy, n.outputs[0]], {})], { c: 0.5 })],
  // y = x^(-1/2): dy/dx = -y^3 / 2
  rsqrt: (c, n, [dy]) => {
    const y = n.outputs[0];
    const y3 = c.one('mul', [c.one('mul', [y, y], {}), y], {});
    return [c.one('mul', [dy, c.one('scale', [y3], { c: -0.5 })], {})];
  },
  tanh: (c, n, [dy]) => [c.one('tanhGrad', [n.outputs[0], dy], {})],
  gelu: unaryWith('geluGrad'),
  silu: unaryWith('siluGrad'),
  relu: unaryWith('reluGrad'),
  sum: (c, n, [dy]) => [reduceBack(c, n.inputs[0], dy, n.attrs.axes)],
  mean: (c, n, [dy]) => {
    const count = n.attrs.axes.reduce((acc, a) => acc * c.shape(n.inputs[0])[a], 1);
    return [c.one('scale', [reduceBack(c, n.inputs[0], dy, n.attrs.axes)], { c: 1 / count })];
  },
  max: (c, n, [dy]) => [c.one('maxGrad', [n.inputs[0], n.outputs[0], dy], n.attrs)],
  reshape: (c, n, [dy]) => [c.reshape(dy, c.shape(n.inputs[0]))],
  transpose: (c, n, [dy]) => {
    const inv = new Array<number>(n.attrs.perm.length);
    n.attrs.perm.forEach((p, i) => (inv[p] = i));
    return [c.one('transpose', [dy], { perm: inv })];
  },
  slice: (c, n, [dy]) => {
    const s = c.shape(n.inputs[0]);
    return [c.one('pad', [dy], { before: n.attrs.starts, after: s.map((d, i) => d - n.attrs.ends[i]) })];
  },
  concat: (c, n, [dy], need) => {
    const s = c.shape(dy);
    let at = 0;
    return n.inputs.map((x, i) => {
      const len = c.shape(x)[n.attrs.axis];
      const starts = s.map((_, k) => (k === n.attrs.axis ? at : 0));
      const ends = s.map((d, k) => (k === n.attrs.axis ? at + len : d));
      at += len;
      return when(need[i], () => c.one('slice', [dy], { starts, ends }));
    });
  },
  broadcastTo: (c, n, [dy]) => [c.unbroadcast(dy, c.shape(n.inputs[0]))],
  softmax: (c, n, [dy]) => [c.one('softmaxGrad', [n.outputs[0], dy], {})],
  logSoftmax: (c, n, [dy]) => [c.one('logSoftmaxGrad', [n.outputs[0], dy], {})],
  layerNorm: (c, n, [dy]) => c.emit('layerNormGrad', [n.inputs[0], n.inputs[1], dy], n.attrs),
  rmsNorm: (c, n, [dy]) => c.emit('rmsNormGrad', [n.inputs[0], n.inputs[1], dy], n.attrs),
  embedding: (c, n, [dy], need) => [
    when(need[0], () => c.one('embeddingGrad', [n.inputs[1], dy], { vocab: c.shape(n.inputs[0])[0] })),
    undefined,
  ],
  rope: (c, n, [dy]) => [c.one('rope', [dy], { base: n.attrs.base, inverse: !n.attrs.inverse })],
  // dy only: lse (output 1) is a statistic, read by the gradient node and never differentiated.
  attention: (c, n, [dy]) => c.emit('attentionGrad', [...n.inputs, n.outputs[1], dy], n.attrs),
  crossEntropy: (c, n, [dy]) => [c.one('crossEntropyGrad', [n.inputs[0], n.inputs[1], dy], {}), undefined],
  // dloss only: lse has no consumer but the gradient node, so its incoming gradient is zero.
  linearCrossEntropy: (c, n, [dloss]) => {
    const [h, w, targets] = n.inputs;
    const [dh, dw] = c.emit('linearCrossEntropyGrad', [h, w, targets, n.outputs[1], dloss], n.attrs);
    return [dh, dw, undefined];
  },
  linearCrossEntropyGrad: null,
  geluGrad: null,
  siluGrad: null,
  reluGrad: null,
  tanhGrad: null,
  maxGrad: null,
  pad: (c, n, [dy]) => {
    const s = c.shape(dy);
    return [c.one('slice', [dy], { starts: n.attrs.before, ends: s.map((d, i) => d - n.attrs.after[i]) })];
  },
  softmaxGrad: null,
  logSoftmaxGrad: null,
  layerNormGrad: null,
  rmsNormGrad: null,
  embeddingGrad: null,
  attentionGrad: null,
  crossEntropyGrad: null,
  optimizerUpdate: null,
  sumSquares: null,
  clipFactor: null,
  // Inference only: the inference rewrite makes them after tracing; no training graph has them.
  positionSlice: null,
  ropeAt: null,
  cacheWrite: null,
  cachedAttention: null,
};
