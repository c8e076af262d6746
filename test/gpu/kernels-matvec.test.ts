// The matrix-vector kernel (emit-matvec.ts: matmuls of at most maxRows rows, a decode step's)
// matches the reference executor's matmul (invariant 7): 1..4 rows, K and N from 1 to past 256
// and off every multiple of 4 and of the workgroup, transA / transB, batch axes that broadcast,
// on both kernel targets (the gpu one's workgroup reduction runs on lavapipe too); f16 stored
// natively and packed (the same bits) and bf16 against the reference's emulation.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultLimits, type Limits } from '../../compiler/codegen/wgsl/emitter.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { builtinOptimizers } from '../../compiler/optimizers/table.ts';
import { updateAttrs, updateInputs } from '../../compiler/optimizers/update-layout.ts';
import { fuse } from '../../compiler/passes/fuse.ts';
import type { DType, Graph, ValueId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { bothTargets, runOnGpu, scratchFor } from './harness.ts';
import { expectWithin, random, runs, seed, type Tolerance } from './kernel-check.ts';

interface Case {
  readonly a: readonly number[];
  readonly b: readonly number[];
  readonly transA: boolean;
  readonly transB: boolean;
}

/**
 * The kernel sums K products in f32 (per thread, then across threads in a fixed order); the
 * reference in doubles. Partial sums of N(0, 1) products stay within a few sqrt(K), so K * 2^-24
 * times that bounds the error; 2e-6 * K + 2e-5 holds it with room.
 */
const dot = (k: number): Tolerance => ({ abs: 2e-6 * k + 2e-5, rel: 1e-5 });
/** One 16-bit step more: the stored result's rounding may land one step apart (kernels-f16.test.ts). */
const halfStep = (t: Tolerance, dtype: DType): Tolerance => ({ abs: t.abs + 2 ** -24, rel: t.rel + (dtype === 'bf16' ? 2 ** -7 : 2 ** -10) });

const operand = (batch: readonly number[], rows: number, cols: number, trans: boolean) => [...batch, ...(trans ? [cols, rows] : [rows, cols])];

function graphOf(cases: readonly Case[], s: number, dtype: DType): { graph: Graph; outs: ValueId[]; inputs: Record<string, HostTensor> } {
  const g = new TestGraph('matvecs');
  const inputs: Record<string, HostTensor> = {};
  const outs = cases.map((c, i) => {
    inputs[`a${i}`] = random(c.a, s + 2 * i);
    inputs[`b${i}`] = random(c.b, s + 2 * i + 1);
    return g.one('matmul', [g.input(`a${i}`, c.a, dtype), g.input(`b${i}`, c.b, dtype)], { transA: c.transA, transB: c.transB });
  });
  return { graph: g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' })), outs, inputs };
}

/** The shader keys of the matmul dispatches `cases` lower to. */
function keysOf(cases: readonly Case[], target: KernelTarget, dtype: DType = 'f32', limits?: Limits): string[] {
  const { graph, outs } = graphOf(cases, 0, dtype);
  const fusion = noFusion(graph.nodes.length);
  const program = lowerStep(graph, planMemory(graph, { fusion, scratch: scratchFor(graph, fusion, target), keep: outs }), fusion, target, limits);
  return program.dispatches.map((d) => d.shader).filter((k) => k.startsWith('mat'));
}

/** Runs every case as one matmul node of one graph; each output within `dot(K)` of the reference (plus a 16-bit step). */
async function check(cases: readonly Case[], s: number, target: KernelTarget, dtype: DType = 'f32', limits?: Limits): Promise<void> {
  expect(keysOf(cases, target, dtype, limits).every((k) => k.startsWith('matvec:')), 'every case runs the matrix-vector kernel').toBe(true);
  const { graph, outs, inputs } = graphOf(cases, s, dtype);
  const feeds = { inputs, params: {} };
  const ref = execute(graph, feeds, 'f32');
  const gpu = await runOnGpu(graph, feeds, outs, undefined, limits, target);
  cases.forEach((c, i) => {
    const k = c.transA ? c.a.at(-2)! : c.a.at(-1)!;
    const tol = dtype === 'f32' ? dot(k) : halfStep(dot(k), dtype);
    expectWithin(gpu.get(outs[i])!, ref.values[outs[i]]!.data, tol, `matvec ${JSON.stringify(c)} ${dtype} (${target.name} target)`);
  });
}

const rows = fc.integer({ min: 1, max: 4 });
const size = fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constantFrom(1, 3, 4, 8, 31, 33, 64, 65, 128, 257));
const plain: fc.Arbitrary<Case> = fc.tuple(rows, size, size, fc.boolean(), fc.boolean()).map(([m, k, n, transA, transB]) => ({
  a: operand([], m, k, transA), b: operand([], k, n, transB), transA, transB,
}));
/** Output batch axes, and each operand's: a suffix of them with some axes set to 1. */
const batched: fc.Arbitrary<Case> = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 })
  .chain((out) => {
    const side = fc.tuple(fc.integer({ min: 0, max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }))
      .map(([drop, ones]) => out.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d)));
    const dim = fc.integer({ min: 1, max: 20 });
    return fc.tuple(side, side, rows, dim, dim, fc.boolean(), fc.boolean());
  })
  .map(([ba, bb, m, k, n, transA, transB]) => ({ a: operand(ba, m, k, transA), b: operand(bb, k, n, transB), transA, transB }));

describe('matrix-vector kernel: chosen for matmuls of few rows', () => {
  it('matmuls of 1..maxRows rows lower to matvec, more rows to the tiled kernel, and matvec null keeps the tile', () => {
    for (const target of bothTargets) {
      const max = target.matvec!.maxRows;
      const at = (m: number, t: KernelTarget = target) => keysOf([{ a: [m, 8], b: [8, 8], transA: false, transB: false }], t)[0].split(':')[0];
      expect([1, max, max + 1].map((m) => at(m))).toEqual(['matvec', 'matvec', 'matmul']);
      expect(at(1, { ...target, matvec: null })).toBe('matmul');
    }
  });

  it('A and B read as vec4s where K, N and the offsets allow, as scalars otherwise', () => {
    const tag = (c: Case) => /\.a(\d)b(\d)k(\d)\./.exec(keysOf([c], kernelTargets.cpu)[0])!.slice(1).join('');
    expect(tag({ a: [1, 8], b: [8, 12], transA: false, transB: false })).toBe('444'); // A along K, B along N
    expect(tag({ a: [1, 8], b: [12, 8], transA: false, transB: true })).toBe('444'); // A and B along K
    expect(tag({ a: [1, 7], b: [7, 12], transA: false, transB: false })).toBe('141'); // K odd: A scalar, B still vec4 along N
    expect(tag({ a: [1, 8], b: [8, 13], transA: false, transB: false })).toBe('414'); // N odd: B scalar
    expect(tag({ a: [1, 7], b: [13, 7], transA: false, transB: true })).toBe('111'); // K odd, transposed B: all scalar
    expect(tag({ a: [8, 2], b: [8, 12], transA: true, transB: false })).toBe('141'); // transA: A scalar
  });
});

// The gpu target's shaders (a barrier each) take lavapipe seconds to compile: fewer runs of it.
describe.each(bothTargets)('matrix-vector kernel ($name target)', (target) => {
  const n = target.name === 'cpu' ? 4 : 2;
  it('1..4 rows, K and N 1..257, transA and transB: equals the reference matmul', async () => {
    await fc.assert(fc.asyncProperty(fc.array(plain, { minLength: 6, maxLength: 6 }), seed, (cases, s) => check(cases, s, target)), runs(n));
  });

  it('batch axes broadcast (missing or of size 1 in either operand)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(batched, { minLength: 5, maxLength: 5 }), seed, (cases, s) => check(cases, s, target)), runs(n - 1));
  });

  it('a long K (1031), a wide N (1031), the vec4 and scalar paths, and matmul(x, x)', async () => {
    await check([
      { a: [1, 1032], b: [1032, 12], transA: false, transB: false },
      { a: [2, 1031], b: [5, 1031], transA: false, transB: true },
      { a: [1, 16], b: [1031, 16], transA: false, transB: true },
      { a: [3, 16], b: [16, 1031], transA: false, transB: false },
      { a: [9, 4], b: [9, 20], transA: true, transB: false },
    ], 5, target);
    const g = new TestGraph('square');
    const x = g.input('x', [4, 4]);
    const y = g.one('matmul', [x, x], { transA: false, transB: true });
    const graph = g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' }));
    const feeds = { inputs: { x: random([4, 4], 9) }, params: {} };
    expectWithin((await runOnGpu(graph, feeds, [y], undefined, undefined, target)).get(y)!, execute(graph, feeds, 'f32').values[y]!.data, dot(4), 'matmul(x, x^T)');
  });

  it('more workgroups than one dispatch dimension holds, and a workgroup storage limit that halves wgK', async () => {
    const cases: Case[] = [{ a: [3, 2, 40], b: [40, 300], transA: false, transB: false }, { a: [4, 24], b: [50, 24], transA: false, transB: true }];
    await check(cases, 6, target, 'f32', { ...defaultLimits, maxWorkgroupsPerDimension: 3 });
    const small = { ...defaultLimits, maxWorkgroupStorageBytes: 2048 };
    if (target.matvec!.n.wgK > 1) expect(keysOf(cases, target, 'f32', small)[0]).toMatch(/^matvec:n16x4\./);
    await check(cases, 7, target, 'f32', small);
  });

  it('f16 (native) and bf16 storage: equals the reference emulation, vec4 and scalar paths', async () => {
    const cases: Case[] = [
      { a: [1, 64], b: [64, 36], transA: false, transB: false },
      { a: [2, 33], b: [33, 13], transA: false, transB: false },
      { a: [3, 64], b: [21, 64], transA: false, transB: true },
      { a: [5, 4], b: [7, 5], transA: true, transB: true },
    ];
    await check(cases, 8, target, 'f16');
    await check(cases, 9, target, 'bf16');
  });

  it('packed f16 gives the same bits as native f16', async () => {
    const cases: Case[] = [
      { a: [1, 64], b: [64, 36], transA: false, transB: false },
      { a: [4, 33], b: [33, 13], transA: false, transB: false },
      { a: [3, 64], b: [21, 64], transA: false, transB: true },
      { a: [2, 7], b: [9, 7], transA: false, transB: true },
    ];
    const packed = { ...target, half: 'packed' as const };
    expect(keysOf(cases, packed, 'f16').every((k) => k.startsWith('matvec:') && k.includes('|packed:'))).toBe(true);
    const { graph, outs, inputs } = graphOf(cases, 10, 'f16');
    const feeds = { inputs, params: {} };
    const [a, b] = [await runOnGpu(graph, feeds, outs, undefined, undefined, target), await runOnGpu(graph, feeds, outs, undefined, undefined, packed)];
    for (const v of outs) expect(Array.from(b.get(v)!)).toEqual(Array.from(a.get(v)!));
  });
});

describe('matrix-vector kernel with the fused epilogues', () => {
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });
  it.each(bothTargets)('x W + b then GELU (1 row), and LOMO\'s dW = x^T dy + SGD update in place (3-row weight): equal the reference ($name target)', async (target) => {
    const t = new TestGraph('fused');
    const [x, w, b] = [t.input('x', [1, 37]), t.input('w', [37, 20]), t.input('b', [20])];
    const y = t.one('gelu', [t.one('add', [t.one('matmul', [x, w], { transA: false, transB: false }), b], {})], {});
    // A weight of 3 rows: its gradient x^T dy has 3 rows, so the LOMO kernel is a matrix-vector one.
    const [xs, dy] = [t.input('xs', [9, 3]), t.input('dy', [9, 24])];
    const p = t.param('p', [3, 24], { kind: 'zeros' });
    const [lr, wd] = [t.input('lr', []), t.input('weightDecay', [])];
    const [grad] = t.b.node('matmul', [xs, dy], { transA: true, transB: false }, loc, 'backward', 'grad');
    const attrs = updateAttrs(builtinOptimizers.sgd.rule, { clipValue: null, scaled: false, master: false });
    const [next] = t.b.node('optimizerUpdate', updateInputs(attrs, { p, g: grad, lr, wd }), attrs, loc, 'update', ['update']);
    const g = { ...t.finish(t.one('fill', [], { value: 0, shape: [], dtype: 'f32' })), grads: { p: grad }, updates: { p: next } };
    const fusion = fuse(g, { matmulUpdate: true, elementwise: true, matmulEpilogue: true });
    expect(fusion.groups.map((grp) => grp.kind)).toEqual(expect.arrayContaining(['matmulEpilogue', 'matmulUpdate']));
    const feeds = {
      inputs: { x: random([1, 37], 1), w: random([37, 20], 2), b: random([20], 3), xs: random([9, 3], 4), dy: random([9, 24], 5), lr: scalar(0.1), weightDecay: scalar(0.01) },
      params: { p: random([3, 24], 6) },
    };
    const ref = execute(g, feeds, 'f32');
    const program = lowerStep(g, planMemory(g, { fusion, scratch: scratchFor(g, fusion, target), keep: [y, p] }), fusion, target);
    expect(program.dispatches.filter((d) => d.shader.startsWith('mat')).map((d) => d.shader.split(':')[0])).toEqual(['matvec', 'matvec']);
    const gpu = await runOnGpu(g, feeds, [y, p], fusion, undefined, target);
    expectWithin(gpu.get(y)!, ref.values[y]!.data, dot(37), 'gelu(x W + b)');
    expectWithin(gpu.get(p)!, ref.values[next]!.data, dot(9), 'p - lr (x^T dy + wd p)');
  });
});
