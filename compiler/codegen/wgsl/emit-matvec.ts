// Matrix-vector kernels: matmuls with a few rows (a decode step's [1, d] x [d, n] products). The
// tiled matmul (emit-matmul.ts) gives each invocation a 16 x 16 block of outputs: with one row,
// 15 of its 16 loads of A per k are of rows that do not exist, and a [1, 128] x [128, 128]
// product is one workgroup on one CPU thread. Here each invocation owns all R rows of a few
// output columns, and a workgroup a block of columns:
//   'n' (B is [K, N], columns adjacent): adjacent threads read adjacent columns (as vec4s where
//       N allows), each thread walking its slice of K;
//   't' (B is [N, K], K adjacent: a tied LM head): adjacent threads read adjacent 4-element runs
//       of one column along K, each thread a slice of K, and dot products of vec4s.
// Either way a warp's loads of the weight are coalesced, whatever its layout. With wgK > 1 the
// threads of one column block split K and sum their partial dot products in workgroup memory
// after one barrier (the gpu target's); the cpu target keeps wgK = 1, since lavapipe pays for
// every barrier and each workgroup there is one SIMD thread anyway. Sums run in a fixed order.
// Baked in: the layout's shape, R, transA, how A and B are read (vec4 or scalar, 4 or 1 k per
// step), the number of batch axes and the epilogue; sizes and strides are uniforms.
import { CompilerBug } from '../../diagnostics.ts';
import { bytesPerElement } from '../../ir/shape.ts';
import type { NodeOf, ValueId } from '../../ir/types.ts';
import { grid, type EmitContext, type KernelCall } from './emitter.ts';
import type { KernelTarget, MatvecLayout } from './target.ts';
import { Bindings, kernel, type StorageElem, Uniforms } from './wgsl-kernel.ts';

/**
 * What emit-matmul.ts's MatmulGeometry and MatmulEpilogue give this kernel, stated here so that
 * this file need not import the matmul's (which imports this one).
 */
interface Geometry {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly transA: boolean;
  readonly transB: boolean;
  readonly batch: readonly { readonly size: number; readonly a: number; readonly b: number }[];
  readonly count: number;
}
interface Epilogue {
  bind(b: Bindings, u: Uniforms): { readonly tag: string; readonly fns: string };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Whether `target` runs this matmul as a matrix-vector kernel. */
export const useMatvec = (geo: Geometry, target: KernelTarget): boolean => target.matvec !== null && geo.m <= target.matvec.maxRows;

/** The layout's wgK, halved until the partial sums fit the workgroup storage limit. */
function fitted(lay: MatvecLayout, outsPerThread: number, maxBytes: number): MatvecLayout {
  let wgK = lay.wgK;
  while (wgK > 1 && wgK * lay.wgCols * outsPerThread * 4 > maxBytes) wgK = Math.ceil(wgK / 2);
  return wgK === lay.wgK ? lay : { ...lay, wgK };
}

/** A matmul of few rows as one dispatch, each output element handed to `ep` (emit-matmul.ts's contract). */
export function matvecKernel(node: NodeOf<'matmul'>, c: EmitContext, ep: Epilogue, geo: Geometry): KernelCall {
  const mv = c.target.matvec;
  if (!mv || geo.m > mv.maxRows) throw new CompilerBug(`codegen: a matmul of ${geo.m} rows is not a matrix-vector product on the ${c.target.name} target`);
  const [a, b] = node.inputs;
  const { m: R, k: K, n: N, transA, transB } = geo;
  // A vec4 binding must be a binding of its own: not when another operand or an output shares its storage.
  // The fused epilogue's own operands count too (a residual that is also A): probed on a throwaway Bindings.
  const probe = new Bindings(c);
  ep.bind(probe, new Uniforms());
  const others = (i: number) => [...node.inputs.filter((_, j) => j !== i), ...node.outputs, ...probe.values()];
  const alone = (v: ValueId, i: number) => !others(i).some((w) => w === v || c.sameStorage(w, v));
  const aligned = (v: ValueId) => c.slot(v).ref.offset % (4 * bytesPerElement[c.g.values[v].dtype]) === 0;
  const aVec4 = !transA && K % 4 === 0 && aligned(a) && alone(a, 0);
  const bVec4 = (transB ? K % 4 === 0 : N % 4 === 0) && aligned(b) && alone(b, 1);
  // k per step: 4 where A (n) or A and B (t) can be read 4 along K.
  const kw = transB ? (K % 4 === 0 ? 4 : 1) : aVec4 ? 4 : 1;
  // Columns per group: 4 where B's columns are read as vec4s (n), else 1.
  const w = !transB && bVec4 ? 4 : 1;
  const G0 = transB ? mv.t : mv.n;
  const lay = fitted(G0, R * G0.groups * w, c.limits.maxWorkgroupStorageBytes);
  const { wgCols, wgK, groups: G } = lay;

  const bs = new Bindings(c);
  const vec = (v: ValueId): StorageElem => {
    const d = c.g.values[v].dtype;
    return d === 'f16' || d === 'bf16' ? `vec4<${d}>` : 'vec4<f32>';
  };
  const A = aVec4 ? bs.buffer(c.slot(a).ref, false, vec(a)) : bs.value(a, false);
  const B = bVec4 ? bs.buffer(c.slot(b).ref, false, vec(b)) : bs.value(b, false);
  const colsPerWg = wgCols * G * w;
  const blocks = Math.ceil(N / colsPerWg);
  const total = blocks * geo.count;
  if (total >= 2 ** 32) throw new CompilerBug(`codegen: a matrix-vector product of ${total} workgroups`);
  const u = new Uniforms().u32('k', K).u32('n', N).u32('steps', K / kw).u32('blocks', blocks).u32('total', total);
  geo.batch.forEach((ax, d) => u.u32(`size${d}`, ax.size).u32(`sa${d}`, ax.a).u32(`sb${d}`, ax.b));
  const epi = ep.bind(bs, u);

  // A(r, l) for r < R; in vec4 units when aVec4.
  const [aFree, aL] = transA ? ['1u', `${R}u`] : ['u.k', '1u'];
  const aStep = (r: number) =>
    aVec4 ? `${A}[aOff / 4u + ${r}u * (u.k / 4u) + q]`
    : kw === 4 ? `vec4<f32>(${range(4).map((e) => `${A}[aOff + ${r}u * ${aFree} + (q * 4u + ${e}u) * ${aL}]`).join(', ')})`
    : `${A}[aOff + ${r}u * ${aFree} + q * ${aL}]`;
  const rows = range(R);
  const gs = range(G);
  let setup: string[];
  let step: string[];
  let outs: { r: number; col: string; value: string }[];
  let accs: string[];
  if (!transB) {
    // Group g of thread x: column group blk * wgCols * G + g * wgCols + x (adjacent threads, adjacent groups).
    const nv = w === 4 ? '(u.n / 4u)' : 'u.n';
    setup = gs.map((g) => `  let cg${g} = blk * ${wgCols * G}u + ${g * wgCols}u + x;\n  let pb${g} = ${w === 4 ? 'bOff / 4u' : 'bOff'} + min(cg${g}, ${nv} - 1u);`);
    accs = rows.flatMap((r) => gs.map((g) => `  var acc${r}_${g} = ${w === 4 ? 'vec4<f32>()' : '0.0'};`));
    // One k (`l`) of the step; `e`: which lane of the vec4 of A holds it (null: A is scalar).
    const fmaAt = (l: string, e: number | null) => {
      const sfx = e === null ? '' : `_${e}`;
      const aOf = (r: number) => (e === null ? `va${r}` : `va${r}.${'xyzw'[e]}`);
      return [
        ...gs.map((g) => `    let vb${g}${sfx} = ${B}[pb${g} + (${l}) * ${nv}];`),
        ...rows.flatMap((r) => gs.map((g) => `    acc${r}_${g} = fma(${w === 4 ? `vec4<f32>(${aOf(r)})` : aOf(r)}, vb${g}${sfx}, acc${r}_${g});`)),
      ];
    };
    step = [...rows.map((r) => `    let va${r} = ${aStep(r)};`), ...(kw === 4 ? range(4).flatMap((e) => fmaAt(`q * 4u + ${e}u`, e)) : fmaAt('q', null))];
    outs = rows.flatMap((r) => gs.flatMap((g) => range(w).map((e) => ({ r, col: w === 4 ? `cg${g} * 4u + ${e}u` : `cg${g}`, value: w === 4 ? `acc${r}_${g}.${'xyzw'[e]}` : `acc${r}_${g}` }))));
  } else {
    // Column g of thread x: blk * wgCols * G + g * wgCols + x; its K run starts at col * K.
    setup = gs.map((g) => `  let cg${g} = blk * ${wgCols * G}u + ${g * wgCols}u + x;\n  let pb${g} = ${bVec4 ? 'bOff / 4u + min(cg' + g + ', u.n - 1u) * (u.k / 4u)' : 'bOff + min(cg' + g + ', u.n - 1u) * u.k'};`);
    accs = rows.flatMap((r) => gs.map((g) => `  var acc${r}_${g} = 0.0;`));
    const bStep = (g: number) =>
      bVec4 ? `${B}[pb${g} + q]` : kw === 4 ? `vec4<f32>(${range(4).map((e) => `${B}[pb${g} + q * 4u + ${e}u]`).join(', ')})` : `${B}[pb${g} + q]`;
    step = [
      ...rows.map((r) => `    let va${r} = ${aStep(r)};`),
      ...gs.map((g) => `    let vb${g} = ${bStep(g)};`),
      ...rows.flatMap((r) => gs.map((g) => (kw === 4 ? `    acc${r}_${g} += dot(va${r}, vb${g});` : `    acc${r}_${g} = fma(va${r}, vb${g}, acc${r}_${g});`))),
    ];
    outs = rows.flatMap((r) => gs.map((g) => ({ r, col: `cg${g}`, value: `acc${r}_${g}` })));
  }
  const [xOf, yOf] = transB ? [`lid / ${wgK}u`, `lid % ${wgK}u`] : [`lid % ${wgCols}u`, `lid / ${wgCols}u`];
  const finish = (o: { r: number; col: string }, v: string) => `    if (${o.col} < u.n) { finish(oOff + ${o.r}u * u.n + ${o.col}, ${v}); }`;
  const store = wgK === 1
    ? ['  if (live) {', ...outs.map((o) => finish(o, o.value)), '  }']
    : [
      ...outs.map((o, i) => `  part[(${i}u * ${wgCols}u + x) * ${wgK}u + y] = ${o.value};`),
      '  workgroupBarrier();',
      '  if (live && y == 0u) {',
      ...outs.flatMap((o, i) => [
        `    var s${i} = 0.0;`,
        `    for (var t = 0u; t < ${wgK}u; t++) { s${i} += part[(${i}u * ${wgCols}u + x) * ${wgK}u + t]; }`,
        finish(o, `s${i}`),
      ]),
      '  }',
    ];
  const batchCode = range(geo.batch.length).reverse()
    .map((d) => `  { let i = rest % u.size${d}; rest = rest / u.size${d}; aOff += i * u.sa${d}; bOff += i * u.sb${d}; }`);
  const code = `${epi.fns}
${wgK > 1 ? `var<workgroup> part: array<f32, ${wgK * wgCols * outs.length}>;\n` : ''}@compute @workgroup_size(${wgCols * wgK}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // Workgroups past the last (a grid folded into 2D) compute a clamped block and store nothing:
  // every thread reaches the barrier.
  let flat = wid.x + wid.y * nwg.x;
  let live = flat < u.total;
  let tile = min(flat, u.total - 1u);
  let blk = tile % u.blocks;
  let mat = tile / u.blocks;
  let x = ${xOf};
  let y = ${yOf};
  var rest = mat;
  var aOff = 0u;
  var bOff = 0u;
${batchCode.join('\n')}
  let oOff = mat * ${R}u * u.n;
${setup.join('\n')}
${accs.join('\n')}
  for (var q = y; q < u.steps; q += ${wgK}u) {
${step.join('\n')}
  }
${store.join('\n')}
}`;
  const key = `matvec:${transB ? 't' : 'n'}${wgCols}x${wgK}.g${G}.r${R}.${transA ? 'T' : 'N'}.a${aVec4 ? 4 : 1}b${bVec4 ? 4 : 1}k${kw}.b${geo.batch.length}|${epi.tag}`;
  return kernel(key, bs, u, code, grid(total, 1, c.limits));
}
