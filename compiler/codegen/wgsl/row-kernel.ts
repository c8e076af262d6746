// The frame of every kernel over the last axis: a workgroup of 32 threads per row (256 for long
// rows; workgroups loop over rows when there are more than 1024), threads striding over the row's n elements,
// and workgroup-shared reductions (sum, max) that every thread gets the result of. Barriers sit
// only in uniform control flow: the row loop's bounds depend on the workgroup id and uniforms.
import { numel } from '../../ir/shape.ts';
import type { Shape } from '../../ir/types.ts';
import type { EmitContext, KernelCall } from './emitter.ts';
import { type Bindings, entryArgs, flatGroup, kernel, type Uniforms } from './wgsl-kernel.ts';

/**
 * Threads per row: 32 for rows shorter than `longRow`, else 256. Measured on lavapipe (softmax of
 * [4096, 768]): 32 threads with the flat reduction below took 26-64 ms, 64 threads 95-210 ms, a
 * tree over 128 threads 135 ms: there, workgroups past 32 invocations with barriers cost several
 * times more, while long rows amortise them (a [1024, 8192] cross-entropy gradient: 190-240 ms
 * with 32, 290-360 ms with 256, on a loaded machine). On an H100, 32 threads per row left that
 * same kernel latency-bound at 0.35 ms.
 */
export const rowThreads = (n: number): number => (n >= longRow ? 256 : 32);
const longRow = 4096;

/** `rows` rows of `n` contiguous elements, from a shape's last axis. */
export function rowsOf(shape: Shape): { rows: number; n: number } {
  const n = shape.length ? shape[shape.length - 1] : 1;
  return { rows: n === 0 ? 0 : numel(shape) / n, n };
}

/**
 * WGSL reductions over the workgroup, returning the result to every thread. With 32 threads, each
 * writes its value and after one barrier every thread combines all 32 (shared-memory broadcast
 * reads): two barriers instead of a tree's log2(32) + 2. Wider workgroups first fold into 32
 * partials (threads t < 32 combine t, t + 32, ...), one more barrier.
 */
function reductions(wg: number): string {
  const fold = (combine: (a: string, b: string) => string) =>
    wg === 32 ? '' : `
  if (t < 32u) {
    var p = red[t];
    for (var k = t + 32u; k < ${wg}u; k += 32u) { p = ${combine('p', 'red[k]')}; }
    part[t] = p;
  }
  workgroupBarrier();`;
  const from = wg === 32 ? 'red' : 'part';
  const flat = (name: string, combine: (a: string, b: string) => string) => `fn ${name}(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();${fold(combine)}
  var r = ${from}[0];
  for (var k = 1u; k < 32u; k++) { r = ${combine('r', `${from}[k]`)}; }
  workgroupBarrier();
  return r;
}`;
  return `var<workgroup> red: array<f32, ${wg}>;
${wg === 32 ? '' : 'var<workgroup> part: array<f32, 32>;\n'}${flat('wgSum', (a, b) => `${a} + ${b}`)}
${flat('wgMax', (a, b) => `maxNan(${a}, ${b})`)}`;
}

/** max that lets a NaN through, as the reference's row max does. */
const maxNan = 'fn maxNan(a: f32, b: f32) -> f32 { return select(a, b, b > a || isNan(b)); }';

/**
 * A row kernel: `body` runs with `row` (< u.rows), `base` (the row's first element), `t` (the
 * thread), and loops `for (var j = t; j < u.n; j += WG)`, written `${loop}`.
 */
export function rowKernel(
  c: EmitContext,
  key: string,
  b: Bindings,
  u: Uniforms,
  shape: { rows: number; n: number },
  body: (loop: string) => string,
): KernelCall {
  const wg = rowThreads(shape.n);
  const groups = Math.max(1, Math.min(shape.rows, rowMaxGroups));
  u.u32('rows', shape.rows).u32('n', shape.n).u32('groups', groups);
  const code = `${reductions(wg)}
${maxNan}

@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  let t = lid;
  for (var row = wg; row < u.rows; row += u.groups) {
    let base = row * u.n;
    ${body(`for (var j = t; j < u.n; j += ${wg}u)`).split('\n').join('\n    ')}
  }
}`;
  return kernel(`${key}|wg${wg}`, b, u, code, [groups, 1, 1]);
}

/**
 * At most this many workgroups; each loops over rows (the loop bound is uniform, so barriers
 * inside stay legal). On lavapipe every workgroup costs about 3 us: softmax of [4096, 768] took
 * 86-112 ms with 64-256 looping workgroups against 144 ms with one per row (a loaded machine;
 * the differences below 1024 were within noise). 1024 x 32 threads keep a discrete GPU busy.
 */
const rowMaxGroups = 1024;
