// The fused LM head and loss (ops.ts linearCrossEntropy, passes/fuse-loss.ts): the vocabulary is
// visited `chunk` columns at a time, each logits chunk computed into one f32 workspace of
// [tokens, chunk] (scratch), never the whole [tokens, V] logits.
//   forward, per chunk: logits chunk = h W[:, chunk]; then per token an online log-sum-exp merges
//     the chunk's max and sum into running (max, sum, target logit) statistics (scratch); the
//     last chunk writes lse and the loss, lse - logit[target].
//   backward, per chunk: the logits chunk again; g = (exp(logits - lse) - onehot) * dloss in place;
//     dh += g W[:, chunk]^T (f32, straight into dh when it is f32, else into an f32 scratch copied
//     out at the end); dW[:, chunk] = h^T g, complete at once since every token is in the chunk.
//     Under LOMO an untied head's update takes each chunk's dW as it is made (fused.ts lossUpdate).
// W is [D, V], or [V, D] when transW (a head tied to the embedding); all math is f32, whatever the
// storage (f16-storage.ts converts loads and stores). The matmuls are the ordinary matmul's kernel
// over row and column ranges (matmul-stored.ts), reading B as vec4s where the layout allows: the
// untied forward and dW where the chunk's columns are a multiple of 4 (lossChunk makes them so),
// the tied dh and dW where D is; the untied dh reads B across its rows, as the unfused head's
// matmul with transB does. The tied forward would too, twice (forward and recompute) where the
// unfused head reads once: instead, where D <= tokens, each chunk of W is first copied transposed
// into an f32 [D, chunk] scratch (no larger than the workspace), then read as vec4s.
import { numel } from '../../ir/shape.ts';
import type { Graph, NodeOf } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { grid, type EmitContext, type Emitter, type KernelCall, type ScratchRule } from './emitter.ts';
import type { MatmulEpilogue } from './emit-matmul.ts';
import { storedMatmul, type StoredMatrix } from './matmul-stored.ts';
import { rowKernel } from './row-kernel.ts';
import { Bindings, elemOf, entryArgs, flatGroup, kernel, Uniforms } from './wgsl-kernel.ts';

/** The head's sizes: tokens (rows of h), width d, vocabulary v. */
function headOf(g: Graph, n: NodeOf<'linearCrossEntropy' | 'linearCrossEntropyGrad'>) {
  const [h, w, ids] = n.inputs;
  const d = g.values[h].shape.at(-1)!;
  const v = g.values[w].shape[n.attrs.transW ? 0 : 1];
  return { h, w, ids, tokens: numel(g.values[ids].shape), d, v };
}

type Head = ReturnType<typeof headOf>;

/** Each chunk's first column and width. */
const chunksOf = (v: number, chunk: number): { v0: number; cols: number }[] =>
  Array.from({ length: Math.ceil(v / chunk) }, (_, i) => ({ v0: i * chunk, cols: Math.min(chunk, v - i * chunk) }));

/** Value `v` as a stored matrix starting at element `at`, rows `ld` apart. */
const valueAt = (c: EmitContext, v: number, at: number, ld: number): StoredMatrix => ({ value: v, ref: c.slot(v).ref, dtype: c.g.values[v].dtype, at, ld });
/** A scratch range as a stored f32 matrix. */
const scratchAt = (ref: BufferRef, ld: number): StoredMatrix => ({ ref, dtype: 'f32', at: 0, ld });

/** W's chunk from column v0 as a stored matrix: columns of [D, V], or, when transW, rows of [V, D]. */
function wChunk(c: EmitContext, head: Head, transW: boolean, v0: number): StoredMatrix {
  return transW ? valueAt(c, head.w, v0 * head.d, head.d) : valueAt(c, head.w, v0, head.v);
}

/** Whether a tied head's chunks are copied transposed before the logits matmul (see the top). */
const transposeFirst = (transW: boolean, head: { d: number; tokens: number }): boolean => transW && head.d <= head.tokens;

/** wt[dd, j] = W[v0 + j, dd]: a [V, D] head's chunk as a [d, cols] f32 matrix. */
function transposeChunk(c: EmitContext, head: Head, wt: BufferRef, v0: number, cols: number): KernelCall {
  const b = new Bindings(c);
  const [w, t] = [b.value(head.w, false), b.buffer(wt, true)];
  const u = new Uniforms().u32('n', head.d * cols).u32('cols', cols).u32('d', head.d).u32('v0', v0);
  const code = `@compute @workgroup_size(256)
fn main(${entryArgs}) {
  ${flatGroup}
  let i = wg * 256u + lid;
  if (i >= u.n) { return; }
  ${t}[i] = ${w}[(u.v0 + i % u.cols) * u.d + i / u.cols];
}`;
  return kernel('linearCE.transpose', b, u, code, grid(head.d * cols, 256, c.limits));
}

/** ws = h W[:, v0 .. v0 + cols) as a [tokens, cols] matrix; `wt`: the transposed copy's scratch, where there is one. */
function logitsChunk(c: EmitContext, head: Head, transW: boolean, ws: BufferRef, v0: number, cols: number, wt?: BufferRef): KernelCall[] {
  const h = { ...valueAt(c, head.h, 0, head.d), trans: false };
  const out = { ...scratchAt(ws, cols), accumulate: false, first: true };
  if (wt) return [transposeChunk(c, head, wt, v0, cols), storedMatmul(c, head.tokens, head.d, cols, h, { ...scratchAt(wt, cols), trans: false }, out)];
  return [storedMatmul(c, head.tokens, head.d, cols, h, { ...wChunk(c, head, transW, v0), trans: transW }, out)];
}

/** `tg`, `valid` (the target is in [0, V)) and `tj` (the target, 0 when invalid) of token `row`. */
const targetOf = (ids: string) => `let tg = ${ids}[row];\nlet valid = tg >= 0 && tg < i32(u.vocab);\nlet tj = select(0u, u32(tg), valid);`;

const checkOperands = (n: NodeOf<'linearCrossEntropy' | 'linearCrossEntropyGrad'>, c: EmitContext) => {
  n.inputs.forEach((v, i) => elemOf(n, c, v, i === 2 ? ['i32'] : ['f32']));
  n.outputs.forEach((v) => elemOf(n, c, v));
};

const linearCrossEntropy: Emitter<'linearCrossEntropy'> = (n, c) => {
  checkOperands(n, c);
  const head = headOf(c.g, n);
  if (head.tokens === 0) return [];
  const [ws, st] = [c.scratch(0), c.scratch(1)];
  const wt = transposeFirst(n.attrs.transW, head) ? c.scratch(2) : undefined;
  return chunksOf(head.v, n.attrs.chunk).flatMap(({ v0, cols }) => {
    const b = new Bindings(c);
    const [x, s, ids, loss, lse] = [b.buffer(ws, false), b.buffer(st, true), b.value(head.ids, false, 'i32'), b.value(n.outputs[0], true), b.value(n.outputs[1], true)];
    const u = new Uniforms().u32('v0', v0).u32('vocab', head.v).u32('first', v0 === 0 ? 1 : 0).u32('last', v0 + cols >= head.v ? 1 : 0);
    // Running (max, sum of exp(x - max), target logit) per token, merged with this chunk's.
    const merge = rowKernel(c, 'linearCE.lse', b, u, { rows: head.tokens, n: cols }, (loop, sum) => `var m = negInfF32();
${loop} { m = maxNan(m, ${x}[base + j]); }
m = wgMax(m, t);
var s = 0.0;
${sum(['s'], `s += exp(${x}[base + j] - m);`)}
s = wgSum(s, t);
${targetOf(ids)}
if (t == 0u) {
  var mo = m;
  var so = s;
  var tl = 0.0;
  if (u.first == 0u) {
    let m0 = ${s}[3u * row];
    mo = maxNan(m0, m);
    so = ${s}[3u * row + 1u] * exp(m0 - mo) + s * exp(m - mo);
    tl = ${s}[3u * row + 2u];
  }
  if (tj >= u.v0 && tj < u.v0 + u.n) { tl = ${x}[base + tj - u.v0]; }
  ${s}[3u * row] = mo;
  ${s}[3u * row + 1u] = so;
  ${s}[3u * row + 2u] = tl;
  if (u.last == 1u) {
    let l = mo + log(so);
    ${lse}[row] = l;
    ${loss}[row] = select(nanF32(), l - tl, valid);
  }
}`);
    return [...logitsChunk(c, head, n.attrs.transW, ws, v0, cols, wt), merge];
  });
};

/**
 * The backward's dispatches. `dwUpdate` (a LOMO update's epilogue, fused.ts): each chunk's dW
 * matmul hands its elements, complete, to it instead of storing dW (which then has no storage).
 */
export function linearCrossEntropyGradCalls(n: NodeOf<'linearCrossEntropyGrad'>, c: EmitContext, dwUpdate?: MatmulEpilogue): KernelCall[] {
  checkOperands(n, c);
  const head = headOf(c.g, n);
  const { tokens, d, v } = head;
  const [lse, dloss] = n.inputs.slice(3);
  const [dh, dw] = n.outputs;
  if (tokens === 0) return [];
  const ws = c.scratch(0);
  // dh accumulates over chunks: in f32, in dh itself when it is f32.
  const inPlace = c.g.values[dh].dtype === 'f32';
  const acc = inPlace ? valueAt(c, dh, 0, d) : scratchAt(c.scratch(1), d);
  const wt = transposeFirst(n.attrs.transW, head) ? c.scratch(inPlace ? 1 : 2) : undefined;
  const calls = chunksOf(v, n.attrs.chunk).flatMap(({ v0, cols }) => {
    const b = new Bindings(c);
    const [x, ids, l, dl] = [b.buffer(ws, true), b.value(head.ids, false, 'i32'), b.value(lse, false), b.value(dloss, false)];
    const u = new Uniforms().u32('v0', v0).u32('vocab', v);
    const grad = rowKernel(c, 'linearCE.grad', b, u, { rows: tokens, n: cols }, (loop) => `${targetOf(ids)}
let g = select(nanF32(), ${dl}[row], valid);
let lse = ${l}[row];
${loop} { ${x}[base + j] = (exp(${x}[base + j] - lse) - select(0.0, 1.0, u.v0 + j == tj)) * g; }`);
    const G = scratchAt(ws, cols);
    const transW = n.attrs.transW;
    // dh += G [tokens, cols] W(:, chunk)^T: the chunk as [cols, d], W's own rows when transW.
    const dH = storedMatmul(c, tokens, cols, d, { ...G, trans: false }, { ...wChunk(c, head, transW, v0), trans: !transW }, { ...acc, accumulate: true, first: v0 === 0 });
    const h = valueAt(c, head.h, 0, d);
    // dW's chunk, written once: [cols, d] rows of [V, D] = G^T h, or [d, cols] columns of [D, V] = h^T G.
    const [oAt, ldo] = transW ? [v0 * d, d] : [v0, v];
    const out = dwUpdate ? { ...dwUpdate, oAt, ldo } : { ...valueAt(c, dw, oAt, ldo), accumulate: false, first: true };
    const dW = transW
      ? storedMatmul(c, cols, tokens, d, { ...G, trans: true }, { ...h, trans: false }, out)
      : storedMatmul(c, d, tokens, cols, { ...h, trans: true }, { ...G, trans: false }, out);
    return [...logitsChunk(c, head, n.attrs.transW, ws, v0, cols, wt), grad, dH, dW];
  });
  if (inPlace) return calls;
  const b = new Bindings(c);
  const [from, to] = [b.buffer(c.scratch(1), false), b.value(dh, true)];
  return [...calls, rowKernel(c, 'linearCE.dh', b, new Uniforms(), { rows: tokens, n: d }, (loop) => `${loop} { ${to}[base + j] = ${from}[base + j]; }`)];
}

const linearCrossEntropyGrad: Emitter<'linearCrossEntropyGrad'> = (n, c) => linearCrossEntropyGradCalls(n, c);

export const linearCrossEntropyEmitters = { linearCrossEntropy, linearCrossEntropyGrad } satisfies {
  readonly [O in 'linearCrossEntropy' | 'linearCrossEntropyGrad']: Emitter<O>;
};

/**
 * The [tokens, chunk] f32 logits workspace; forward: (max, sum, target logit) per token; backward:
 * an f32 dh unless dh is f32; last, a tied head's transposed [d, chunk] f32 chunk where it has one.
 */
export const linearCrossEntropyScratch: { readonly [O in 'linearCrossEntropy' | 'linearCrossEntropyGrad']: ScratchRule<O> } = {
  linearCrossEntropy: (n, g) => {
    const head = headOf(g, n);
    const wt = transposeFirst(n.attrs.transW, head) ? [Math.max(1, head.d * n.attrs.chunk) * 4] : [];
    return [Math.max(1, head.tokens * n.attrs.chunk) * 4, Math.max(1, head.tokens) * 12, ...wt];
  },
  linearCrossEntropyGrad: (n, g) => {
    const head = headOf(g, n);
    const ws = Math.max(1, head.tokens * n.attrs.chunk) * 4;
    const wt = transposeFirst(n.attrs.transW, head) ? [Math.max(1, head.d * n.attrs.chunk) * 4] : [];
    return [ws, ...(g.values[n.outputs[0]].dtype === 'f32' ? [] : [Math.max(1, head.tokens * head.d) * 4]), ...wt];
  },
};
