// Matmul kernels: batched [..., M, K] x [..., K, N] with transA / transB and broadcast batch axes.
// Register-blocked, no workgroup memory: each invocation keeps a tm x tn block of outputs in
// registers and reads A and B straight from storage. lavapipe runs a workgroup's invocations as
// 8 SIMD lanes of one CPU thread (AVX2 here), and its LLVM IR (GALLIVM_DEBUG=ir) shows what a
// storage load inside the k loop costs: a loop over the 8 lanes, each lane testing its exec mask,
// reloading the buffer's pointer and size, and bounds-checking every component, whether or not the
// address is the same in every lane (the load of A is). Loads, not FMAs, bound the kernel: at
// 512, replacing A's loads by arithmetic took 8 x 16 (B as vec4s) from 18 to 25 GFLOP/s per 2
// cores of process CPU time, B's to 30. So B, where N and its offset allow it, is read as vec4s
// (the lane test and pointer reload once per 4 floats): bench/matmul.ts (its header has the
// table), 8 x 16 at 1024: 22.0 -> 27.5 GFLOP/s (256: 15.4 -> 25.2), 15.5 -> 18.6-20.5 while the
// host thread polls the queue. Reading A as vec4s along k (k unrolled by 4) ran 2.5x slower.
// Baked into the WGSL: the tile (the kernel target's, target.ts), transA / transB, the number of batch axes (at least 3) and the
// epilogue. Sizes and batch strides are uniforms, so one shader serves every shape.
import { LomocError } from '../../diagnostics.ts';
import { broadcastShapes, bytesPerElement, numel } from '../../ir/shape.ts';
import type { Graph, Node, NodeOf, Shape, ValueId } from '../../ir/types.ts';
import { grid, type EmitContext, type Emitter, type KernelCall, type Limits } from './emitter.ts';
import { matvecKernel, useMatvec } from './emit-matvec.ts';
import { kernelTargets, matmulShapeKey, type KernelTarget, type MatmulTile } from './target.ts';
export type { MatmulTile } from './target.ts';
import { Bindings, kernel, Uniforms } from './wgsl-kernel.ts';

/** The measured winner on lavapipe (bench/matmul.ts): the cpu target's tile (target.ts has the gpu one). */
export const matmulTile: MatmulTile = kernelTargets.cpu.matmul;

/** One merged batch axis: its size and each operand's element stride along it (0: broadcast). */
export interface BatchAxis {
  readonly size: number;
  readonly a: number;
  readonly b: number;
}

export interface MatmulGeometry {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly transA: boolean;
  readonly transB: boolean;
  /** Outer to inner; axes of size 1 dropped, neighbours with the same pattern merged. */
  readonly batch: readonly BatchAxis[];
  /** Number of output matrices. */
  readonly count: number;
}

export function matmulGeometry(a: Shape, b: Shape, transA: boolean, transB: boolean): MatmulGeometry {
  const [ra, rb] = [a.length, b.length];
  const [m, k] = transA ? [a[ra - 1], a[ra - 2]] : [a[ra - 2], a[ra - 1]];
  const n = transB ? b[rb - 2] : b[rb - 1];
  const [ba, bb] = [a.slice(0, -2), b.slice(0, -2)];
  const out = broadcastShapes(ba, bb) ?? [];
  // Element strides of each operand's batch axes, aligned to the output's; 0 where broadcast.
  const stridesOf = (s: Shape, matrix: number): number[] => {
    const st = new Array<number>(out.length).fill(0);
    let acc = matrix;
    for (let i = s.length - 1; i >= 0; i--) {
      if (s[i] !== 1) st[out.length - s.length + i] = acc;
      acc *= s[i];
    }
    return st;
  };
  const [sa, sb] = [stridesOf(ba, m * k), stridesOf(bb, k * n)];
  const batch: BatchAxis[] = [];
  out.forEach((size, i) => {
    if (size === 1) return;
    const prev = batch[batch.length - 1];
    // Outer axis i-1 and axis i merge when stepping i-1 is stepping i `size` times, in both operands.
    if (prev && prev.a === sa[i] * size && prev.b === sb[i] * size) batch[batch.length - 1] = { size: prev.size * size, a: sa[i], b: sb[i] };
    else batch.push({ size, a: sa[i], b: sb[i] });
  });
  return { m, k, n, transA, transB, batch, count: numel(out) };
}

/**
 * What a matmul kernel does with each finished output element. `bind` runs after A and B are
 * bound: it binds what the epilogue needs (and may add uniforms after the matmul's own) and
 * returns WGSL that defines `fn finish(o: u32, acc: f32)`, called with each output element's
 * flat index and value, and a `tag` naming everything it bakes in.
 */
export interface MatmulEpilogue {
  bind(b: Bindings, u: Uniforms): EpilogueCode;
}
export interface EpilogueCode {
  readonly tag: string;
  readonly fns: string;
  /**
   * WGSL every invocation runs after its last `finish`, in the workgroup's uniform control flow
   * (it may call workgroupBarrier); `lane` is the invocation's flat index in its workgroup and
   * `tile` the workgroup's. The tiled kernel only: an epilogue with one is never given to matvec.
   */
  readonly end?: () => string;
}

/** The plain matmul: store C. */
export const storeEpilogue = (out: ValueId): MatmulEpilogue => ({
  bind: (b) => ({ tag: 'store', fns: `fn finish(o: u32, acc: f32) { ${b.value(out, true)}[o] = acc; }` }),
});

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The values a fused epilogue binds (a residual, the output), probed on a throwaway Bindings. */
function epilogueValues(ep: MatmulEpilogue, c: EmitContext): ValueId[] {
  const probe = new Bindings(c);
  ep.bind(probe, new Uniforms());
  return probe.values();
}

/**
 * Batch axes the WGSL walks: at least 3 (padded with size-1 axes), so that one shader per
 * transA / transB serves nearly every matmul. lavapipe compiles a matmul in seconds (cached on
 * disk afterwards); a few integer divisions per workgroup cost nothing beside that.
 */
const walkedAxes = (geo: MatmulGeometry): BatchAxis[] => [
  ...Array.from({ length: Math.max(0, 3 - geo.batch.length) }, () => ({ size: 1, a: 0, b: 0 })),
  ...geo.batch,
];

/** The uniforms of one matmul launch (added to `u`) and its workgroup count. */
export function launch(geo: MatmulGeometry, t: MatmulTile, u: Uniforms, limits: Limits): [number, number, number] {
  const tilesN = Math.ceil(geo.n / (t.tn * t.wgX));
  const tilesM = Math.ceil(geo.m / (t.tm * t.wgY));
  const total = tilesN * tilesM * geo.count;
  if (total >= 2 ** 32) throw new LomocError(`matmul: ${total} workgroups are more than one dispatch can address`);
  u.u32('m', geo.m).u32('k', geo.k).u32('n', geo.n).u32('tilesN', tilesN).u32('tilesM', tilesM).u32('total', total);
  walkedAxes(geo).forEach((ax, d) => u.u32(`size${d}`, ax.size).u32(`sa${d}`, ax.a).u32(`sb${d}`, ax.b));
  return grid(total, 1, limits);
}

/**
 * Where the operands and the output sit, as WGSL u32 expressions: A(i, l) at aOff + i * aFree +
 * l * aL, B(l, j) at bOff + j * bFree + l * bL (bLv: bL in vec4s), output (row, col) at oOff +
 * row * oRow + col; aOff and bOff start at aAt and bAt and the batch walk adds its strides.
 */
export interface MatmulLayout {
  readonly aFree: string;
  readonly aL: string;
  readonly bFree: string;
  readonly bL: string;
  readonly bLv: string;
  readonly aAt: string;
  readonly bAt: string;
  readonly oOff: string;
  readonly oRow: string;
}

/** Packed [M, K] x [K, N] matrices (transposed as geo says), the output matrices one after another. */
const packedLayout = (geo: MatmulGeometry): MatmulLayout => ({
  ...(geo.transA ? { aFree: '1u', aL: 'u.m' } : { aFree: 'u.k', aL: '1u' }),
  ...(geo.transB ? { bFree: 'u.k', bL: '1u' } : { bFree: '1u', bL: 'u.n' }),
  bLv: 'nv',
  aAt: '0u',
  bAt: '0u',
  oOff: 'mat * u.m * u.n',
  oRow: 'u.n',
});

/**
 * WGSL of the kernel body: A and B are the names bound to the operands. `bVec4`: B is bound as
 * array<vec4<f32>> (see `matmulKernel`), and an invocation's tn columns are tn / 4 groups of 4
 * adjacent ones, read as one vec4 each; the layout then places groups, not columns (B's bAt and
 * bL must then be multiples of 4, bFree 1).
 */
export function matmulBody(t: MatmulTile, geo: MatmulGeometry, A: string, B: string, ep: EpilogueCode, bVec4 = false, at: MatmulLayout = packedLayout(geo)): string {
  const { wgX, wgY, tm, tn } = t;
  const rows = range(tm);
  const cols = range(tn);
  const groups = range(tn / 4);
  const [rowStep, colStep] = t.layout === 'interleaved' ? [wgY, wgX] : [1, 1];
  const [rowBase, colBase] = t.layout === 'interleaved' ? ['lid.y', 'lid.x'] : [`lid.y * ${tm}u`, `lid.x * ${bVec4 ? tn / 4 : tn}u`];
  const { aFree, aL, bFree, bL } = at;
  const batchCode = range(walkedAxes(geo).length)
    .reverse()
    .map((d) => `  { let i = rest % u.size${d}; rest = rest / u.size${d}; aOff += i * u.sa${d}; bOff += i * u.sb${d}; }`);
  // The block leaves registers through a loop, so `finish` (an epilogue can be long) is
  // compiled once, not tm * tn times: that cut lavapipe's compile of this kernel from ~11 s to
  // ~4 s, at no measurable cost per dispatch.
  const stores = [
    `  var out: array<f32, ${tm * tn}>;`,
    ...rows.flatMap((r) => cols.map((c) => `  out[${r * tn + c}] = acc${r}_${c};`)),
    `  for (var r = 0u; r < ${tm}u; r = r + 1u) {`,
    `    let row = row0 + r * ${rowStep}u;`,
    '    if (row >= u.m) { break; }',
    `    for (var c = 0u; c < ${tn}u; c = c + 1u) {`,
    bVec4 ? `      let col = (col0 + (c / 4u) * ${colStep}u) * 4u + c % 4u;` : `      let col = col0 + c * ${colStep}u;`,
    `      if (col < u.n) { finish(oOff + row * ${at.oRow} + col, out[r * ${tn}u + c]); }`,
    '    }',
    '  }',
  ];
  return `${ep.fns}
@compute @workgroup_size(${wgX}, ${wgY}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // Workgroups fold into 2D past 65535 per dimension: recover (column tile, row tile, matrix).
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= u.total) { return; }
  let tj = tile % u.tilesN;
  let ti = (tile / u.tilesN) % u.tilesM;
  let mat = tile / (u.tilesN * u.tilesM);
  var rest = mat;
  var aOff = ${at.aAt};
  var bOff = ${at.bAt};
${batchCode.join('\n')}
  let oOff = ${at.oOff};
  let row0 = ti * ${tm * wgY}u + ${rowBase};
  let col0 = tj * ${bVec4 ? (tn / 4) * wgX : tn * wgX}u + ${colBase};${bVec4 ? ' // in vec4s' : ''}
  // Out-of-range rows and columns load a clamped (valid) element and are never stored.
${rows.map((r) => `  let pa${r} = aOff + min(row0 + ${r * rowStep}u, u.m - 1u) * ${aFree};`).join('\n')}
${bVec4
  ? ['  let nv = u.n / 4u;', ...groups.map((g) => `  let pb${g} = bOff / 4u + min(col0 + ${g * colStep}u, nv - 1u);`)].join('\n')
  : cols.map((c) => `  let pb${c} = bOff + min(col0 + ${c * colStep}u, u.n - 1u) * ${bFree};`).join('\n')}
${rows.flatMap((r) => cols.map((c) => `  var acc${r}_${c} = 0.0;`)).join('\n')}
  for (var l = 0u; l < u.k; l = l + 1u) {
${rows.map((r) => `    let va${r} = ${A}[pa${r} + l * ${aL}];`).join('\n')}
${bVec4
  ? groups.map((g) => `    let vb${g} = ${B}[pb${g} + l * ${at.bLv}];`).join('\n')
  : cols.map((c) => `    let vb${c} = ${B}[pb${c} + l * ${bL}];`).join('\n')}
${rows.flatMap((r) => cols.map((c) => `    acc${r}_${c} = fma(va${r}, ${bVec4 ? `vb${c >> 2}.${'xyzw'[c & 3]}` : `vb${c}`}, acc${r}_${c});`)).join('\n')}
  }
${stores.join('\n')}${ep.end ? `\n  let lane = lid.y * ${wgX}u + lid.x;\n${ep.end()}` : ''}
}`;
}


/** The tile the tiled kernel uses for `n` unless given one: the target's tuned tile for the shape, else its tile. */
export function tiledTile(n: NodeOf<'matmul'>, g: Graph, target: KernelTarget): MatmulTile {
  const [a, b] = n.inputs;
  const geo = matmulGeometry(g.values[a].shape, g.values[b].shape, n.attrs.transA, n.attrs.transB);
  return target.tuned?.[matmulShapeKey(geo, g.values[a].dtype, g.values[b].dtype)] ?? target.matmul;
}

/** Workgroups of the tiled kernel for `n` with `tile`: its tile index runs over [0, this). */
export function tiledWorkgroups(n: NodeOf<'matmul'>, g: Graph, tile: MatmulTile): number {
  const [a, b] = n.inputs;
  const geo = matmulGeometry(g.values[a].shape, g.values[b].shape, n.attrs.transA, n.attrs.transB);
  return Math.ceil(geo.n / (tile.tn * tile.wgX)) * Math.ceil(geo.m / (tile.tm * tile.wgY)) * geo.count;
}

/** One matmul node as one dispatch, each output element handed to `ep` (`tile`, else the target's tuned tile for the shape, else its tile). */
export function matmulKernel(n: NodeOf<'matmul'>, c: EmitContext, ep: MatmulEpilogue, given?: MatmulTile): KernelCall {
  const [a, b] = n.inputs;
  const geo = matmulGeometry(c.g.values[a].shape, c.g.values[b].shape, n.attrs.transA, n.attrs.transB);
  const tuned = c.target.tuned?.[matmulShapeKey(geo, c.g.values[a].dtype, c.g.values[b].dtype)];
  // A few rows (a decode step): the matrix-vector kernel, unless a caller or the tuner chose a tile.
  if (!given && !tuned && useMatvec(geo, c.target)) return matvecKernel(n, c, ep, geo);
  const tile = given ?? tuned ?? c.target.matmul;
  const bs = new Bindings(c);
  // B as array<vec4<f32>> where every vec4 is 4 adjacent columns of one row: B not transposed, N
  // and B's offset (so every batch stride) multiples of 4 floats. A binding of its own, so not
  // when A or an output is the same storage (matmul(x, x) binds x once; a writable binding may not
  // alias another one).
  const bRef = c.slot(b).ref;
  const bDtype = c.g.values[b].dtype;
  const bVec4 = tile.vec4 !== false && !geo.transB && geo.n % 4 === 0 && tile.tn % 4 === 0 && bRef.offset % (4 * bytesPerElement[bDtype]) === 0 &&
    ![a, ...n.outputs, ...epilogueValues(ep, c)].some((v) => v === b || c.sameStorage(v, b));
  const A = bs.value(a, false);
  const B = bVec4 ? bs.buffer(bRef, false, bDtype === 'f16' || bDtype === 'bf16' ? `vec4<${bDtype}>` : 'vec4<f32>') : bs.value(b, false);
  const u = new Uniforms();
  const workgroups = launch(geo, tile, u, c.limits);
  const epi = ep.bind(bs, u);
  const code = matmulBody(tile, geo, A, B, epi, bVec4);
  const t = tile;
  const key = `matmul:${t.layout[0]}${t.wgX}x${t.wgY}.${t.tm}x${t.tn}.${geo.transA ? 'T' : 'N'}${geo.transB ? 'T' : bVec4 ? 'V' : 'N'}.b${walkedAxes(geo).length}|${epi.tag}`;
  return kernel(key, bs, u, code, workgroups);
}

export const matmulEmitters = {
  matmul: (n, c) => [matmulKernel(n, c, storeEpilogue(n.outputs[0]))],
} satisfies { readonly matmul: Emitter<'matmul'> };
