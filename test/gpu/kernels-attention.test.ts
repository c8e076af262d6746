// Fused attention and its gradient match the reference executor (invariant 7): batched [.., T, Dh]
// with T and Dh not multiples of the 64-thread workgroup, T = 1 and Dh = 1, causal or not, and
// scores large enough that an unstable softmax would overflow.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { TestGraph } from '../reference/graphs.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { anyTarget, expectWithin, random, runs, seed } from './kernel-check.ts';

/**
 * Tolerance: 1e-4 per element, plus 1e-4 of the largest |reference| among the op's outputs. Both
 * sides start from the same f32 inputs; the GPU rounds every partial sum to f32 (dot products
 * over Dh, sums over up to T keys, online rescaling by exp of running-max differences, a few ULP
 * each), the reference rounds once from doubles. Errors grow like sqrt(T * Dh) * 2^-24 of the
 * magnitudes summed; we measured up to 1.3e-5 of them. The absolute part is taken over all
 * outputs because dq and dk can cancel to almost nothing (a near one-hot softmax), and then carry
 * the rounding of the terms they summed, whose size dv (about |dout|) stands for.
 */
const rel = 1e-4;

interface Case {
  readonly lead: readonly number[];
  readonly t: number;
  readonly d: number;
  readonly causal: boolean;
  /** Multiplies 1/sqrt(Dh): large values make scores of tens (exp overflows f32 past 88). */
  readonly sharp: number;
}

/** q, k, v (and dout for the gradient) as inputs; the loss a fed scalar, so no other kernel runs. */
function attentionGraph(c: Case, grad: boolean): { g: Graph; outs: ValueId[]; lse: ValueId } {
  const g = new TestGraph(grad ? 'attentionGrad' : 'attention');
  const shape = [...c.lead, c.t, c.d];
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, shape));
  const attrs = { scale: c.sharp / Math.sqrt(c.d), causal: c.causal };
  const [y, lse] = g.op('attention', [q, k, v], attrs);
  const outs = grad ? g.op('attentionGrad', [q, k, v, lse, g.input('dout', shape)], attrs) : [y, lse];
  return { g: g.finish(g.input('zero', [])), outs, lse };
}

function feedsFor(c: Case, s: number): Record<string, HostTensor> {
  const shape = [...c.lead, c.t, c.d];
  const zero: HostTensor = { shape: [], data: Float32Array.of(0) };
  return { q: random(shape, s), k: random(shape, s + 1), v: random(shape, s + 2), dout: random(shape, s + 3), zero };
}

async function check(c: Case, s: number, grad: boolean, target: KernelTarget = kernelTargets.cpu): Promise<void> {
  const { g, outs, lse } = attentionGraph(c, grad);
  const feeds = { inputs: feedsFor(c, s), params: {} };
  const ref = execute(g, feeds, 'f32');
  const gpu = await runOnGpu(g, feeds, outs, undefined, undefined, target);
  let scale = 1e-30;
  // The forward's lse (f32 always; a log, not a sum of the outputs' terms) gets 1e-4 of itself.
  for (const v of outs) if (v !== lse) for (const x of ref.values[v]!.data) scale = Math.max(scale, Math.abs(x));
  outs.forEach((v, k) =>
    expectWithin(gpu.get(v)!, ref.values[v]!.data, { abs: rel * scale, rel }, `${grad ? 'attentionGrad' : 'attention'} ${JSON.stringify(c)} output ${k} (${target.name} target)`));
}

// T and Dh around the workgroup sizes (8 threads x 4 rows on the cpu target, 64 x 1 on the gpu
// target), Dh past the private rows' least capacity (64 floats on cpu, 128 on gpu), and 1.
const size = fc.constantFrom(1, 1, 2, 3, 5, 13, 31, 63, 64, 65, 100);
const headDim = fc.constantFrom(1, 1, 2, 3, 8, 13, 32, 63, 64, 65, 100, 128);
const arbitraryCase: fc.Arbitrary<Case> = fc
  .record({
    lead: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    t: size,
    d: headDim,
    causal: fc.boolean(),
    sharp: fc.constantFrom(0.5, 1, 4, 30),
  })
  // The reference's cost is B * T^2 * Dh: keep each case a fraction of a second.
  .filter((c) => c.lead.reduce((a, b) => a * b, 1) * c.t * c.t * c.d <= 1 << 19);

describe('attention kernels', () => {
  it('attention: random shapes, causal or not, match the reference', async () => {
    await fc.assert(fc.asyncProperty(arbitraryCase, seed, anyTarget, (c, s, target) => check(c, s, false, target)), runs(16));
  });

  it('attentionGrad: dq, dk and dv on random shapes match the reference', async () => {
    await fc.assert(fc.asyncProperty(arbitraryCase, seed, anyTarget, (c, s, target) => check(c, s, true, target)), runs(12));
  });

  it('T = 1024 with Dh = 128 runs without a T x T buffer (forward; the gradient at Dh = 32)', async () => {
    const c: Case = { lead: [1], t: 1024, d: 128, causal: true, sharp: 1 };
    const { g } = attentionGraph(c, true);
    const plan = planMemory(g, { fusion: noFusion(g.nodes.length), scratch: scratchFor(g, noFusion(g.nodes.length)) });
    // Scratch: (lse, D) per row; the largest buffer is one [T, Dh] tensor.
    expect(Math.max(...plan.buffers.map((b) => b.bytes))).toBe(1024 * 128 * 4);
    await check(c, 7, false);
    // The reference gradient costs seconds at Dh = 128; the kernels take Dh as a uniform anyway.
    await check({ ...c, lead: [], d: 32, causal: false }, 8, true);
  }, 60_000);

  it('Dh = 509, near the largest head dimension (four private rows of 8 KiB in all), matches the reference', async () => {
    // Only the gradient: lavapipe takes seconds to compile each shader with rows this long.
    await check({ lead: [2], t: 9, d: 509, causal: true, sharp: 1 }, 5, true);
  });

  it('Dh past 512 is refused, naming the op', () => {
    const g = new TestGraph('wide');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, [2, 513]));
    g.one('attention', [q, k, v], { scale: 1, causal: false });
    const graph = g.finish(g.input('zero', []));
    const plan = planMemory(graph, { fusion: noFusion(graph.nodes.length) });
    expect(() => lowerStep(graph, plan, noFusion(graph.nodes.length), kernelTargets.cpu)).toThrow(
      new LomocError('attention: head dimensions up to 512 are implemented, got 513', { file: 'models/test.ts', line: 3, col: 7 }),
    );
  });

  it('one tensor as q, k, v (and dout) is bound once and gives the reference result', async () => {
    for (const grad of [false, true]) {
      const g = new TestGraph('self');
      // Dh = 13: scalar loads, whose shaders compile faster than the vec4 ones on lavapipe.
      const x = g.input('x', [2, 37, 13]);
      const attrs = { scale: 0.3, causal: true };
      const [y, lse] = g.op('attention', [x, x, x], attrs);
      const outs = grad ? g.op('attentionGrad', [x, x, x, lse, x], attrs) : [y, lse];
      const graph = g.finish(g.input('zero', []));
      const feeds = { inputs: { x: random([2, 37, 13], 5), zero: { shape: [], data: Float32Array.of(0) } }, params: {} };
      const ref = execute(graph, feeds, 'f32');
      const gpu = await runOnGpu(graph, feeds, outs);
      outs.forEach((v, k) => expectWithin(gpu.get(v)!, ref.values[v]!.data, { abs: 1e-5, rel }, `self-attention output ${k}`));
    }
  });

});
