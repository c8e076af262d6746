// Elementwise and layout kernels match the reference executor (invariant 7), on shapes of rank
// 1-4 with sizes that are not multiples of the workgroup size, size-1 axes and broadcasting.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import type { StepProgram } from '../../contract/program.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { scratchFor } from './harness.ts';
import { anyTarget, compareGraph, compareOp, random, runs, seed, shapes, type Tolerance } from './kernel-check.ts';

/** Ops that only move or add and multiply once: f32 rounding of one operation, both sides. */
const exact: Tolerance = { abs: 1e-6, rel: 1e-6 };
/**
 * WGSL's exp, log, tanh, sqrt are a few ULP (exp: 3 + 2|x| ULP), and the reference rounds a double
 * result once; GELU/SiLU chain two of them.
 */
const transcendental: Tolerance = { abs: 1e-5, rel: 2e-5 };

/** Two shapes that broadcast: b is a's (or a suffix of it) with random axes set to 1. */
const broadcastPair = shapes(1, 4).chain((a) =>
  fc.tuple(fc.constant(a), fc.integer({ min: 0, max: a.length - 1 }), fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length }), fc.boolean()),
).map(([a, drop, ones, swap]) => {
  const b = a.slice(drop).map((d, i) => (ones[i] ? 1 : d));
  return swap ? [b, a] : [a, b];
});

const positive = (x: number) => Math.abs(x) + 0.1;

describe('elementwise kernels', () => {
  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    it(`${op}: broadcasting over random shapes matches the reference`, async () => {
      // Maps take 8+ elements a thread on the cpu target, 1 on the gpu target.
      await fc.assert(fc.asyncProperty(broadcastPair, seed, anyTarget, async ([a, b], s, target) => {
        // Division by values near 0 amplifies the one rounding the reference shares: keep |b| >= 0.1.
        const y = random(b, s + 1, op === 'div' ? (x) => Math.sign(x || 1) * positive(x) : undefined);
        await compareOp(op, [random(a, s), y], {}, exact, target);
      }), runs());
    });
  }

  const unary = { neg: exact, exp: transcendental, log: transcendental, sqrt: transcendental, rsqrt: transcendental, tanh: transcendental, gelu: transcendental, silu: transcendental, relu: exact } as const;
  for (const [op, tol] of Object.entries(unary) as [keyof typeof unary, Tolerance][]) {
    it(`${op}: matches the reference`, async () => {
      const domain = op === 'log' || op === 'sqrt' || op === 'rsqrt' ? positive : undefined;
      await fc.assert(fc.asyncProperty(shapes(1, 4), seed, anyTarget, async (shape, s, target) => {
        await compareOp(op, [random(shape, s, domain, op === 'exp' ? 3 : 4)], {}, tol, target);
      }), runs(6));
    });
  }

  for (const op of ['geluGrad', 'siluGrad', 'reluGrad', 'tanhGrad'] as const) {
    it(`${op}: matches the reference`, async () => {
      await fc.assert(fc.asyncProperty(shapes(1, 4), seed, async (shape, s) => {
        await compareOp(op, [random(shape, s, undefined, 4), random(shape, s + 1)], {}, transcendental);
      }), runs(6));
    });
  }

  it('tanh, gelu and silu stay finite for large inputs', async () => {
    const x = random([65], 1, (v) => v * 100);
    for (const op of ['tanh', 'gelu', 'silu', 'geluGrad', 'siluGrad'] as const)
      await compareOp(op, op.endsWith('Grad') ? [x, random([65], 2)] : [x], {}, transcendental);
  });

  it('scale and fill match the reference', async () => {
    await fc.assert(fc.asyncProperty(shapes(0, 4), seed, fc.double({ min: -10, max: 10, noNaN: true }), async (shape, s, c) => {
      await compareOp('scale', [random(shape, s)], { c }, exact);
      await compareOp('fill', [], { value: c, shape, dtype: 'f32' }, exact);
    }), runs(8));
  });

  it('maxGrad routes dy to the maxima of random axes', async () => {
    await fc.assert(fc.asyncProperty(shapes(1, 4), seed, fc.boolean(), async (shape, s, keepDims) => {
      const axes = shape.map((_, i) => i).filter((i) => (s >> i) & 1);
      const g = new TestGraph('maxGrad');
      const x = g.input('x', shape);
      const y = g.one('max', [x], { axes, keepDims });
      const dy = g.input('dy', g.b.values[y].shape);
      const dx = g.one('maxGrad', [x, y, dy], { axes, keepDims });
      // Rounded inputs make ties likely: every tied element gets dy.
      const xs = random(shape, s, (v) => Math.round(v * 2));
      await compareGraph(finish(g), { inputs: { x: xs, dy: random(g.b.values[y].shape, s + 1) }, params: {} }, [dx], exact, `maxGrad ${shape} ${axes}`);
    }), runs());
  });
});

/** The graph's program, planned without fusion, keeping `keep` to the end. */
function lower(g: Graph, keep: readonly number[]): StepProgram {
  const fusion = noFusion(g.nodes.length);
  return lowerStep(g, planMemory(g, { fusion, scratch: scratchFor(g, fusion), keep }), fusion, kernelTargets.cpu);
}

/** The graph with a constant scalar loss, so every tested value is an output the test reads. */
function finish(g: TestGraph): Graph {
  return g.finish(g.one('fill', [], { value: 0, shape: [], dtype: 'f32' }));
}

describe('elementwise codegen', () => {
  it('an in-place gradient sum binds its accumulator once, read_write, and adds correctly', async () => {
    // The planner stores grad = grad + part over the old sum when that sum dies there.
    const g = new TestGraph('in-place');
    const x = g.input('x', [3, 65]);
    const part = g.input('part', [65]);
    const [acc] = g.b.node('scale', [x], { c: 2 }, loc, 'backward', 'grad');
    const [sum] = g.b.node('add', [acc, part], {}, loc, 'backward', 'grad');
    const graph = finish(g);
    const add = lower(graph, [sum]).dispatches.find((d) => d.label.startsWith('add'))!;
    expect(add.bindings.map((b) => b.write)).toEqual([true, false]);
    await compareGraph(graph, { inputs: { x: random([3, 65], 1), part: random([65], 2) }, params: {} }, [sum], exact, 'in-place add');
  });

  it('sizes are uniforms: one shader serves the same op at different shapes', () => {
    const g = new TestGraph('shapes');
    const outs = [[3, 5], [70, 9], [2, 1000]].map(([m, n]) => g.one('add', [g.input(`a${m}`, [m, n]), g.input(`b${m}`, [n])], {}));
    const program = lower(finish(g), outs);
    const adds = program.dispatches.filter((d) => d.label.startsWith('add'));
    expect(new Set(adds.map((d) => d.shader)).size).toBe(1);
    expect(new Set(adds.map((d) => d.uniforms.join())).size).toBe(3);
  });

  it('NaN passes through relu and max as it does in the reference', async () => {
    const x = { shape: [2, 5], data: Float32Array.of(1, NaN, -2, 3, 0, -1, -2, -3, NaN, 4) };
    await compareOp('relu', [x], {}, exact);
    await compareOp('max', [x], { axes: [1], keepDims: false }, exact);
    await compareOp('max', [x], { axes: [0], keepDims: true }, exact);
  });
});

describe('layout kernels', () => {
  const perm = (rank: number, s: number): number[] => {
    const p = Array.from({ length: rank }, (_, i) => i);
    for (let i = rank - 1; i > 0; i--) {
      const j = (s >>> (i * 3)) % (i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  };

  it('transpose by a random permutation matches the reference', async () => {
    await fc.assert(fc.asyncProperty(shapes(1, 4), seed, anyTarget, async (shape, s, target) => {
      await compareOp('transpose', [random(shape, s)], { perm: perm(shape.length, s) }, exact, target);
    }), runs());
  });

  it('slice, pad and broadcastTo match the reference', async () => {
    await fc.assert(fc.asyncProperty(shapes(1, 4), seed, anyTarget, async (shape, s, target) => {
      const r = (k: number, n: number) => ((s >>> k) ^ (s >>> (k + 7))) % n;
      const starts = shape.map((d, i) => r(i, d));
      const ends = shape.map((d, i) => starts[i] + 1 + r(i + 11, d - starts[i]));
      await compareOp('slice', [random(shape, s)], { starts, ends }, exact, target);
      const before = shape.map((_, i) => r(i + 3, 3) * (i % 2));
      const after = shape.map((_, i) => r(i + 5, 4));
      await compareOp('pad', [random(shape, s)], { before, after }, exact, target);
      const to = [r(9, 3) + 1, ...shape.map((d, i) => (r(i + 13, 2) ? d : 1))];
      await compareOp('broadcastTo', [random(shape.map((d, i) => (to[i + 1] === 1 ? 1 : d)), s)], { shape: to }, exact, target);
    }), runs());
  });

  it('concat of 1 to 10 inputs (several dispatches past 7) matches the reference', async () => {
    await fc.assert(fc.asyncProperty(shapes(1, 3, 1 << 12), seed, fc.integer({ min: 1, max: 10 }), async (shape, s, k) => {
      const axis = s % shape.length;
      const ins = Array.from({ length: k }, (_, i) => random(shape.map((d, a) => (a === axis ? 1 + ((s >>> i) % 5) : d)), s + i));
      await compareOp('concat', ins, { axis }, exact);
    }), runs(10));
  });

  it('layout ops move i32 token ids unchanged', async () => {
    const ids = randomTokens([3, 5, 7], 1000, 1);
    await compareOp('transpose', [ids], { perm: [2, 0, 1] }, exact);
    await compareOp('slice', [ids], { starts: [1, 0, 2], ends: [3, 4, 7] }, exact);
    await compareOp('concat', [ids, ids], { axis: 1 }, exact);
    await compareOp('pad', [ids], { before: [0, 1, 0], after: [2, 0, 1] }, exact);
  });

  it('reshape is a view (no dispatch) of an activation, and a copy of a param', async () => {
    const g = new TestGraph('reshape');
    const x = g.input('x', [6, 65]);
    const w = g.param('w', [5, 13], { kind: 'zeros' });
    const a = g.one('reshape', [x], { shape: [13, 30] });
    const b = g.one('reshape', [w], { shape: [65] });
    const graph = finish(g);
    const feeds = { inputs: { x: random([6, 65], 1) }, params: { w: random([5, 13], 2) } };
    await compareGraph(graph, feeds, [a, b], exact, 'reshape');
    const reshapes = lower(graph, [a, b]).dispatches.filter((d) => d.label.startsWith('reshape'));
    expect(reshapes.length).toBe(1);
    expect(reshapes[0].bindings.length).toBe(2);
  });
});
