// The reduction template behind sum, mean, max and sumSquares. The input is seen as kept axes
// (one output each) and reduced axes, each coalesced. A workgroup is TX outputs x TY lanes: lane
// ty loops over reduced elements ty, ty + TY, ..., then lane 0 of each output combines the TY
// partials from shared memory. Which of TX, TY is wide follows the layout, so neighbouring
// threads read neighbouring floats:
//   reducing the trailing axis (row sums, the loss mean): TX = 1, TY = 32;
//   reducing leading axes (bias gradients, [4096, 768] -> [768]): TX = 32 columns, TY = 1.
// When few workgroups would hold a large reduction, it is split: pass 1 writes each split's
// partial result into a scratch buffer [outputs, splits], pass 2 reduces that over its last axis.
import { CompilerBug } from '../../diagnostics.ts';
import { numel, strides } from '../../ir/shape.ts';
import type { Shape } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import type { EmitContext, KernelCall } from './emitter.ts';
import { grid } from './emitter.ts';
import { enableSubgroups, subgroupArgs, subgroupInit, subgroupReductions } from './subgroup-reduce.ts';
import type { KernelTarget } from './target.ts';
import { Bindings, entryArgs, flatGroup, kernel, pow2At, Uniforms } from './wgsl-kernel.ts';
import type { MatmulEpilogue } from './emit-matmul.ts';

/** Axes of one side (kept or reduced), coalesced: sizes and input strides. */
export interface Axes {
  readonly dims: readonly number[];
  readonly strides: readonly number[];
}

export interface ReducePlan {
  readonly kept: Axes;
  readonly reduced: Axes;
  readonly outputs: number;
  readonly count: number;
  readonly tx: number;
  readonly ty: number;
  /** Workgroups along the outputs. */
  readonly tiles: number;
  /** Parts the reduced range is cut into; 1: one pass, no scratch. */
  readonly splits: number;
  readonly chunk: number;
}

/**
 * Threads per reduction workgroup. On lavapipe, workgroups with barriers past 32 invocations are
 * several times slower (row sums of [4096, 768]: 154 ms with 256 lanes and a tree); see row-kernel.ts.
 */
const maxThreads = 32;
/** Columns per workgroup when reducing leading axes. */
const columnTile = 32;
/** Workgroups along the outputs, at most; each loops over its share of the tiles. */
const maxTileGroups = 1024;
/**
 * Split a reduction when it would run on fewer workgroups than this... On an H100, a sum of
 * [4096, 3072] split over 64 workgroups took 2.6 ms (each lane looping over 6144 elements, bound
 * by latency); on lavapipe each workgroup costs only ~3 us. The partials take at most about
 * 2 * fewGroups * 32 floats (256 KiB) of scratch.
 */
const fewGroups = 1024;
/** ...and every lane would still get at least this many elements per split. */
const minPerLane = 32;

function coalesceAxes(dims: readonly number[], st: readonly number[]): Axes {
  const d: number[] = [];
  const s: number[] = [];
  dims.forEach((n, k) => {
    if (n === 1) return;
    const last = d.length - 1;
    if (last >= 0 && s[last] === st[k] * n) {
      d[last] *= n;
      s[last] = st[k];
    } else {
      d.push(n);
      s.push(st[k]);
    }
  });
  return { dims: d, strides: s };
}

/** How `shape` reduced over `axes` is laid out and tiled: a pure function of the shapes, so the scratch rule and the emitter agree. */
export function planReduce(shape: Shape, axes: readonly number[]): ReducePlan {
  const st = strides(shape);
  const pick = (inAxes: boolean) => shape.map((_, a) => a).filter((a) => axes.includes(a) === inAxes);
  const kept = coalesceAxes(pick(false).map((a) => shape[a]), pick(false).map((a) => st[a]));
  const reduced = coalesceAxes(pick(true).map((a) => shape[a]), pick(true).map((a) => st[a]));
  const outputs = numel(kept.dims);
  const count = numel(reduced.dims);
  const columns = kept.strides.length > 0 && kept.strides[kept.strides.length - 1] === 1;
  let tx: number;
  let ty: number;
  if (columns) {
    tx = Math.min(columnTile, pow2At(outputs));
    ty = Math.min(maxThreads / tx, pow2At(count));
  } else {
    ty = Math.min(maxThreads, pow2At(count));
    tx = Math.min(maxThreads / ty, pow2At(outputs));
  }
  const tiles = Math.ceil(outputs / tx);
  let splits = 1;
  if (tiles < fewGroups) splits = Math.max(1, Math.min(Math.floor(count / (ty * minPerLane)), Math.ceil(fewGroups / tiles)));
  const chunk = Math.ceil(count / splits);
  splits = Math.ceil(count / chunk);
  return { kept, reduced, outputs, count, tx, ty, tiles, splits, chunk };
}

/** Pass 2 of a split plan: the partials [outputs, splits] reduced over their last axis, in one pass. */
export function partialsPlan(outputs: number, splits: number, target: KernelTarget): ReducePlan {
  const p = { ...planReduce([outputs, splits], [1]), splits: 1, chunk: splits };
  if (splits > target.shortPartials) return p;
  // On the cpu target, a thread per output looping over its few (<= 64) partials: no barrier,
  // 32x fewer workgroups (each ~3 us on lavapipe; 128 outputs of 32 partials took ~0.5 ms a call
  // with 32 lanes per output). The gpu target keeps 32 lanes per output, as before that tuning.
  const tx = Math.min(maxThreads, pow2At(outputs));
  return { ...p, tx, ty: 1, tiles: Math.ceil(outputs / tx) };
}

/** Bytes of pass 1's partial results (none when one pass does). */
export const reduceScratchBytes = (p: ReducePlan): readonly number[] => (p.splits > 1 ? [p.outputs * p.splits * 4] : []);

export type ReduceMode = 'sum' | 'max' | 'sumSquares';

const combine = (mode: ReduceMode, acc: string, x: string): string =>
  mode === 'max' ? `select(${acc}, ${x}, ${x} > ${acc} || isNan(${x}))` : `${acc} + ${x}`;

/** WGSL lines setting `name` to the offset of flat index `i` over `axes`, with uniform prefix `p`. */
function offsetCode(axes: Axes, i: string, name: string, p: string, u: Uniforms): string {
  const r = axes.dims.length;
  if (r === 0) return `let ${name} = 0u;`;
  const lines = [`var ${p}rem = ${i};`, `var ${name} = 0u;`];
  for (let k = r - 1; k >= 0; k--) {
    u.u32(`${p}s${k}`, axes.strides[k]);
    if (k > 0) {
      u.u32(`${p}d${k}`, axes.dims[k]);
      lines.push(`${name} += (${p}rem % u.${p}d${k}) * u.${p}s${k};`, `${p}rem = ${p}rem / u.${p}d${k};`);
    } else lines.push(`${name} += ${p}rem * u.${p}s0;`);
  }
  return lines.join('\n    ');
}

/**
 * The first lines of a split reduction's kernel (here and the norms' column sums, emit-norm.ts):
 * lane (tx, ty) of workgroup `wg`, which reduces split `wg / u.<groupsPerSplit>`, the rows
 * [begin, end) of its chunk of `u.<total>`. Uniforms: groups, chunk and the two named.
 */
export function splitFrame(tx: number, groupsPerSplit: string, total: string): string {
  return `${flatGroup}
  if (wg >= u.groups) { return; }
  let tx = lid % ${tx}u;
  let ty = lid / ${tx}u;
  let split = wg / u.${groupsPerSplit};
  let begin = split * u.chunk;
  let end = min(u.${total}, begin + u.chunk);`;
}

export interface ReduceIO {
  readonly input: { readonly value: number } | { readonly ref: BufferRef };
  readonly output: { readonly value: number } | { readonly ref: BufferRef };
  /** A scalar added to the (single) result as it is stored: the clip-norm's running sum (fused `add`). */
  readonly addend?: number;
}

/**
 * One pass of plan `p`: every (output, split) pair's reduction, written to `out[o * splits + split]`.
 * `mode` sumSquares squares each element first; `divisor` divides the final result (the mean's count).
 * Several IOs of the same shape (a norm gradient's dgamma and dbeta partials) share one dispatch,
 * each reduced exactly as alone. `ep` (one IO only) takes each final output instead of storage.
 */
export function reducePass(c: EmitContext, p: ReducePlan, mode: ReduceMode, io: ReduceIO | readonly ReduceIO[], divisor: number, ep?: MatmulEpilogue): KernelCall {
  const ios: readonly ReduceIO[] = 'input' in io ? [io] : io;
  if (ep && (p.splits !== 1 || ios.length !== 1)) throw new CompilerBug('codegen: a reduction epilogue on a pass that writes partials or several outputs');
  const b = new Bindings(c);
  const bind = (x: ReduceIO['input'], write: boolean) => ('value' in x ? b.value(x.value, write) : b.buffer(x.ref, write));
  const xs = ios.map((e) => bind(e.input, false));
  const u = new Uniforms();
  // With an epilogue (a fused update) each finished output goes through `finish` instead of storage.
  const fin = ep?.bind(b, u);
  const ys = fin ? [] : ios.map((e) => bind(e.output, true));
  const addend = ios[0].addend;
  if (ios.some((e) => e.addend !== undefined) && (ios.length !== 1 || fin || p.outputs * p.splits !== 1))
    throw new CompilerBug(`codegen: a running sum added to a reduction of ${p.outputs} outputs in ${p.splits} splits`);
  // Read before the store: the sum may be planned in place over its previous value.
  const prev = addend === undefined ? undefined : b.value(addend, false);
  const plus = prev === undefined ? '' : `${prev}[0] + `;
  const acc = (k: number) => (k ? `acc${k}` : 'acc');
  const red = (k: number) => (k ? `red${k}` : 'red');
  const each = (f: (k: number) => string, sep = '\n      ') => ios.map((_, k) => f(k)).join(sep);
  const store = (k: number, value: string) => (fin ? `finish(o, ${value});` : `${ys[k]}[o * u.splits + split] = ${plus}${value};`);
  // Workgroups loop over tiles past maxTileGroups (each workgroup costs ~3 us on lavapipe).
  const tileGroups = Math.min(p.tiles, maxTileGroups);
  const groups = tileGroups * p.splits;
  u.u32('groups', groups).u32('tileGroups', tileGroups).u32('tiles', p.tiles).u32('outs', p.outputs).u32('count', p.count).u32('chunk', p.chunk).u32('splits', p.splits);
  if (mode !== 'max') u.f32('div', divisor);
  const kOff = offsetCode(p.kept, 'o', 'ko', 'k', u);
  const rOff = offsetCode(p.reduced, 'r', 'ro', 'r', u);
  const { tx, ty } = p;
  const load = (k: number) => (mode === 'sumSquares' ? `let v${k} = ${xs[k]}[ko + ro];\n        ${acc(k)} = ${acc(k)} + v${k} * v${k};` : `${acc(k)} = ${combine(mode, acc(k), `${xs[k]}[ko + ro]`)};`);
  const init = mode === 'max' ? 'negInfF32()' : '0.0';
  // One output per workgroup, stored (not handed to an update epilogue): the subgroup pass.
  if (tx === 1 && ty > 1 && c.target.subgroups === true && ios.length === 1 && !fin)
    return subgroupPass(c, p, mode, { b, u, groups, kOff, rOff, store: (v) => store(0, v), load: load(0), init, tag: prev === undefined ? '' : `|add=${prev}` });
  // One lane per output (ty = 1): no partials to combine, so no shared memory or barrier.
  const body = `${fin ? `${fin.fns}\n` : ''}${ty === 1 ? '' : `${each((k) => `var<workgroup> ${red(k)}: array<f32, ${tx * ty}>;`, '\n')}\n`}
@compute @workgroup_size(${tx * ty})
fn main(${entryArgs}) {
  ${splitFrame(tx, 'tileGroups', 'count')}
  for (var tile = wg % u.tileGroups; tile < u.tiles; tile += u.tileGroups) {
    let o = tile * ${tx}u + tx;
    ${each((k) => `var ${acc(k)} = ${init};`, '\n    ')}
    if (o < u.outs) {
      ${kOff.split('\n').join('\n  ')}
      for (var r = begin + ty; r < end; r += ${ty}u) {
        ${rOff.split('\n').join('\n  ')}
        ${each(load, '\n        ')}
      }
    }
    ${ty === 1 ? '' : `${each((k) => `${red(k)}[lid] = ${acc(k)};`, '\n    ')}
    workgroupBarrier();
    `}if (${ty === 1 ? '' : 'ty == 0u && '}o < u.outs) {
      ${ty === 1 ? '' : `for (var k = 1u; k < ${ty}u; k++) { ${each((k) => `${acc(k)} = ${combine(mode, acc(k), `${red(k)}[tx + k * ${tx}u]`)};`, ' ')} }
      `}${each((k) => store(k, `${acc(k)}${mode === 'max' ? '' : ' / u.div'}`))}
    }${ty === 1 ? '' : `
    workgroupBarrier();`}
  }
}`;
  const key = `reduce:${mode}|k${p.kept.dims.length}r${p.reduced.dims.length}|${tx}x${ty}${ios.length > 1 ? `|x${ios.length}` : ''}${fin ? `|ep:${fin.tag}` : ''}${prev === undefined ? '' : `|add=${prev}`}`;
  return kernel(key, b, u, body, grid(groups * tx * ty, tx * ty, c.limits));
}

/**
 * reducePass for one output per workgroup (tx = 1: row sums, the loss mean, the gpu target's pass
 * 2) with the target's subgroups: the ty lanes' partials combined by wgSum/wgMax of
 * subgroup-reduce.ts rather than by lane 0 alone from shared memory. Plans with several outputs
 * per workgroup (tx > 1) keep the shared-memory pass: their lanes of one output are tx apart, so
 * a subgroup would mix outputs; those reduce fewer than 32 elements per output or none across lanes.
 */
function subgroupPass(c: EmitContext, p: ReducePlan, mode: ReduceMode, k: { b: Bindings; u: Uniforms; groups: number; kOff: string; rOff: string; store: (value: string) => string; load: string; init: string; tag: string }): KernelCall {
  const { ty } = p;
  const { kOff, rOff, store, load, init } = k;
  const body = `${subgroupReductions(ty)}

@compute @workgroup_size(${ty})
fn main(${entryArgs}${subgroupArgs}) {
  ${subgroupInit}
  ${splitFrame(1, 'tileGroups', 'count')}
  for (var o = wg % u.tileGroups; o < u.tiles; o += u.tileGroups) {
    var acc = ${init};
    ${kOff.split('\n').join('\n  ')}
    for (var r = begin + ty; r < end; r += ${ty}u) {
      ${rOff.split('\n').join('\n  ')}
      ${load}
    }
    let all = ${mode === 'max' ? 'wgMax' : 'wgSum'}(acc, lid);
    if (lid == 0u) { ${store(`all${mode === 'max' ? '' : ' / u.div'}`)} }
  }
}`;
  const call = kernel(`reduce:${mode}|k${p.kept.dims.length}r${p.reduced.dims.length}|1x${ty}|sg${k.tag}`, k.b, k.u, body, grid(k.groups * ty, ty, c.limits));
  return { ...call, code: enableSubgroups + call.code };
}
