// The fused LM head and loss (ops.ts linearCrossEntropy, passes/fuse-loss.ts): the vocabulary is
// visited `chunk` columns at a time, each logits chunk computed into one f32 workspace of
// [tokens, chunk] (scratch), never the whole [tokens, V] logits.
//   forward, per chunk: logits chunk = h W[:, chunk]; then per token an online log-sum-exp merges
//     the chunk's max and sum into running (max, sum, target logit) statistics (scratch); the
//     last chunk writes lse and the loss, lse - logit[target].
//   backward, per chunk: the logits chunk again; g = (exp(logits - lse) - onehot) * dloss in place;
//     dh += g W[:, chunk]^T (f32, straight into dh when it is f32, else into an f32 scratch copied
//     out at the end); dW[:, chunk] = h^T g, complete at once since every token is in the chunk.
// W is [D, V], or [V, D] when transW (a head tied to the embedding); all math is f32, whatever the
// storage (f16-storage.ts converts loads and stores). The matmuls here take any element strides
// (uniforms), since the head's operands are read transposed and in column ranges.
import { numel } from '../../ir/shape.ts';
import type { Graph, NodeOf } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { grid, type EmitContext, type Emitter, type KernelCall, type ScratchRule } from './emitter.ts';
import { rowKernel } from './row-kernel.ts';
import { Bindings, elemOf, kernel, Uniforms } from './wgsl-kernel.ts';

/**
 * Invocations per workgroup along x and y, and outputs per invocation along each (interleaved):
 * 8 x 8 outputs take 16 storage loads per 64 FMAs, where loads bound lavapipe (emit-matmul.ts).
 */
const [WG, T] = [8, 8];

/** An operand of a strided matmul: element (i, j) at off + i * rs + j * cs. */
interface Strided {
  readonly bind: (b: Bindings) => string;
  readonly off: number;
  readonly rs: number;
  readonly cs: number;
}

/** O[m, n] = A[m, k] B[k, n]; `accumulate` adds to O unless `first` (then stores). */
function stridedMatmul(c: EmitContext, m: number, n: number, k: number, A: Strided, B: Strided, O: Strided, accumulate: boolean, first: boolean): KernelCall {
  const b = new Bindings(c);
  const [a, bb, o] = [A.bind(b), B.bind(b), O.bind(b)];
  const tilesN = Math.ceil(n / (WG * T));
  const tiles = tilesN * Math.ceil(m / (WG * T));
  const u = new Uniforms().u32('m', m).u32('n', n).u32('k', k).u32('tilesN', tilesN).u32('tiles', tiles).u32('first', first ? 1 : 0);
  for (const [p, s] of [['a', A], ['b', B], ['o', O]] as const) u.u32(`${p}Off`, s.off).u32(`${p}Rs`, s.rs).u32(`${p}Cs`, s.cs);
  const r = Array.from({ length: T }, (_, i) => i);
  const finish = accumulate
    ? `fn finish(i: u32, v: f32) { if (u.first == 1u) { ${o}[i] = v; } else { ${o}[i] = ${o}[i] + v; } }`
    : `fn finish(i: u32, v: f32) { ${o}[i] = v; }`;
  const code = `${finish}

@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= u.tiles) { return; }
  let row0 = (tile / u.tilesN) * ${WG * T}u + lid.y;
  let col0 = (tile % u.tilesN) * ${WG * T}u + lid.x;
  // Rows and columns past the edge read a clamped (valid) element and are never stored.
${r.map((i) => `  let pa${i} = u.aOff + min(row0 + ${i * WG}u, u.m - 1u) * u.aRs;`).join('\n')}
${r.map((j) => `  let pb${j} = u.bOff + min(col0 + ${j * WG}u, u.n - 1u) * u.bCs;`).join('\n')}
${r.flatMap((i) => r.map((j) => `  var acc${i}_${j} = 0.0;`)).join('\n')}
  for (var l = 0u; l < u.k; l++) {
${r.map((i) => `    let va${i} = ${a}[pa${i} + l * u.aCs];`).join('\n')}
${r.map((j) => `    let vb${j} = ${bb}[pb${j} + l * u.bRs];`).join('\n')}
${r.flatMap((i) => r.map((j) => `    acc${i}_${j} = fma(va${i}, vb${j}, acc${i}_${j});`)).join('\n')}
  }
  var out: array<f32, ${T * T}>;
${r.flatMap((i) => r.map((j) => `  out[${i * T + j}] = acc${i}_${j};`)).join('\n')}
  for (var i = 0u; i < ${T}u; i++) {
    let row = row0 + i * ${WG}u;
    if (row >= u.m) { break; }
    for (var j = 0u; j < ${T}u; j++) {
      let col = col0 + j * ${WG}u;
      if (col < u.n) { finish(u.oOff + row * u.oRs + col * u.oCs, out[i * ${T}u + j]); }
    }
  }
}`;
  return kernel(`linearCE.mm.${accumulate ? 'acc' : 'store'}.${WG}x${T}`, b, u, code, grid(tiles, 1, c.limits));
}

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

const value = (v: number, write: boolean) => (b: Bindings) => b.value(v, write);
const scratch = (ref: BufferRef, write: boolean) => (b: Bindings) => b.buffer(ref, write);

/** ws = h W[:, v0 .. v0 + cols) as a [tokens, cols] matrix. */
function logitsChunk(c: EmitContext, head: Head, transW: boolean, ws: BufferRef, v0: number, cols: number): KernelCall {
  const { tokens, d, v } = head;
  const W: Strided = transW ? { bind: value(head.w, false), off: v0 * d, rs: 1, cs: d } : { bind: value(head.w, false), off: v0, rs: v, cs: 1 };
  return stridedMatmul(c, tokens, cols, d, { bind: value(head.h, false), off: 0, rs: d, cs: 1 }, W, { bind: scratch(ws, true), off: 0, rs: cols, cs: 1 }, false, true);
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
    return [logitsChunk(c, head, n.attrs.transW, ws, v0, cols), merge];
  });
};

const linearCrossEntropyGrad: Emitter<'linearCrossEntropyGrad'> = (n, c) => {
  checkOperands(n, c);
  const head = headOf(c.g, n);
  const { tokens, d, v } = head;
  const [lse, dloss] = n.inputs.slice(3);
  const [dh, dw] = n.outputs;
  if (tokens === 0) return [];
  const ws = c.scratch(0);
  // dh accumulates over chunks: in f32, in dh itself when it is f32.
  const inPlace = c.g.values[dh].dtype === 'f32';
  const acc: Strided = { bind: inPlace ? value(dh, true) : scratch(c.scratch(1), true), off: 0, rs: d, cs: 1 };
  const calls = chunksOf(v, n.attrs.chunk).flatMap(({ v0, cols }) => {
    const b = new Bindings(c);
    const [x, ids, l, dl] = [b.buffer(ws, true), b.value(head.ids, false, 'i32'), b.value(lse, false), b.value(dloss, false)];
    const u = new Uniforms().u32('v0', v0).u32('vocab', v);
    const grad = rowKernel(c, 'linearCE.grad', b, u, { rows: tokens, n: cols }, (loop) => `${targetOf(ids)}
let g = select(nanF32(), ${dl}[row], valid);
let lse = ${l}[row];
${loop} { ${x}[base + j] = (exp(${x}[base + j] - lse) - select(0.0, 1.0, u.v0 + j == tj)) * g; }`);
    const G: Strided = { bind: scratch(ws, false), off: 0, rs: cols, cs: 1 };
    // W(dd, v0 + j) read as the [cols, d] matrix (j, dd).
    const Wt: Strided = n.attrs.transW ? { bind: value(head.w, false), off: v0 * d, rs: d, cs: 1 } : { bind: value(head.w, false), off: v0, rs: 1, cs: v };
    const dH = stridedMatmul(c, tokens, d, cols, G, Wt, acc, true, v0 === 0);
    const h = value(head.h, false);
    const dW = n.attrs.transW
      ? stridedMatmul(c, cols, d, tokens, { ...G, rs: 1, cs: cols }, { bind: h, off: 0, rs: d, cs: 1 }, { bind: value(dw, true), off: v0 * d, rs: d, cs: 1 }, false, true)
      : stridedMatmul(c, d, cols, tokens, { bind: h, off: 0, rs: 1, cs: d }, G, { bind: value(dw, true), off: v0, rs: v, cs: 1 }, false, true);
    return [logitsChunk(c, head, n.attrs.transW, ws, v0, cols), grad, dH, dW];
  });
  if (inPlace) return calls;
  const b = new Bindings(c);
  const [from, to] = [b.buffer(c.scratch(1), false), b.value(dh, true)];
  return [...calls, rowKernel(c, 'linearCE.dh', b, new Uniforms(), { rows: tokens, n: d }, (loop) => `${loop} { ${to}[base + j] = ${from}[base + j]; }`)];
};

export const linearCrossEntropyEmitters = { linearCrossEntropy, linearCrossEntropyGrad } satisfies {
  readonly [O in 'linearCrossEntropy' | 'linearCrossEntropyGrad']: Emitter<O>;
};

/** The [tokens, chunk] f32 logits workspace; forward: (max, sum, target logit) per token; backward: an f32 dh unless dh is f32. */
export const linearCrossEntropyScratch: { readonly [O in 'linearCrossEntropy' | 'linearCrossEntropyGrad']: ScratchRule<O> } = {
  linearCrossEntropy: (n, g) => {
    const { tokens } = headOf(g, n);
    return [Math.max(1, tokens * n.attrs.chunk) * 4, Math.max(1, tokens) * 12];
  },
  linearCrossEntropyGrad: (n, g) => {
    const { tokens, d } = headOf(g, n);
    const ws = Math.max(1, tokens * n.attrs.chunk) * 4;
    return g.values[n.outputs[0]].dtype === 'f32' ? [ws] : [ws, Math.max(1, tokens * d) * 4];
  },
};
