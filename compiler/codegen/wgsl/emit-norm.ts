// LayerNorm and RMSNorm over the last axis, and their gradients. Like the reference: biased
// variance, two-pass mean then sum of squared deviations. A gradient is two kernels: per row, dx
// and the row's statistics (written to scratch); then dgamma (and dbeta), column sums over all
// rows, tiled like the reductions (reduce-kernel.ts) and split through scratch partials when few
// workgroups would carry many rows.
import type { Op } from '../../ir/ops.ts';
import type { Graph, NodeOf } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import type { EmitContext, Emitter, KernelCall, ScratchRule } from './emitter.ts';
import { grid } from './emitter.ts';
import { partialsPlan, planReduce, type ReducePlan, reducePass, splitFrame } from './reduce-kernel.ts';
import { rowKernel, rowsOf, type RowSum } from './row-kernel.ts';
import { Bindings, entryArgs, floatOnly, kernel, Uniforms } from './wgsl-kernel.ts';

type NormGrad = 'layerNormGrad' | 'rmsNormGrad';

/** mean and rstd of the row of `x` (var `mean`, `rstd`), in every thread. */
const moments = (x: string, sum: RowSum) => `var sm = 0.0;
${sum(['sm'], `sm += ${x}[base + j];`)}
let mean = wgSum(sm, t) / f32(u.n);
var sq = 0.0;
${sum(['sq'], `let d = ${x}[base + j] - mean; sq += d * d;`)}
let rstd = 1.0 / sqrt(wgSum(sq, t) / f32(u.n) + u.eps);`;

/** 1/sqrt(mean(x^2) + eps) of the row (var `rs`). */
const rms = (x: string, sum: RowSum) => `var sq = 0.0;
${sum(['sq'], `let v = ${x}[base + j]; sq += v * v;`)}
let rs = 1.0 / sqrt(wgSum(sq, t) / f32(u.n) + u.eps);`;

const layerNorm = (n: NodeOf<'layerNorm'>, c: EmitContext): KernelCall[] => {
  floatOnly(n, c);
  const b = new Bindings(c);
  const [x, gamma, beta] = n.inputs.map((v) => b.value(v, false));
  const y = b.value(n.outputs[0], true);
  const u = new Uniforms().f32('eps', n.attrs.eps);
  return [rowKernel(c, 'row:layerNorm', b, u, rowsOf(c.g.values[n.inputs[0]].shape), (loop, sum) => `${moments(x, sum)}
${loop} { ${y}[base + j] = (${x}[base + j] - mean) * rstd * ${gamma}[j] + ${beta}[j]; }`)];
};

const rmsNorm = (n: NodeOf<'rmsNorm'>, c: EmitContext): KernelCall[] => {
  floatOnly(n, c);
  const b = new Bindings(c);
  const [x, gamma] = n.inputs.map((v) => b.value(v, false));
  const y = b.value(n.outputs[0], true);
  const u = new Uniforms().f32('eps', n.attrs.eps);
  return [rowKernel(c, 'row:rmsNorm', b, u, rowsOf(c.g.values[n.inputs[0]].shape), (loop, sum) => `${rms(x, sum)}
${loop} { ${y}[base + j] = ${x}[base + j] * rs * ${gamma}[j]; }`)];
};

/** The column sums' layout: [rows, n] reduced over rows. */
const columnPlan = (g: Graph, n: NodeOf<NormGrad>): ReducePlan => {
  const { rows, n: d } = rowsOf(g.values[n.inputs[0]].shape);
  return planReduce([rows, d], [0]);
};

/** Scratch: per-row statistics (layerNorm: mean, rstd; rmsNorm: rs), then the column partials when split. */
const normGradScratch: ScratchRule<NormGrad> = (n, g) => {
  const { rows, n: d } = rowsOf(g.values[n.inputs[0]].shape);
  const stats = n.op === 'layerNormGrad' ? 2 : 1;
  const p = columnPlan(g, n);
  return [...Array(stats).fill(rows * 4), ...(p.splits > 1 ? Array(stats).fill(d * p.splits * 4) : [])];
};

function normGrad(n: NodeOf<NormGrad>, c: EmitContext): KernelCall[] {
  floatOnly(n, c);
  const layer = n.op === 'layerNormGrad';
  const shape = rowsOf(c.g.values[n.inputs[0]].shape);
  const nStats = layer ? 2 : 1;
  const stats = Array.from({ length: nStats }, (_, k) => c.scratch(k));

  // 1. dx per row, and the row statistics.
  const b = new Bindings(c);
  const [x, gamma, dy] = n.inputs.map((v) => b.value(v, false));
  const dx = b.value(n.outputs[0], true);
  const st = stats.map((ref) => b.buffer(ref, true));
  const u = new Uniforms().f32('eps', n.attrs.eps);
  const rowBody = layer
    ? (loop: string, sum: RowSum) => `${moments(x, sum)}
var gs = 0.0;
var gx = 0.0;
${sum(['gs', 'gx'], `let g = ${dy}[base + j] * ${gamma}[j]; gs += g; gx += g * (${x}[base + j] - mean) * rstd;`)}
let gMean = wgSum(gs, t) / f32(u.n);
let gxMean = wgSum(gx, t) / f32(u.n);
${loop} {
  let xhat = (${x}[base + j] - mean) * rstd;
  ${dx}[base + j] = rstd * (${dy}[base + j] * ${gamma}[j] - gMean - xhat * gxMean);
}
if (t == 0u) { ${st[0]}[row] = mean; ${st[1]}[row] = rstd; }`
    : (loop: string, sum: RowSum) => `${rms(x, sum)}
var gx = 0.0;
${sum(['gx'], `gx += ${dy}[base + j] * ${gamma}[j] * ${x}[base + j];`)}
let gxMean = wgSum(gx, t) / f32(u.n);
${loop} { ${dx}[base + j] = rs * ${dy}[base + j] * ${gamma}[j] - rs * rs * rs * ${x}[base + j] * gxMean; }
if (t == 0u) { ${st[0]}[row] = rs; }`;
  const calls = [rowKernel(c, `row:${n.op}`, b, u, shape, rowBody)];

  // 2. Column sums over rows: dgamma (and dbeta), into the outputs or into split partials.
  const p = columnPlan(c.g, n);
  const outs = n.outputs.slice(1);
  const partials: BufferRef[] = p.splits > 1 ? outs.map((_, k) => c.scratch(nStats + k)) : [];
  calls.push(columnSums(c, n, p, stats, partials, shape));
  // 3. When split: each partial [n, splits] summed over its last axis, dgamma and dbeta in one dispatch.
  if (p.splits > 1) {
    const second = partialsPlan(shape.n, p.splits, c.target);
    calls.push(reducePass(c, second, 'sum', outs.map((v, k) => ({ input: { ref: partials[k] }, output: { value: v } })), 1));
  }
  return calls;
}

/** dgamma[j] = sum_r dy * xhat (layerNorm) or dy * x * rs (rmsNorm); dbeta[j] = sum_r dy. */
function columnSums(c: EmitContext, n: NodeOf<NormGrad>, p: ReducePlan, stats: readonly BufferRef[], partials: readonly BufferRef[], shape: { rows: number; n: number }): KernelCall {
  const layer = n.op === 'layerNormGrad';
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false);
  const dy = b.value(n.inputs[2], false);
  const st = stats.map((ref) => b.buffer(ref, false));
  const outs = partials.length ? partials.map((ref) => b.buffer(ref, true)) : n.outputs.slice(1).map((v) => b.value(v, true));
  const u = new Uniforms();
  const groups = p.tiles * p.splits;
  u.u32('groups', groups).u32('tiles', p.tiles).u32('n', shape.n).u32('rows', shape.rows).u32('chunk', p.chunk).u32('splits', p.splits);
  const { tx, ty } = p;
  const sums = layer ? ['a', 'b'] : ['a'];
  // One lane per column (ty = 1): no shared memory or barrier.
  const shared = ty === 1 ? '' : sums.map((s) => `var<workgroup> r${s}: array<f32, ${tx * ty}>;`).join('\n');
  const accumulate = layer
    ? `let d = ${dy}[k];\n      a += d * (${x}[k] - ${st[0]}[r]) * ${st[1]}[r];\n      b += d;`
    : `a += ${dy}[k] * ${x}[k] * ${st[0]}[r];`;
  const body = `${shared}

@compute @workgroup_size(${tx * ty})
fn main(${entryArgs}) {
  ${splitFrame(tx, 'tiles', 'rows')}
  let col = (wg % u.tiles) * ${tx}u + tx;
  ${sums.map((s) => `var ${s} = 0.0;`).join(' ')}
  if (col < u.n) {
    for (var r = begin + ty; r < end; r += ${ty}u) {
      let k = r * u.n + col;
      ${accumulate}
    }
  }
  ${ty === 1 ? '' : `${sums.map((s) => `r${s}[lid] = ${s};`).join(' ')}
  workgroupBarrier();
  `}if (${ty === 1 ? '' : 'ty == 0u && '}col < u.n) {
    ${ty === 1 ? '' : `for (var k = 1u; k < ${ty}u; k++) { ${sums.map((v) => `${v} += r${v}[tx + k * ${tx}u];`).join(' ')} }
    `}${sums.map((v, k) => `${outs[k]}[col * u.splits + split] = ${v};`).join(' ')}
  }
}`;
  return kernel(`cols:${n.op}|${tx}x${ty}`, b, u, body, grid(groups * tx * ty, tx * ty, c.limits));
}

export const normEmitters = {
  layerNorm,
  rmsNorm,
  layerNormGrad: normGrad,
  rmsNormGrad: normGrad,
} satisfies { readonly [O in Extract<Op, 'layerNorm' | 'rmsNorm' | NormGrad>]: Emitter<O> };

export const normScratch: { readonly [O in NormGrad]: ScratchRule<O> } = {
  layerNormGrad: normGradScratch,
  rmsNormGrad: normGradScratch,
};
