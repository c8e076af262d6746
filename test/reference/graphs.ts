// Test graphs built by hand with GraphBuilder: one that uses every op, and a tiny llama-like
// forward pass of the size the models will have.
import { builtinOptimizers } from '../../compiler/optimizers/table.ts';
import { updateAttrs, updateInputs, type UpdateFlags } from '../../compiler/optimizers/update-layout.ts';
import { GraphBuilder } from '../../compiler/ir/builder.ts';
import { elementwiseDef, elementwiseOpNames } from '../../compiler/ir/elementwise-ops.ts';
import type { Op, OpAttrs } from '../../compiler/ir/ops.ts';
import type { DType, Graph, Init, Loc, Shape, ValueId } from '../../compiler/ir/types.ts';

/** Where every test node claims to come from, so error messages have a fixed text. */
export const loc: Loc = { file: 'models/test.ts', line: 3, col: 7 };

/** A builder with short calls for graph-writing tests. */
export class TestGraph {
  readonly b: GraphBuilder;
  constructor(name: string) {
    this.b = new GraphBuilder(name);
  }
  input(name: string, shape: Shape, dtype: DType = 'f32'): ValueId {
    const value = this.b.value(shape, dtype, 'input', loc, name);
    this.b.inputs.push({ name, value, loc });
    return value;
  }
  param(name: string, shape: Shape, init: Init): ValueId {
    const value = this.b.value(shape, 'f32', 'param', loc, name);
    this.b.params.push({ name, value, init, loc });
    return value;
  }
  op<O extends Op>(op: O, inputs: readonly ValueId[], attrs: OpAttrs[O]): ValueId[] {
    return this.b.node(op, inputs, attrs, loc, 'forward');
  }
  one<O extends Op>(op: O, inputs: readonly ValueId[], attrs: OpAttrs[O]): ValueId {
    return this.op(op, inputs, attrs)[0];
  }
  finish(loss: ValueId): Graph {
    const { b } = this;
    return { name: b.name, values: b.values, nodes: b.nodes, inputs: b.inputs, params: b.params, loss };
  }
}

const none = {};
const all = (rank: number) => ({ axes: Array.from({ length: rank }, (_, i) => i), keepDims: false });

/**
 * Every op at least once, backward ops fed with forward values and a random `dy`. Inputs: x, dy
 * [2, 3, 8] f32, ids [2, 3] i32 and pos [1] i32 (0..3, for the inference ops); params emb [11, 8],
 * gamma, beta [8], w [8, 8].
 */
export function everyOpGraph(): Graph {
  const g = new TestGraph('every-op');
  const [B, T, D, H, V] = [2, 3, 8, 2, 11];
  const x = g.input('x', [B, T, D]);
  const dy = g.input('dy', [B, T, D]);
  const ids = g.input('ids', [B, T], 'i32');
  const pos = g.input('pos', [1], 'i32');
  const emb = g.param('emb', [V, D], { kind: 'normal', std: 1 });
  const gamma = g.param('gamma', [D], { kind: 'normal', std: 1 });
  const beta = g.param('beta', [D], { kind: 'normal', std: 1 });
  const w = g.param('w', [D, D], { kind: 'fanIn', gain: 1 });

  const h = g.one('add', [g.one('embedding', [emb, ids], none), x], none);
  const ln = g.one('layerNorm', [h, gamma, beta], { eps: 1e-5 });
  const rn = g.one('rmsNorm', [ln, gamma], { eps: 1e-6 });
  const heads = (v: ValueId) => g.one('transpose', [g.one('reshape', [v], { shape: [B, T, H, D / H] })], { perm: [0, 2, 1, 3] });
  const q = g.one('rope', [heads(g.one('matmul', [rn, w], { transA: false, transB: false }))], { base: 10000, inverse: false });
  const k = g.one('rope', [heads(g.one('matmul', [rn, w], { transA: false, transB: true }))], { base: 10000, inverse: true });
  const v = heads(ln);
  const [att, attLse] = g.op('attention', [q, k, v], { scale: 0.5, causal: true });
  const back = g.one('reshape', [g.one('transpose', [att], { perm: [0, 2, 1, 3] })], { shape: [B, T, D] });

  const ge = g.one('gelu', [back], none);
  const si = g.one('silu', [back], none);
  const re = g.one('relu', [back], none);
  const th = g.one('tanh', [back], none);
  const ex = g.one('exp', [si], none);
  const mix = g.one('sub', [g.one('mul', [ge, th], none), g.one('div', [re, ex], none)], none);
  const roots = g.one('add', [g.one('sqrt', [ex], none), g.one('rsqrt', [ex], none)], none);
  const logs = g.one('log', [g.one('add', [ex, g.one('fill', [], { value: 1, shape: [], dtype: 'f32' })], none)], none);
  const y = g.one('add', [g.one('neg', [mix], none), g.one('scale', [g.one('mul', [roots, logs], none)], { c: 0.5 })], none);

  const mx = g.one('max', [y], { axes: [2], keepDims: false });
  const mean = g.one('mean', [y], { axes: [0, 2], keepDims: true });
  const sm = g.one('softmax', [y], none);
  const ls = g.one('logSoftmax', [y], none);
  const left = g.one('slice', [y], { starts: [0, 0, 0], ends: [B, T, 5] });
  const right = g.one('slice', [y], { starts: [0, 0, 5], ends: [B, T, D] });
  const joined = g.one('concat', [right, left, g.one('broadcastTo', [mean], { shape: [B, T, 2] })], { axis: 2 });
  const padded = g.one('pad', [joined], { before: [0, 0, 1], after: [0, 0, 0] });
  const hidden = g.one('slice', [padded], { starts: [0, 0, 0], ends: [B, T, D] });
  const logits = g.one('matmul', [hidden, emb], { transA: false, transB: true });
  const ce = g.one('crossEntropy', [logits, ids], none);
  // The fused head over the same operands, in 3 chunks of the 11 classes (the last one short).
  const [lce, lse] = g.op('linearCrossEntropy', [hidden, emb, ids], { transW: true, chunk: 4 });

  const grads = [
    g.one('geluGrad', [back, dy], none),
    g.one('siluGrad', [back, dy], none),
    g.one('reluGrad', [back, dy], none),
    g.one('tanhGrad', [th, dy], none),
    g.one('maxGrad', [y, mx, g.one('sum', [dy], { axes: [2], keepDims: false })], { axes: [2], keepDims: false }),
    g.one('softmaxGrad', [sm, dy], none),
    g.one('logSoftmaxGrad', [ls, dy], none),
    ...g.op('layerNormGrad', [h, gamma, dy], { eps: 1e-5 }),
    ...g.op('rmsNormGrad', [ln, gamma, dy], { eps: 1e-6 }),
    g.one('embeddingGrad', [ids, dy], { vocab: V }),
    ...g.op('attentionGrad', [q, k, v, attLse, heads(dy)], { scale: 0.5, causal: true }),
    g.one('crossEntropyGrad', [logits, ids, g.one('sum', [dy], { axes: [2], keepDims: false })], none),
    ...g.op('linearCrossEntropyGrad', [hidden, emb, ids, lse, g.one('sum', [dy], { axes: [2], keepDims: false })], { transW: true, chunk: 4 }),
    ...optimizerOps(g, w, g.one('matmul', [g.one('reshape', [dy], { shape: [B * T, D] }), g.one('reshape', [x], { shape: [B * T, D] })], { transA: true, transB: false })),
    ...inferenceOps(g, emb, q, v, pos),
  ];
  // An elementwise op of the table not used above (none today) joins over positive operands.
  const used = new Set(g.b.nodes.map((n) => n.op));
  for (const op of elementwiseOpNames.filter((o) => !used.has(o))) {
    const def = elementwiseDef(op);
    const attrs = Object.fromEntries((def.consts ?? []).map((c) => [c, 0.5])) as OpAttrs[typeof op];
    grads.push(g.one(op, def.operands === 'unary' ? [ex] : [ex, dy], attrs));
  }
  // Every gradient feeds the loss, so the loss depends on every op. Squares, because many of these
  // gradients sum to exactly zero over a row, and a sum of them would be all rounding error.
  let loss = g.one('add', [g.one('mean', [ce], all(2)), g.one('mean', [lce], all(2))], none);
  for (const d of grads) loss = g.one('add', [loss, g.one('mean', [g.one('mul', [d, d], none)], all(g.b.values[d].shape.length))], none);
  return g.finish(loss);
}

/** The inference ops: a position table's rows, rope at pos, a cache of 2T rows written at pos and attended over. */
function inferenceOps(g: TestGraph, table: ValueId, q: ValueId, v: ValueId, pos: ValueId): ValueId[] {
  const rows = g.one('positionSlice', [table, pos], { axis: 0, size: 2 });
  const qa = g.one('ropeAt', [q, pos], { base: 10000, inverse: false });
  const cache = g.one('cacheWrite', [g.one('concat', [v, v], { axis: 2 }), qa, pos], none);
  return [rows, qa, cache, g.one('cachedAttention', [qa, cache, cache, pos], { scale: 0.5 })];
}

/** The optimizer step's ops on param w with gradient gw: clip-norm factor, SGD (with master copy), AdamW. */
function optimizerOps(g: TestGraph, w: ValueId, gw: ValueId): ValueId[] {
  const scalar = (value: number) => g.one('fill', [], { value, shape: [], dtype: 'f32' });
  const [lr, wd, step] = [scalar(0.1), scalar(0.01), scalar(3)];
  const factor = g.one('clipFactor', [g.one('sumSquares', [gw], none)], { maxNorm: 0.5 });
  const master = g.one('scale', [w], { c: 1 });
  const update = (name: 'sgd' | 'adamw', flags: UpdateFlags, named: Record<string, ValueId>) => {
    const attrs = updateAttrs(builtinOptimizers[name].rule, flags);
    return g.op('optimizerUpdate', updateInputs(attrs, { p: w, g: gw, lr, wd, ...named }), attrs);
  };
  return [
    ...update('sgd', { clipValue: 0.25, scaled: true, master: false }, { scale: factor }),
    ...update('sgd', { clipValue: null, scaled: false, master: true }, { master }),
    ...update('adamw', { clipValue: null, scaled: false, master: false }, { step, m: gw, v: g.one('mul', [gw, gw], none) }),
  ];
}

export interface LlamaSize {
  readonly batch: number;
  readonly seq: number;
  readonly dim: number;
  readonly heads: number;
  readonly hidden: number;
  readonly vocab: number;
  readonly layers: number;
}

/** A llama-like forward pass: RMSNorm, RoPE, causal attention, SwiGLU, tied embeddings, mean cross-entropy. */
export function llamaGraph(s: LlamaSize): Graph {
  const g = new TestGraph('tiny-llama');
  const [B, T, D, H] = [s.batch, s.seq, s.dim, s.heads];
  const tokens = g.input('tokens', [B, T], 'i32');
  const targets = g.input('targets', [B, T], 'i32');
  const emb = g.param('emb', [s.vocab, D], { kind: 'normal', std: 0.02 });
  const mm = (a: ValueId, b: ValueId) => g.one('matmul', [a, b], { transA: false, transB: false });
  const norm = (x: ValueId, name: string) => g.one('rmsNorm', [x, g.param(name, [D], { kind: 'ones' })], { eps: 1e-6 });
  const split = (x: ValueId) => g.one('transpose', [g.one('reshape', [x], { shape: [B, T, H, D / H] })], { perm: [0, 2, 1, 3] });
  let x = g.one('embedding', [emb, tokens], none);
  for (let l = 0; l < s.layers; l++) {
    const p = (name: string, shape: Shape) => g.param(`l${l}.${name}`, shape, { kind: 'fanIn', gain: 1 });
    const a = norm(x, `l${l}.attnNorm`);
    const q = g.one('rope', [split(mm(a, p('wq', [D, D])))], { base: 10000, inverse: false });
    const k = g.one('rope', [split(mm(a, p('wk', [D, D])))], { base: 10000, inverse: false });
    const v = split(mm(a, p('wv', [D, D])));
    const o = g.one('attention', [q, k, v], { scale: 1 / Math.sqrt(D / H), causal: true });
    const merged = g.one('reshape', [g.one('transpose', [o], { perm: [0, 2, 1, 3] })], { shape: [B, T, D] });
    x = g.one('add', [x, mm(merged, p('wo', [D, D]))], none);
    const f = norm(x, `l${l}.ffnNorm`);
    const gate = g.one('silu', [mm(f, p('w1', [D, s.hidden]))], none);
    const up = mm(f, p('w3', [D, s.hidden]));
    x = g.one('add', [x, mm(g.one('mul', [gate, up], none), p('w2', [s.hidden, D]))], none);
  }
  const logits = g.one('matmul', [norm(x, 'finalNorm'), emb], { transA: false, transB: true });
  const ce = g.one('crossEntropy', [logits, targets], none);
  return g.finish(g.one('mean', [ce], all(2)));
}
