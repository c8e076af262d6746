// The matmul kernel matches the reference executor (invariant 7): sizes 1..70 on every axis, so
// below, at and past the tile edges; transA / transB; batch axes that broadcast (missing or of
// size 1 in either operand); more workgroups than one dispatch dimension holds.
// Each property run puts all its cases in one graph: lavapipe compiles a matmul pipeline in
// about a second, and one program compiles each distinct shader once.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matmulGeometry } from '../../compiler/codegen/wgsl/emit-matmul.ts';
import { defaultLimits } from '../../compiler/codegen/wgsl/emitter.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets, matmulCandidates, matmulShapeKey, targetNames, type KernelTarget, type MatmulTile } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { execute } from '../../compiler/reference/execute.ts';
import { TestGraph } from '../reference/graphs.ts';
import { bothTargets, runOnGpu } from './harness.ts';
import { expectWithin, random, runs, seed, type Tolerance } from './kernel-check.ts';

/**
 * The reference sums K products in doubles and rounds once; the kernel accumulates in f32 with
 * one fma rounding per product. For K <= 70 and N(0, 1) inputs the partial sums stay below ~30,
 * so the error stays well under 70 * 2^-24 * 30 ~ 1.3e-4.
 */
const tol: Tolerance = { abs: 1.5e-4, rel: 1e-5 };

interface Case {
  readonly a: readonly number[];
  readonly b: readonly number[];
  readonly transA: boolean;
  readonly transB: boolean;
}

/** A [..., rows, cols] operand shape, its last two axes swapped when transposed. */
const operand = (batch: readonly number[], rows: number, cols: number, trans: boolean) => [...batch, ...(trans ? [cols, rows] : [rows, cols])];

/** Runs every case as one matmul node of one graph; compares each output with the reference. */
async function check(cases: readonly Case[], s: number, target: KernelTarget, opts: { tol?: Tolerance; limits?: typeof defaultLimits } = {}): Promise<void> {
  const g = new TestGraph('matmuls');
  const inputs: Record<string, HostTensor> = {};
  const outs = cases.map((c, i) => {
    inputs[`a${i}`] = random(c.a, s + 2 * i);
    inputs[`b${i}`] = random(c.b, s + 2 * i + 1);
    return g.one('matmul', [g.input(`a${i}`, c.a), g.input(`b${i}`, c.b)], { transA: c.transA, transB: c.transB });
  });
  const graph = g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' }));
  const feeds = { inputs, params: {} };
  const ref = execute(graph, feeds, 'f32');
  const gpu = await runOnGpu(graph, feeds, outs, undefined, opts.limits, target);
  cases.forEach((c, i) => expectWithin(gpu.get(outs[i])!, ref.values[outs[i]]!.data, opts.tol ?? tol, `matmul ${JSON.stringify(c)} (${target.name} target)`));
}

/** Rows and columns of output one workgroup of `target`'s tile covers. */
const tileOf = ({ matmul: t }: KernelTarget) => ({ tileM: t.tm * t.wgY, tileN: t.tn * t.wgX });
/** 1..70, often on the tile edges. */
const sizeFor = (target: KernelTarget) => {
  const { tileM, tileN } = tileOf(target);
  return fc.oneof(
    fc.integer({ min: 1, max: 70 }),
    fc.constantFrom(...new Set([1, tileM - 1, tileM, tileM + 1, Math.min(70, tileN - 1), Math.min(70, tileN + 1)].filter((x) => x >= 1))),
  );
};

const plainFor = (size: fc.Arbitrary<number>): fc.Arbitrary<Case> => fc.tuple(size, size, size, fc.boolean(), fc.boolean()).map(([m, k, n, transA, transB]) => ({
  a: operand([], m, k, transA), b: operand([], k, n, transB), transA, transB,
}));

/** Output batch axes, and each operand's: a suffix of them with some axes set to 1. */
const batched: fc.Arbitrary<Case> = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 })
  .chain((out) => {
    const side = fc.tuple(fc.integer({ min: 0, max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }))
      .map(([drop, ones]) => out.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d)));
    const dim = fc.integer({ min: 1, max: 20 });
    return fc.tuple(side, side, dim, dim, dim, fc.boolean(), fc.boolean());
  })
  .map(([ba, bb, m, k, n, transA, transB]) => ({ a: operand(ba, m, k, transA), b: operand(bb, k, n, transB), transA, transB }));

// Every kernel target's tile (8 x 16 per thread on 8 x 1 threads; 8 x 8 on 8 x 8) must be right
// on every adapter, lavapipe included, whichever is faster there. matvec null: matmuls of a few
// rows stay on the tiled kernel here (kernels-matvec.test.ts tests the matrix-vector one).
describe.each(bothTargets.map((t) => ({ ...t, matvec: null })))('matmul kernel ($name target)', (target) => {
  it('2-D: sizes 1..70 on every axis, transA and transB', async () => {
    await fc.assert(fc.asyncProperty(fc.array(plainFor(sizeFor(target)), { minLength: 8, maxLength: 8 }), seed, (cases, s) => check(cases, s, target)), runs(4));
  });

  it('batched: batch axes broadcast (missing or of size 1 in either operand)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(batched, { minLength: 8, maxLength: 8 }), seed, (cases, s) => check(cases, s, target)), runs(4));
  });

  it('size 1 on every axis, and a long inner dimension', async () => {
    await check([
      { a: [1, 1], b: [1, 1], transA: false, transB: false },
      { a: [1, 1, 1], b: [1, 1], transA: true, transB: true },
      { a: [3, 1, 1], b: [1, 1, 1], transA: false, transB: true },
    ], 1, target);
    await check([{ a: [1, 1000], b: [1000, 1], transA: false, transB: false }], 2, target, { tol: { abs: 1e-3, rel: 1e-5 } });
  });

  it('B read as vec4 (N a multiple of 4, B not transposed) and by floats (every other case)', async () => {
    const { tileN } = tileOf(target);
    const cases: Case[] = [
      // vec4: N = 4, 8, a tile and a tile plus 4; M and K off the tile; B broadcast over A's batch, and batched.
      { a: [3, 5], b: [5, 4], transA: false, transB: false },
      { a: [2, 9, 7], b: [7, 8], transA: false, transB: false },
      { a: [17, 3], b: [17, tileN], transA: true, transB: false },
      { a: [2, 1, 6, 3], b: [3, 3, tileN + 4], transA: false, transB: false },
      // floats: N not a multiple of 4, or B transposed.
      { a: [3, 5], b: [5, 6], transA: false, transB: false },
      { a: [2, 9, 7], b: [8, 7], transA: false, transB: true },
    ];
    const vec4 = [true, true, true, true, false, false];
    await check(cases, 4, target);
    // Each case on its own: which path its shader took.
    for (const [i, c] of cases.entries()) {
      const g = new TestGraph('one');
      g.one('matmul', [g.input('a', c.a), g.input('b', c.b)], c);
      const graph = g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' }));
      const fusion = noFusion(graph.nodes.length);
      const code = Object.values(lowerStep(graph, planMemory(graph, { fusion }), fusion, target).shaders).filter((s) => s.includes('acc0_0')).join('');
      expect(code.includes('array<vec4<f32>>'), JSON.stringify(c)).toBe(vec4[i]);
    }
  });

  it('more workgroups than one dispatch dimension holds: the grid folds into 2-D', async () => {
    // maxWorkgroupsPerDimension 3 folds 4 x 2 x 5 = 40 tiles into a 3 x 14 grid, 2 left idle.
    const { tileM, tileN } = tileOf(target);
    await check([{ a: [5, 2 * tileM, 3], b: [3, 2 * tileN], transA: false, transB: false }], 3, target, {
      limits: { ...defaultLimits, maxWorkgroupsPerDimension: 3 },
    });
  });
});

/** `target` with `tile` tuned in for every case's shape: the tile reaches the kernel the way the tuner's table does. */
const tunedFor = (target: KernelTarget, tile: MatmulTile, cases: readonly Case[]): KernelTarget => ({
  ...target,
  tuned: Object.fromEntries(cases.map((c) => [matmulShapeKey(matmulGeometry(c.a, c.b, c.transA, c.transB), 'f32', 'f32'), tile])),
});

// Every tile the tuner may pick (cli/tune.ts), beside the targets' own ones tested above.
const extraCandidates = targetNames.flatMap((name) =>
  matmulCandidates[name].slice(1).map((tile) => ({ name: `${name} ${tile.tm}x${tile.tn} on ${tile.wgX}x${tile.wgY} ${tile.layout}`, target: kernelTargets[name], tile })));

describe.each(extraCandidates)('matmul tuning candidate ($name)', ({ target, tile }) => {
  it('through the tuned table: sizes 1..70, transA and transB, and broadcast batch axes match the reference', async () => {
    const shaped = { ...target, matmul: tile };
    await fc.assert(fc.asyncProperty(fc.array(fc.oneof(plainFor(sizeFor(shaped)), batched), { minLength: 8, maxLength: 8 }), seed, (cases, s) => check(cases, s, tunedFor(target, tile, cases))), runs(2));
  });
});

describe('matmul kernel', () => {

  it('a tuned table picks the tile per shape; shapes not in it keep the target tile', () => {
    const g = new TestGraph('two');
    g.one('matmul', [g.input('a', [5, 7]), g.input('b', [7, 9])], { transA: false, transB: false });
    g.one('matmul', [g.input('c', [5, 7]), g.input('d', [9, 7])], { transA: false, transB: true });
    const graph = g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' }));
    const fusion = noFusion(graph.nodes.length);
    const tile = matmulCandidates.cpu[2];
    const target = { ...kernelTargets.cpu, tuned: { '5x7x9.NN.c1.f32f32': tile } };
    const keys = (t: KernelTarget) => lowerStep(graph, planMemory(graph, { fusion }), fusion, t).dispatches.map((d) => d.shader).filter((k) => k.startsWith('matmul'));
    expect(keys(target)).toEqual(['matmul:b8x1.8x16.NN.b3|store|rrw', 'matmul:i8x1.16x16.NT.b3|store|rrw']);
    expect(keys(kernelTargets.cpu)).toEqual(['matmul:i8x1.16x16.NN.b3|store|rrw', 'matmul:i8x1.16x16.NT.b3|store|rrw']);
  });

  it('batch axes merge when both operands walk them contiguously or both broadcast', () => {
    expect(matmulGeometry([2, 3, 4, 5], [2, 3, 5, 6], false, false).batch).toEqual([{ size: 6, a: 20, b: 30 }]);
    expect(matmulGeometry([2, 3, 4, 5], [5, 6], false, false).batch).toEqual([{ size: 6, a: 20, b: 0 }]);
    expect(matmulGeometry([2, 1, 4, 5], [3, 5, 6], false, false).batch).toEqual([{ size: 2, a: 20, b: 0 }, { size: 3, a: 0, b: 30 }]);
    expect(matmulGeometry([1, 4, 5], [1, 5, 6], false, false)).toMatchObject({ batch: [], count: 1 });
  });

  it('matmul(x, x) binds its one operand once', async () => {
    const g = new TestGraph('square');
    const x = g.input('x', [5, 5]);
    const y = g.one('matmul', [x, x], { transA: false, transB: false });
    const graph = g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' }));
    const feeds = { inputs: { x: random([5, 5], 9) }, params: {} };
    const gpu = await runOnGpu(graph, feeds, [y]);
    expectWithin(gpu.get(y)!, execute(graph, feeds, 'f32').values[y]!.data, tol, 'matmul(x, x)');
  });

});
