// Reduction kernels match the reference executor (invariant 7): sum, mean, max over random
// sorted axes with and without keepDims, the large reductions that split into two passes, and
// the clip-norm's sumSquares and clipFactor.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { numel } from '../../compiler/ir/shape.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { opGraph } from '../reference/helpers.ts';
import type { KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { bothTargets, runOnGpu } from './harness.ts';
import { anyTarget, compareOp, expectWithin, random, runs, seed, shapes } from './kernel-check.ts';

/**
 * Sums round differently on the two sides (the reference adds in row-major order in doubles, the
 * GPU in f32: per lane, then across lanes and splits), so the bound scales with what was added:
 * per output, |gpu - ref| <= 1e-6 * sum|x| (sum and mean; the mean's divided by the count), about
 * 16 f32 roundings of the whole magnitude; rounding errors of random-sign sums grow like
 * sqrt(terms), far below that. max is exact.
 */
const sumBound = 1e-6;

async function checkReduce(op: 'sum' | 'mean' | 'max', x: HostTensor, axes: number[], keepDims: boolean, target?: KernelTarget): Promise<void> {
  const { g, outs } = opGraph(op, [x], { axes, keepDims });
  const what = `${op} [${x.shape}] axes [${axes}] keepDims ${keepDims}${target ? ` (${target.name} target)` : ''}`;
  const ref = execute(g, { inputs: { x0: x }, params: {} }, 'f32').values[outs[0]]!.data;
  const gpu = (await runOnGpu(g, { inputs: { x0: x }, params: {} }, outs, undefined, undefined, target)).get(outs[0])!;
  if (op === 'max') return expectWithin(gpu, ref, { abs: 0, rel: 0 }, what);
  // sum|x| per output, from the reference on |x|.
  const abs = { shape: x.shape, data: Float32Array.from(x.data, Math.abs) };
  const mag = execute(g, { inputs: { x0: abs }, params: {} }, 'f32').values[outs[0]]!.data;
  expect(gpu.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++)
    if (!(Math.abs(gpu[i] - ref[i]) <= sumBound * mag[i] + 1e-30))
      expect.fail(`${what}: output ${i}: reference ${ref[i]}, gpu ${gpu[i]}, bound ${sumBound * mag[i]}`);
}

const axesOf = (rank: number, bits: number): number[] => Array.from({ length: rank }, (_, i) => i).filter((i) => (bits >> i) & 1);

describe('reduction kernels', () => {
  for (const op of ['sum', 'mean', 'max'] as const) {
    it(`${op} over random axes of random shapes matches the reference`, async () => {
      await fc.assert(fc.asyncProperty(shapes(1, 4), seed, fc.boolean(), anyTarget, async (shape, s, keepDims, target) => {
        await checkReduce(op, random(shape, s), axesOf(shape.length, s), keepDims, target);
      }), runs(15));
    });
  }

  it('sum over no axes copies, and over every axis of a scalar', async () => {
    await checkReduce('sum', random([3, 65], 1), [], false);
    await checkReduce('mean', random([], 2), [], true);
  });

  // Pass 2 differs by target: the cpu target sums few partials a thread per output.
  it.each(bothTargets)('large reductions (two passes through scratch) match the reference ($name target)', async (target) => {
    // A bias gradient: [B*T, D] over rows, leading axes; the loss mean over every position;
    // a row sum over a long trailing axis; max over a leading axis.
    await checkReduce('sum', random([4096, 768], 1), [0], false, target);
    await checkReduce('sum', random([8, 512, 96], 2), [0, 1], true, target);
    await checkReduce('mean', random([16, 1031], 3), [0, 1], false, target);
    await checkReduce('sum', random([3, 70001], 4), [1], false, target);
    await checkReduce('max', random([20000, 7], 5), [0], true, target);
    await checkReduce('mean', random([5, 9000, 3], 6), [1], false, target);
  });

  it('sumSquares of any shape matches the reference, one pass or two', async () => {
    // All terms are positive: relative error of f32 summation only.
    const tol = { abs: 1e-30, rel: 1e-5 };
    await fc.assert(fc.asyncProperty(shapes(0, 4), seed, async (shape, s) => {
      await compareOp('sumSquares', [random(shape, s)], {}, tol);
    }), runs(10));
    await compareOp('sumSquares', [random([768, 3073], 7)], {}, tol);
    await compareOp('sumSquares', [random([1 << 20], 8, undefined, 1e-3)], {}, tol);
  });

  it('clipFactor is min(1, maxNorm / (sqrt(total) + 1e-6))', async () => {
    // sqrt and one division: a few f32 roundings.
    const tol = { abs: 1e-7, rel: 1e-6 };
    for (const [total, maxNorm] of [[0, 1], [4, 1], [0.25, 1], [1e6, 0.5], [3.5, 10]] as const) {
      await compareOp('clipFactor', [{ shape: [], data: Float32Array.of(total) }], { maxNorm }, tol);
    }
  });

  it('the reduced count of every split is covered exactly once (sums of ones)', async () => {
    for (const shape of [[4096, 768], [1 << 20], [257, 4099]]) {
      const ones = { shape, data: new Float32Array(numel(shape)).fill(1) };
      const { g, outs } = opGraph('sum', [ones], { axes: [0], keepDims: false });
      const gpu = (await runOnGpu(g, { inputs: { x0: ones }, params: {} }, outs)).get(outs[0])!;
      expect(new Set(gpu)).toEqual(new Set([shape[0]]));
    }
  });
});
