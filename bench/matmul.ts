// Matmul tile shapes, measured: `node bin/run-ts.js bench/matmul.ts [sizes...]` times each
// candidate on square f32 matmuls (through the emitter itself, results checked) and prints
// GFLOP/s (2 n^3 / best of 5 times, each from the submit to the queue's completion). The winner
// is what compiler/codegen/wgsl/emit-matmul.ts bakes in (`matmulTile`). Classic 16x16 shared-memory tiling with barriers is here only to be
// compared against. TF.js's tf.matMul (@tensorflow/tfjs-backend-webgpu, bench/tfjs.ts) runs in the
// same rounds on the same adapter, with lomoc's best over it; `--winner` times only matmulTile and
// TF.js, as `npm run bench` does.
//
// Since B is read as vec4s where N allows (every candidate with tn a multiple of 4; 'B by floats'
// is the kernel before), and since runs sleep 80% of their best time before waiting on the queue
// (`--spin`: they don't; Dawn's node binding polls while a wait is pending and took 60-90% of one
// of the 2 cores from lavapipe: 1024, 8x16: 20.5 spinning, 26.9 sleeping first, same run).
// lavapipe (Mesa 25.0.7, LLVM 15, 2 cores, AVX2, no AVX-512; OpenBLAS ~150 GFLOP/s), the machine
// shared with other jobs (load 1.5-2.9), one full run each way, GFLOP/s:
//   | kernel                                     | 256  | 512  | 1024 | --spin: 256 | 512  | 1024 |
//   | 1x1 per thread, 16x16 threads              |  2.2 |  2.7 |  2.6 |             |      |      |
//   | 4x4 per thread, 8x8 threads                | 10.4 |  9.1 | 12.8 |             |      |      |
//   | 8x8 per thread, 8x8 threads                | 15.8 | 20.1 | 19.1 |             |      |      |
//   | 8x8 per thread, 8x1 threads                | 15.0 | 20.2 | 22.9 |             |      |      |
//   | 16x8 per thread, 8x1 threads               | 22.1 | 22.7 | 22.0 |             |      |      |
//   | 8x16 per thread, 8x1, B by floats (before) | 15.4 | 18.6 | 22.0 |        20.6 | 10.8 | 12.7 |
//   | 8x16 per thread, 8x1 threads               | 25.2 | 23.8 | 27.5 |        14.0 | 15.0 | 17.8 |
//   | 8x16 per thread, 8x1 threads, blocked      | 22.6 | 29.1 | 29.7 |        14.4 | 14.6 | 17.6 |
//   | 8x16 per thread, 16x1 threads              | 21.0 | 21.9 | 20.6 |             |      |      |
//   | 16x16 per thread, 8x1 threads (the winner) | 27.9 | 29.1 | 34.4 |        31.9 | 31.7 | 20.0 |
//   | 8x32 per thread, 8x1 threads               | 15.5 | 17.6 | 21.3 |             |      |      |
//   | shared-memory 16x16 tiles, barriers        |  1.2 |  1.1 |  1.2 |             |      |      |
//   | TF.js WebGPU tf.matMul                     |  3.8 |  6.6 |  7.3 |         4.2 |  3.8 |  4.4 |
// Runs differ by +-30% (the B-by-floats row's 20.6 at 256 is one); A/B runs of the two 8x16
// kernels alone, interleaved, in the quieter moments, gave B by floats 15.5-15.8 and vec4
// 18.6-20.5 at 1024 spinning, 23.4 and 26.9 sleeping. 16x16 leads at 1024 in every run (21-34), with a compile of 3.9 s against 2.1 s
// per shader (MESA_SHADER_CACHE_DISABLE) and 16 x 128 outputs per workgroup on small matrices. A
// later run on a quiet machine, all candidates: 16x16 34.1 / 32.3 / 29.5, 8x16 18.9 / 24.8 / 27.0,
// 8x16 blocked 25.5 / 23.7 / 29.0, TF.js 4.2 / 7.5 / 7.0; so the cpu kernel target
// (compiler/codegen/wgsl/target.ts) now takes 16x16. Losers: A read as vec4s along k
// with k unrolled by 4 (2.5x slower, with B by floats or vec4), 4x16 and 16x8 per thread, 16 threads
// in x; earlier, unrolling k (2, 4) and sizes and strides as uniforms instead of baked transposes
// (10-50% slower). LP_NUM_THREADS=4 (2 cores) beat the default 2 when spinning (vec4 8x16 at 1024:
// 14.4 with 1 thread, 18.6 with 2, 22.9 with 4), the polling thread taking a smaller share.
//
// transB ("NT", `--nt`: C = A B^T at the gpt small step's shapes, MxKxN meaning [M, K] x [N, K]^T;
// `MxKxNnn` times the same shape NN; `--rounds R`). The NT kernel reads B by floats (B[n, k] along
// k is contiguous per column, not across lanes). Variants of emit-matmul.ts tried against it, all
// in one process, interleaved, best of 10 / 15 rounds, GFLOP/s (two runs where two numbers; load 2.5-3.8):
//   | 16x16, 8x1 threads                        | 1024x128x256 | 1024x384x128 | 1024x512x128 | 1024x128x512 | 512  | 1024 |
//   | B by floats (the kernel)                  |  19.5 / 19.8 |  19.7 / 18.4 |  15.4 / 16.0 |  19.8 / 16.1 | 17.4 | 13.3 |
//   | B vec4 along k, k unrolled by 4           |  12.3 / 14.2 |  11.9 / 14.5 |  16.1 / 15.2 |  12.1 / 15.0 | 15.0 | 15.1 |
//   | same, a column at a time (1 vec4 live)    |  13.1 / 13.2 |  14.6 / 10.9 |  12.7 / 14.3 |  12.9 / 11.2 | 13.0 | 14.0 |
//   | A and B vec4 along k, a column at a time  |  15.0 / 15.7 |  15.7 / 14.5 |  17.0 / 14.3 |  15.7 / 16.0 | 16.3 | 16.4 |
//   | B by floats, k start rotated 16 per lane  |  19.7 / 19.3 |  19.4 / 21.1 |  20.5 / 14.3 |  16.1 / 19.6 | 20.5 | 19.1 |
//   | same, blocked columns                     |  17.7 / 16.5 |  21.1 / 21.1 |  18.3 / 18.3 |  17.8 / 18.3 | 19.8 | 19.3 |
// So no vec4 path for transB: 20-40% slower at every gpt shape (8x16, 16x8, 4x16 and 8x8 per
// thread with vec4s along k were slower still, 3-14). Starting each lane's k loop 16 floats
// further (against L1 set conflicts: the rows of B are K floats apart, 4 KiB at K = 1024) won at
// 1024 (13.3 -> 19.1, and 10.9 -> 17.0 in another run) but was mixed at the gpt shapes (-19% to
// +34% run to run), so it is not in either. Other tiles for NT, B by floats, one run of 10 rounds:
// 16x16 blocked, 8x16, 16x8, 32x8 within noise of 16x16 (e.g. 1024x384x128: 19.2 / 20.4 / 21.8 /
// 19.3 / 15.2), 8x8 slower (8.4-16.2): no `matmulNT` tile either. NT against NN at the same
// shape, same run: 1024x128x384 13.1 NT, 16.3 NN, so transposing B first would gain little.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { matmulKernel, matmulTile, storeEpilogue, type MatmulTile } from '../compiler/codegen/wgsl/emit-matmul.ts';
import { defaultLimits, type EmitContext } from '../compiler/codegen/wgsl/emitter.ts';
import { kernelTargets } from '../compiler/codegen/wgsl/target.ts';
import { GraphBuilder } from '../compiler/ir/builder.ts';
import { byteSize } from '../compiler/ir/shape.ts';
import type { Graph, NodeOf } from '../compiler/ir/types.ts';
import { isSoftwareAdapter } from '../contract/adapter-kind.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { loadTfjs } from './tfjs.ts';

export const candidates: readonly MatmulTile[] = [
  { wgX: 8, wgY: 1, tm: 8, tn: 16, layout: 'interleaved', vec4: false },
  { wgX: 16, wgY: 16, tm: 1, tn: 1, layout: 'interleaved' },
  { wgX: 16, wgY: 16, tm: 2, tn: 2, layout: 'interleaved' },
  { wgX: 8, wgY: 8, tm: 4, tn: 4, layout: 'interleaved' },
  { wgX: 8, wgY: 8, tm: 4, tn: 4, layout: 'blocked' },
  { wgX: 16, wgY: 16, tm: 4, tn: 4, layout: 'interleaved' },
  { wgX: 8, wgY: 8, tm: 8, tn: 8, layout: 'interleaved' },
  // One SIMD row of invocations (lavapipe runs 8 lanes): A's loads are the same for every lane.
  { wgX: 8, wgY: 1, tm: 4, tn: 16, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 8, tn: 8, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 16, tn: 8, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 8, tn: 16, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 8, tn: 16, layout: 'blocked' },
  { wgX: 16, wgY: 1, tm: 8, tn: 16, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 16, tn: 16, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 8, tn: 32, layout: 'interleaved' },
];

const sharedTiled = (t: number) => `struct U { m: u32, k: u32, n: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> ta: array<f32, ${t * t}>;
var<workgroup> tb: array<f32, ${t * t}>;
@compute @workgroup_size(${t}, ${t}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * ${t}u + lid.y;
  let col = wid.x * ${t}u + lid.x;
  var acc = 0.0;
  for (var l0 = 0u; l0 < u.k; l0 = l0 + ${t}u) {
    ta[lid.y * ${t}u + lid.x] = select(0.0, A[row * u.k + l0 + lid.x], row < u.m && l0 + lid.x < u.k);
    tb[lid.y * ${t}u + lid.x] = select(0.0, B[(l0 + lid.y) * u.n + col], l0 + lid.y < u.k && col < u.n);
    workgroupBarrier();
    for (var l = 0u; l < ${t}u; l = l + 1u) { acc = fma(ta[lid.y * ${t}u + l], tb[l * ${t}u + lid.x], acc); }
    workgroupBarrier();
  }
  if (row < u.m && col < u.n) { C[row * u.n + col] = acc; }
}
`;

interface Kernel {
  readonly name: string;
  readonly code: string;
  readonly uniforms: readonly number[];
  readonly workgroups: readonly [number, number, number];
}

const tileName = (t: MatmulTile) =>
  `${t.tm}x${t.tn} per thread, ${t.wgX}x${t.wgY} threads, ${t.layout}${t.vec4 === false ? ', B by floats' : ''}`;

/** One timed matmul: [m, k] x [k, n], or x [n, k]^T with transB. A number is a square NN one. */
export interface MatmulDims {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly transB: boolean;
}
const dimsOf = (s: number | MatmulDims): MatmulDims => (typeof s === 'number' ? { m: s, k: s, n: s, transB: false } : s);
const dimsName = (s: number | MatmulDims) => (typeof s === 'number' ? `${s}` : `${s.m}x${s.k}x${s.n} ${s.transB ? 'NT' : 'NN'}`);

/** The transB candidates: tiles of the cpu target's shape family (B is read by floats when transposed). */
export const ntCandidates: readonly MatmulTile[] = [
  matmulTile,
  { ...matmulTile, layout: 'blocked' },
  { wgX: 8, wgY: 1, tm: 8, tn: 16, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 16, tn: 8, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 8, tn: 8, layout: 'interleaved' },
  { wgX: 8, wgY: 1, tm: 32, tn: 8, layout: 'interleaved' },
];

/**
 * C = A B at `size`, through the emitter itself: binding k is A, B, C for k = 0, 1, 2. `winner`:
 * only the tile lomoc bakes in (`matmulTile`), as `npm run bench` times it.
 */
function kernels(dims: MatmulDims, winner = false, square = true): Kernel[] {
  const { m, k: kk, n: nn, transB } = dims;
  const b = new GraphBuilder('bench');
  const loc = { file: 'bench/matmul.ts', line: 1, col: 1 };
  const [x, y] = [b.value([m, kk], 'f32', 'input', loc), b.value(transB ? [nn, kk] : [kk, nn], 'f32', 'input', loc)];
  b.node('matmul', [x, y], { transA: false, transB }, loc, 'forward');
  const g: Graph = { name: 'bench', values: b.values, nodes: b.nodes, inputs: [], params: [], loss: 2 };
  const ctx: EmitContext = {
    g,
    limits: defaultLimits,
    target: kernelTargets.cpu, // its tile is passed explicitly below
    slot: (v) => ({ value: v, ref: { arena: v, offset: 0, bytes: byteSize(g.values[v].shape, 'f32') }, shape: g.values[v].shape, dtype: 'f32' }),
    scratch: () => { throw new Error('no scratch'); },
    sameStorage: (p, q) => p === q,
  };
  const n = g.nodes[0] as NodeOf<'matmul'>;
  const tiles = winner ? [matmulTile] : transB ? ntCandidates : square ? candidates : [matmulTile];
  const out: Kernel[] = tiles.map((t) => ({ name: `lomoc ${tileName(t)}${winner ? ' (matmulTile)' : ''}`, ...matmulKernel(n, ctx, storeEpilogue(2), t) }));
  if (winner || transB || !square) return out;
  const size = m;
  const groups = Math.ceil(size / 16);
  out.push({ name: 'shared-memory 16x16 tiles, barriers', code: sharedTiled(16), uniforms: [size, size, size], workgroups: [groups, groups, 1] });
  return out;
}

export interface MatmulBench {
  readonly adapter: string;
  readonly sizes: readonly (number | MatmulDims)[];
  /** GFLOP/s by kernel name, one per size. */
  readonly rows: readonly { readonly name: string; readonly gflops: readonly number[] }[];
  /** The peers, timed in the same rounds: GFLOP/s per size, or why a peer has no numbers. */
  readonly peers: readonly { readonly name: string; readonly gflops?: readonly number[]; readonly missing?: string }[];
}

export interface MatmulOptions {
  /** Only lomoc's baked-in tile (`npm run bench`), not every candidate. */
  readonly winnerOnly?: boolean;
  /** Time TF.js's WebGPU tf.matMul beside the kernels (default true). */
  readonly tfjs?: boolean;
  /** Wait on the queue from the submit on, the host thread polling all along (default false: sleep first). */
  readonly spin?: boolean;
  /** Only the kernels whose names contain one of these (`--only 8x16,16x16`). */
  readonly only?: readonly string[];
}

/**
 * Times every kernel at each size. The machine is shared and noisy, so rounds interleave the
 * kernels and each keeps its best (least disturbed) time. TF.js's tf.matMul on the WebGPU backend
 * (its own Dawn device on the same adapter) runs in the same rounds, timed the same way: from the
 * call to the queue's completion (`submitQueue` + `onSubmittedWorkDone`), no readback, its result
 * checked against the same probes first.
 */
export async function benchMatmul(sizes: readonly (number | MatmulDims)[] = [256, 512, 1024], rounds = 5, opts: MatmulOptions = {}): Promise<MatmulBench> {
  const { winnerOnly = false, spin = false } = opts;
  // TF.js only times square NN matmuls here.
  const tfjs = (opts.tfjs ?? true) && sizes.every((s) => typeof s === 'number');
  // Waiting on the queue (onSubmittedWorkDone) keeps Dawn's node binding polling: the main thread
  // then burns ~60-90% of a core while lavapipe's 2 threads compute, on a 2-core machine. So after
  // the first round each run sleeps 80% of its best time so far before it starts waiting (TF.js
  // too); `spin`: never sleep (the numbers before this change).
  // Below a few milliseconds the timer's granularity would cost more than the polling.
  const { device, adapter, description } = await acquireDevice();
  // Only on software adapters: on a GPU the host has cores to spare, and the wake-up costs time.
  const sleeps = !spin && isSoftwareAdapter(adapter.info);
  const lead = (best: number) => (!sleeps || !Number.isFinite(best) || best < 5 ? 0 : 0.8 * best);
  const results = new Map<string, number[]>();
  let peer: Awaited<ReturnType<typeof loadTfjs>> | undefined;
  let peerMissing: string | undefined;
  if (tfjs) {
    try {
      peer = await loadTfjs();
    } catch (e) {
      peerMissing = `TF.js WebGPU failed to start: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  const peerName = peer
    ? `TF.js WebGPU tf.matMul (${peer.version}${peer.adapter === description ? ', same adapter' : `; ${peer.adapter}`})`
    : 'TF.js WebGPU tf.matMul';
  const peerGflops: number[] = [];
  for (const sizeOrDims of sizes) {
    const dims = dimsOf(sizeOrDims);
    const { m, k: kk, n: nn } = dims;
    const size = m; // square NN: the side (TF.js)
    const flops = 2 * m * kk * nn;
    const bytes = Math.max(m * kk, kk * nn, m * nn) * 4;
    const mk = (usage: number) => device.createBuffer({ size: bytes, usage });
    const [a, b, c] = [mk(GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST), mk(GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST), mk(GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)];
    const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const data = Float32Array.from({ length: bytes / 4 }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    device.queue.writeBuffer(a, 0, data);
    device.queue.writeBuffer(b, 0, data);
    // A few elements of C = A B (or A B^T), in doubles: every kernel's result is checked before it is timed.
    const probes = [0, nn - 1, m * nn - 1, Math.floor(m * nn / 2) + 3].map((e) => {
      const [i, j] = [Math.floor(e / nn), e % nn];
      let acc = 0;
      for (let l = 0; l < kk; l++) acc += data[i * kk + l] * data[dims.transB ? j * kk + l : l * nn + j];
      return [e, acc];
    });
    const check = async (name: string) => {
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(c, 0, staging, 0, bytes);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const got = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      for (const [e, want] of probes)
        if (!(Math.abs(got[e] - want) <= 1e-3 * (1 + Math.abs(want)))) throw new Error(`${name} at ${dimsName(sizeOrDims)}: C[${e}] = ${got[e]}, expected ${want}`);
    };
    const runs = kernels(dims, winnerOnly, typeof sizeOrDims === 'number').filter((k) => !opts.only || opts.only.some((o) => k.name.includes(o))).map((k) => {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: k.code });
      const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const ubuf = device.createBuffer({ size: Math.max(16, Math.ceil((k.uniforms.length * 4) / 16) * 16), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(ubuf, 0, Uint32Array.from(k.uniforms));
      const bind = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [a, b, c, ubuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      /** Milliseconds per matmul of `reps` in one submit, the host sleeping `leadMs` before it waits. */
      const run = async (leadMs = 0, reps = 1) => {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(k.workgroups[0], k.workgroups[1], k.workgroups[2]);
        pass.end();
        const t0 = performance.now();
        device.queue.submit([enc.finish()]);
        if (leadMs > 0) await new Promise((r) => setTimeout(r, leadMs));
        await device.queue.onSubmittedWorkDone();
        return (performance.now() - t0) / reps;
      };
      const error = device.popErrorScope().then((e) => {
        if (e) throw new Error(`${k.name}: ${e.message}`);
      });
      return { name: k.name, run, ubuf, best: Infinity, reps: 1, error };
    });
    for (const r of runs) {
      await r.error;
      device.queue.writeBuffer(c, 0, new Float32Array(m * nn).fill(NaN));
      await r.run(); // warm-up: compiles the pipeline
      await check(r.name);
      // A fast GPU finishes a matmul in well under a millisecond: repeat it in one submit so each
      // timing spans ~20 ms, and submit and wake-up latency do not count as matmul time.
      r.reps = Math.max(1, Math.min(256, Math.floor(20 / (await r.run()))));
    }
    let tfRun: ((leadMs?: number) => Promise<number>) | undefined;
    let tfBest = Infinity;
    const tfA = peer?.tf.tensor2d(data.subarray(0, size * size), [size, size]);
    if (peer && tfA) {
      const { tf, sync } = peer;
      const warm = tf.matMul(tfA, tfA);
      const got = await warm.data(); // warm-up (compiles TF.js's shader), and the check
      warm.dispose();
      for (const [e, want] of probes)
        if (!(Math.abs(got[e] - want) <= 1e-3 * (1 + Math.abs(want)))) throw new Error(`TF.js matMul at ${size}: C[${e}] = ${got[e]}, expected ${want}`);
      tfRun = async (leadMs = 0) => {
        await sync();
        const t0 = performance.now();
        const out = tf.matMul(tfA, tfA);
        await sync(leadMs);
        const ms = performance.now() - t0;
        out.dispose();
        return ms;
      };
    }
    for (let round = 0; round < rounds; round++) {
      for (const r of runs) r.best = Math.min(r.best, await r.run(lead(r.best * r.reps), r.reps));
      if (tfRun) tfBest = Math.min(tfBest, await tfRun(lead(tfBest)));
    }
    tfA?.dispose();
    if (tfRun) peerGflops.push((2 * size ** 3) / (tfBest / 1000) / 1e9);
    for (const r of runs) {
      if (!results.has(r.name)) results.set(r.name, []);
      results.get(r.name)!.push(flops / (r.best / 1000) / 1e9);
      r.ubuf.destroy();
    }
    for (const buf of [a, b, c, staging]) buf.destroy();
  }
  device.destroy();
  const peers = tfjs ? [peer ? { name: peerName, gflops: peerGflops } : { name: peerName, missing: peerMissing }] : [];
  return { adapter: description, sizes, rows: [...results].map(([name, gflops]) => ({ name, gflops })), peers };
}

export function formatMatmulBench(r: MatmulBench): string {
  const head = `| kernel | ${r.sizes.map(dimsName).join(' | ')} |\n|---|${r.sizes.map(() => '---:').join('|')}|`;
  const best = r.sizes.map((_, i) => Math.max(...r.rows.map((row) => row.gflops[i])));
  const rows = r.rows.map(
    (row) => `| ${row.name} | ${row.gflops.map((g, i) => (g === best[i] ? `**${g.toFixed(2)}**` : g.toFixed(2))).join(' | ')} |`,
  );
  const peerRows = r.peers.map((p) =>
    p.gflops ? `| ${p.name} | ${p.gflops.map((g) => g.toFixed(2)).join(' | ')} |` : `| ${p.name}: not measured (${p.missing}) | ${r.sizes.map(() => '').join(' | ')} |`);
  const ratioRows = r.peers.flatMap((p) =>
    p.gflops ? [`| lomoc's best / ${p.name.split(' (')[0]} | ${best.map((b, i) => `${(b / p.gflops![i]).toFixed(2)}x`).join(' | ')} |`] : []);
  return [`GFLOP/s, f32 matmul (a number: square, MxKxN NT: [M, K] x [N, K]^T), best of the rounds; lomoc on ${r.adapter}`, '', head, ...rows, ...peerRows, ...ratioRows].join('\n');
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href.endsWith('/bench/matmul.ts')) {
  // `--winner`: only lomoc's baked-in tile (and the peers), as `npm run bench` runs it.
  const winnerOnly = process.argv.includes('--winner');
  const spin = process.argv.includes('--spin');
  const at = process.argv.indexOf('--only');
  const only = at > 0 ? process.argv[at + 1].split(',') : undefined;
  // `--nt`: transB at the gpt small step's shapes and squares (MxKxN args: [M, K] x [N, K]^T); `--rounds R`.
  const nt = process.argv.includes('--nt');
  const rAt = process.argv.indexOf('--rounds');
  const rounds = rAt > 0 ? Number(process.argv[rAt + 1]) : 5;
  const args = process.argv.slice(2).filter((a, i, all) => all[i - 1] !== '--only' && all[i - 1] !== '--rounds' && !a.startsWith('--'));
  const parsed = args.map((a): number | MatmulDims => {
    const d = a.replace(/nn$/, '').split('x').map(Number);
    return d.length === 3 ? { m: d[0], k: d[1], n: d[2], transB: !a.endsWith('nn') } : nt ? { m: d[0], k: d[0], n: d[0], transB: true } : d[0];
  });
  const ntDefault: MatmulDims[] = [[1024, 128, 384], [1024, 512, 128], [1024, 128, 256], [512, 512, 512], [1024, 1024, 1024]].map(([m, k, n]) => ({ m, k, n, transB: true }));
  const sizes = parsed.length ? parsed : nt ? ntDefault : undefined;
  console.log(formatMatmulBench(await benchMatmul(sizes, rounds, { winnerOnly, spin, only })));
  process.exit(0);
}
