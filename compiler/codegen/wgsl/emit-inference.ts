// WGSL for the inference ops (compiler/reference/kernels-inference.ts is the oracle): each reads
// the position from an i32[1] binding, so one shader serves every step of a generation.
// Simple kernels, one thread per output element or per query row: a decode step moves one
// token, and its matmuls against the weights dominate, not these.
import type { Op } from '../../ir/ops.ts';
import type { NodeOf } from '../../ir/types.ts';
import { type EmitContext, type Emitter, grid, type KernelCall } from './emitter.ts';
import { ropeTables, ropeTheta } from './emit-rope.ts';
import { Bindings, entryArgs, f32lit, flatGroup, kernel, Uniforms } from './wgsl-kernel.ts';

const wgSize = (c: EmitContext) => Math.min(64, c.limits.maxWorkgroupSize);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

const positionSlice = (n: NodeOf<'positionSlice'>, c: EmitContext): KernelCall[] => {
  const shape = c.g.values[n.inputs[0]].shape;
  const inner = numel(shape.slice(n.attrs.axis + 1));
  const total = numel(c.g.values[n.outputs[0]].shape);
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false);
  const pos = b.value(n.inputs[1], false, 'i32');
  const y = b.value(n.outputs[0], true);
  const wg = wgSize(c);
  const u = new Uniforms().u32('n', total).u32('size', n.attrs.size).u32('inner', inner).u32('len', shape[n.attrs.axis]);
  const body = `@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  let idx = wg * ${wg}u + lid;
  if (idx >= u.n) { return; }
  let i = idx % u.inner;
  let r = (idx / u.inner) % u.size;
  let o = idx / (u.inner * u.size);
  let row = min(u32(max(${pos}[0], 0)) + r, u.len - 1u);
  ${y}[idx] = ${x}[(o * u.len + row) * u.inner + i];
}`;
  return [kernel(`positionSlice|wg${wg}`, b, u, body, grid(total, wg, c.limits))];
};

// One thread per (row, pair): theta as in emit-rope.ts (split frequencies, Cody-Waite reduction).
const ropeAt = (n: NodeOf<'ropeAt'>, c: EmitContext): KernelCall[] => {
  const shape = c.g.values[n.inputs[0]].shape;
  const d = shape[shape.length - 1];
  const half = d / 2;
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false);
  const pos = b.value(n.inputs[1], false, 'i32');
  const y = b.value(n.outputs[0], true);
  const rows = numel(shape) / d;
  const wg = wgSize(c);
  const u = new Uniforms().u32('n', rows * half).u32('half', half).u32('t', shape[shape.length - 2]);
  const body = `${ropeTables(n.attrs.base, d)}

@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  let idx = wg * ${wg}u + lid;
  if (idx >= u.n) { return; }
  let i = idx % u.half;
  let row = idx / u.half;
  let p = f32(u32(max(${pos}[0], 0)) + row % u.t);
  ${ropeTheta('p', 'fHead[i]', 'fTail[i]', n.attrs.inverse, '  ')}
  let cs = cos(theta);
  let sn = sin(theta);
  let at = row * 2u * u.half + i;
  let x1 = ${x}[at];
  let x2 = ${x}[at + u.half];
  ${y}[at] = x1 * cs - x2 * sn;
  ${y}[at + u.half] = x1 * sn + x2 * cs;
}`;
  const key = `ropeAt|h${half}|base${n.attrs.base}|${n.attrs.inverse ? 'inv' : 'fwd'}|wg${wg}`;
  return [kernel(key, b, u, body, grid(rows * half, wg, c.limits))];
};

// In place: the output shares the cache's storage (passes/lifetimes.ts), so it is bound once.
const cacheWrite = (n: NodeOf<'cacheWrite'>, c: EmitContext): KernelCall[] => {
  const cs = c.g.values[n.inputs[0]].shape;
  const xs = c.g.values[n.inputs[1]].shape;
  const d = cs[cs.length - 1];
  const b = new Bindings(c);
  b.value(n.inputs[0], false);
  const cache = b.value(n.outputs[0], true);
  const x = b.value(n.inputs[1], false);
  const pos = b.value(n.inputs[2], false, 'i32');
  const total = numel(xs);
  const wg = wgSize(c);
  const u = new Uniforms().u32('n', total).u32('rows', xs[xs.length - 2]).u32('d', d).u32('maxT', cs[cs.length - 2]);
  const body = `@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  let idx = wg * ${wg}u + lid;
  if (idx >= u.n) { return; }
  let col = idx % u.d;
  let r = (idx / u.d) % u.rows;
  let bh = idx / (u.d * u.rows);
  let at = u32(max(${pos}[0], 0)) + r;
  if (at >= u.maxT) { return; }
  ${cache}[(bh * u.maxT + at) * u.d + col] = ${x}[idx];
}`;
  return [kernel(`cacheWrite|wg${wg}`, b, u, body, grid(total, wg, c.limits))];
};

// One thread per query row, an online softmax over cache rows 0..pos+t with the head dim's
// accumulators in registers (Dh is baked in).
const cachedAttention = (n: NodeOf<'cachedAttention'>, c: EmitContext): KernelCall[] => {
  const qs = c.g.values[n.inputs[0]].shape;
  const ks = c.g.values[n.inputs[1]].shape;
  const d = qs[qs.length - 1];
  const rowsPer = qs[qs.length - 2];
  const b = new Bindings(c);
  const q = b.value(n.inputs[0], false);
  const k = b.value(n.inputs[1], false);
  const v = b.value(n.inputs[2], false);
  const pos = b.value(n.inputs[3], false, 'i32');
  const y = b.value(n.outputs[0], true);
  const rows = numel(qs) / d;
  const wg = wgSize(c);
  const u = new Uniforms().u32('rows', rows).u32('n', rowsPer).u32('maxT', ks[ks.length - 2]).f32('scale', n.attrs.scale);
  const body = `@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  let idx = wg * ${wg}u + lid;
  if (idx >= u.rows) { return; }
  let bh = idx / u.n;
  let last = min(u32(max(${pos}[0], 0)) + idx % u.n, u.maxT - 1u);
  let qo = idx * ${d}u;
  var acc: array<f32, ${d}>;
  var m = 0.0;
  var l = 0.0;
  for (var j = 0u; j <= last; j++) {
    let ko = (bh * u.maxT + j) * ${d}u;
    var dot = 0.0;
    for (var c = 0u; c < ${d}u; c++) { dot += ${q}[qo + c] * ${k}[ko + c]; }
    let s = dot * u.scale;
    // The first row sets the running max, so no exp(-inf) is ever taken.
    let mNew = select(max(m, s), s, j == 0u);
    let corr = select(exp(m - mNew), 0.0, j == 0u);
    let e = exp(s - mNew);
    l = l * corr + e;
    for (var c = 0u; c < ${d}u; c++) { acc[c] = acc[c] * corr + e * ${v}[ko + c]; }
    m = mNew;
  }
  for (var c = 0u; c < ${d}u; c++) { ${y}[qo + c] = acc[c] / l; }
}`;
  return [kernel(`cachedAttention|d${d}|wg${wg}`, b, u, body, grid(rows, wg, c.limits))];
};

export const inferenceEmitters = { positionSlice, ropeAt, cacheWrite, cachedAttention } satisfies {
  readonly [O in Extract<Op, 'positionSlice' | 'ropeAt' | 'cacheWrite' | 'cachedAttention'>]: Emitter<O>;
};
