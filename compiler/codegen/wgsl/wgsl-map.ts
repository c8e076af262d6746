// One kernel for every op that computes each output element from one element of each operand:
// elementwise math, broadcasting, and the layout ops that only move elements. Each thread loops
// over elements i, i + step, ... (a grid-stride loop), and every operand is walked through a
// coalesced strided index space (wgsl-index.ts).
import { numel } from '../../ir/shape.ts';
import type { Shape, ValueId } from '../../ir/types.ts';
import type { EmitContext, KernelCall, Limits } from './emitter.ts';
import type { KernelTarget } from './target.ts';
import { coalesce, walkCode, type Walk } from './wgsl-index.ts';
import { Bindings, type Elem, entryArgs, flatGroup, kernel, Uniforms } from './wgsl-kernel.ts';

/** Threads per workgroup of map kernels. */
export const mapWorkgroup = 256;
/**
 * At most this many workgroups; past that, threads loop (a grid-stride loop). Measured on
 * lavapipe: each workgroup costs about 3 us, so a [4096, 768] negation took 45-55 ms with a
 * thread per element and 6-8 ms with 16-192 looping workgroups. 256 x 256 threads still fill
 * a discrete GPU's memory pipes.
 */
export const mapMaxGroups = 256;
/**
 * ...and at least the target's mapMinPerThread elements per thread (8 on cpu, 1 on gpu). On lavapipe the ~3 us per workgroup dominated
 * small maps: a [1024, 128] add or transpose took 0.7-1.1 ms on 256 workgroups (2 elements a
 * thread; the transpose's index divisions run once per thread, not per element), 0.26-0.5 ms on
 * 64. On a discrete GPU such a map is launch-bound either way.
 */

/** Threads per workgroup, workgroups and threads in all of a grid-stride map over `total` elements. */
export function mapGrid(total: number, limits: Limits, target: KernelTarget): { wg: number; groups: number; threads: number } {
  const wg = Math.min(mapWorkgroup, limits.maxWorkgroupSize);
  const groups = Math.max(1, Math.min(mapMaxGroups, Math.ceil(total / (wg * target.mapMinPerThread))));
  return { wg, groups, threads: groups * wg };
}

export interface MapOperand {
  readonly value: ValueId;
  readonly walk: Walk;
  readonly elem?: Elem;
}

export interface MapSpec {
  /** What is baked into `expr` and `fns` (the op and any constant in it). */
  readonly tag: string;
  /** The index space: every element of this shape is computed once. */
  readonly shape: Shape;
  readonly out: MapOperand;
  readonly ins: readonly MapOperand[];
  /** The stored value, from the loaded operands (WGSL expressions, in `ins` order). */
  readonly expr: (loaded: readonly string[]) => string;
  /** WGSL functions `expr` calls. */
  readonly fns?: string;
  /** Scalars the expression reads as `u.<name>` (added before the index uniforms). */
  readonly scalars?: (u: Uniforms) => void;
}

export function mapKernel(c: EmitContext, s: MapSpec): KernelCall {
  const b = new Bindings(c);
  // Inputs first, then the output: an in-place output joins its input's binding.
  const names = s.ins.map((o) => b.value(o.value, false, o.elem ?? 'f32'));
  const outName = b.value(s.out.value, true, s.out.elem ?? 'f32');
  const u = new Uniforms();
  const total = numel(s.shape);
  u.u32('n', total);
  s.scalars?.(u);
  const { wg, groups, threads } = mapGrid(total, c.limits, c.target);
  u.u32('step', threads);
  const space = coalesce(s.shape, [s.out.walk, ...s.ins.map((o) => o.walk)]);
  const offsets = ['o', ...s.ins.map((_, k) => `x${k}`)];
  const walk = walkCode(space, offsets, u, threads);
  const loaded = s.ins.map((_, k) => `${names[k]}[x${k}]`);
  const indent = (code: string, by: string) => code.split('\n').join(`\n${by}`);
  const body = `${s.fns ?? ''}
@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  var i = wg * ${wg}u + lid;
  if (i >= u.n) { return; }
  ${indent(walk.init, '  ')}
  loop {
    ${indent(walk.offsets, '    ')}
    ${outName}[o] = ${s.expr(loaded)};
    i += u.step;
    if (i >= u.n) { break; }
    ${indent(walk.advance, '    ')}
  }
}`;
  return kernel(`map:${s.tag}|${walk.key}|wg${wg}`, b, u, body, [groups, 1, 1]);
}

/** The shape of a value, for building walks. */
export const shapeOf = (c: EmitContext, v: ValueId): Shape => c.g.values[v].shape;
