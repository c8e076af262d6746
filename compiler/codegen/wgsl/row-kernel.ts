// The frame of every kernel over the last axis: a workgroup of 32 threads per row (256 for long
// rows; workgroups loop over rows when there are more than 1024), threads striding over the row's n elements,
// and workgroup-shared reductions (sum, max) that every thread gets the result of. Barriers sit
// only in uniform control flow: the row loop's bounds depend on the workgroup id and uniforms.
// Many short rows instead run a thread per row (threadPerRow below): the same body, with the
// reductions the identity and the loop over the whole row. With the target's `subgroups`, the
// workgroup-per-row reductions go through subgroup operations (subgroup-reduce.ts).
import { numel } from '../../ir/shape.ts';
import type { Shape } from '../../ir/types.ts';
import { type EmitContext, grid, type KernelCall } from './emitter.ts';
import { enableSubgroups, subgroupArgs, subgroupInit, subgroupReductions } from './subgroup-reduce.ts';
import type { KernelTarget } from './target.ts';
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
 * A loop over the row's elements `j` running `stmt`, which adds to the accumulators `accs`
 * (f32 vars the body declared, then reduced with wgSum).
 */
export type RowSum = (accs: readonly string[], stmt: string) => string;

/**
 * In a thread per row: blocks of `sumBlock` elements summed apart, then added up, so rounding
 * grows like n / sumBlock + sumBlock terms rather than n, as with 32 threads a row (a plain
 * running sum over 1000 elements missed the softmax gradients' 1e-5 tolerance).
 */
const sumBlock = 32;
const blockedSum: RowSum = (accs, stmt) => `for (var j0 = 0u; j0 < u.n; j0 += ${sumBlock}u) {
  ${accs.map((a) => `let ${a}Prev = ${a}; ${a} = 0.0;`).join(' ')}
  for (var j = j0; j < min(j0 + ${sumBlock}u, u.n); j++) { ${stmt} }
  ${accs.map((a) => `${a} += ${a}Prev;`).join(' ')}
}`;

/**
 * A row kernel: `body` runs with `row` (< u.rows), `base` (the row's first element), `t` (the
 * thread), and loops `for (var j = t; j < u.n; j += WG)`, written `${loop}`, or `sum(accs, stmt)`
 * for a loop that only adds to accumulators (summed in blocks in a thread per row). `wgSum`/`wgMax`
 * give every thread the row's result, and `t == 0u` picks one thread per row, in either mode.
 */
export function rowKernel(
  c: EmitContext,
  key: string,
  b: Bindings,
  u: Uniforms,
  shape: { rows: number; n: number },
  body: (loop: string, sum: RowSum) => string,
): KernelCall {
  if (threadPerRow(shape, c.target)) return threadRowKernel(c, key, b, u, shape, body);
  const wg = rowThreads(shape.n);
  const groups = Math.max(1, Math.min(shape.rows, rowMaxGroups));
  u.u32('rows', shape.rows).u32('n', shape.n).u32('groups', groups);
  // With subgroups (target.ts), the reductions combine lanes in registers first (subgroup-reduce.ts).
  const sg = c.target.subgroups === true;
  const code = `${sg ? subgroupReductions(wg) : reductions(wg)}
${maxNan}

@compute @workgroup_size(${wg})
fn main(${entryArgs}${sg ? subgroupArgs : ''}) {
  ${sg ? `${subgroupInit}\n  ` : ''}${flatGroup}
  let t = lid;
  for (var row = wg; row < u.rows; row += u.groups) {
    let base = row * u.n;
    ${body(`for (var j = t; j < u.n; j += ${wg}u)`, (_, stmt) => `for (var j = t; j < u.n; j += ${wg}u) { ${stmt} }`).split('\n').join('\n    ')}
  }
}`;
  const call = kernel(`${key}|wg${wg}${sg ? '|sg' : ''}`, b, u, code, [groups, 1, 1]);
  return sg ? { ...call, code: enableSubgroups + call.code } : call;
}

/**
 * Whether a row kernel runs one thread per row: on the cpu target (target.ts), rows of at most
 * 2048 elements, at least 256 of them; never on the gpu target. Each invocation loops over its whole row and the "workgroup" reductions
 * are the thread's own value: no barriers and no shared memory. On lavapipe, which runs a
 * workgroup's invocations as SIMD lanes, barriers and per-workgroup costs dominated the
 * workgroup-per-row frame: layerNorm of [1024, 128] took 6.4 ms a call with 32 threads a row,
 * 0.3-0.7 ms a thread a row; its gradient's dx 15.8 ms against 0.9; softmax of [4096, 768]
 * 35 ms against 7-18 (a loaded machine). 16, 64 or 256 rows a workgroup were within noise.
 * Long rows (or few rows) keep a workgroup per row, which real GPUs want for parallelism within a row.
 */
export function threadPerRow(shape: { rows: number; n: number }, target: KernelTarget): boolean {
  const t = target.threadPerRow;
  return t !== null && shape.n <= t.maxN && shape.rows >= t.minRows;
}
/** Rows (threads) per workgroup in thread-per-row mode. */
const rowsPerGroup = 64;

function threadRowKernel(c: EmitContext, key: string, b: Bindings, u: Uniforms, shape: { rows: number; n: number }, body: (loop: string, sum: RowSum) => string): KernelCall {
  u.u32('rows', shape.rows).u32('n', shape.n);
  const code = `fn wgSum(v: f32, t: u32) -> f32 { return v; }
fn wgMax(v: f32, t: u32) -> f32 { return v; }
${maxNan}

@compute @workgroup_size(${rowsPerGroup})
fn main(${entryArgs}) {
  ${flatGroup}
  let row = wg * ${rowsPerGroup}u + lid;
  if (row >= u.rows) { return; }
  let t = 0u;
  let base = row * u.n;
  ${body('for (var j = 0u; j < u.n; j++)', blockedSum).split('\n').join('\n  ')}
}`;
  return kernel(`${key}|tpr${rowsPerGroup}`, b, u, code, grid(shape.rows, rowsPerGroup, c.limits));
}

/**
 * At most this many workgroups; each loops over rows (the loop bound is uniform, so barriers
 * inside stay legal). On lavapipe every workgroup costs about 3 us: softmax of [4096, 768] took
 * 86-112 ms with 64-256 looping workgroups against 144 ms with one per row (a loaded machine;
 * the differences below 1024 were within noise). 1024 x 32 threads keep a discrete GPU busy.
 */
const rowMaxGroups = 1024;
