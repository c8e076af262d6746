// Kernels over the last axis match the reference executor (invariant 7): softmax, log-softmax,
// their gradients, layerNorm/rmsNorm and their gradients (dx per row, dgamma/dbeta over all
// rows), cross-entropy and its gradient, and rope.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { numel } from '../../compiler/ir/shape.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { opGraph } from '../reference/helpers.ts';
import { bothTargets, runOnGpu } from './harness.ts';
import { anyTarget, awkwardSize, compareOp, compareOp as compare, random, runs, seed, shapes, type Tolerance } from './kernel-check.ts';

/** Rows end in sizes around the row workgroup sizes (32..128) and past them. */
const rowShapes = fc.tuple(shapes(0, 3, 1 << 12), fc.constantFrom(1, 2, 3, 31, 33, 65, 127, 129, 257, 1000)).map(([lead, n]) => [...lead, n]);

/**
 * Row statistics are f32 sums in a different order than the reference's doubles, and exp/log are
 * a few ULP: softmax-family outputs within 1e-6 absolute (they are probabilities, or differences
 * of log-probabilities) plus 1e-5 relative.
 */
const softmaxTol: Tolerance = { abs: 1e-6, rel: 1e-5 };
/** Norm outputs are O(1) values made of a row mean and variance: 1e-5 absolute and relative. */
const normTol: Tolerance = { abs: 1e-5, rel: 1e-5 };

describe('softmax kernels', () => {
  for (const op of ['softmax', 'logSoftmax'] as const) {
    it(`${op} over the last axis matches the reference`, async () => {
      await fc.assert(fc.asyncProperty(rowShapes, seed, anyTarget, async (shape, s, target) => {
        await compareOp(op, [random(shape, s, undefined, 3)], {}, softmaxTol, target);
      }), runs(10));
    });
  }
  for (const op of ['softmaxGrad', 'logSoftmaxGrad'] as const) {
    it(`${op} matches the reference`, async () => {
      await fc.assert(fc.asyncProperty(rowShapes, seed, anyTarget, async (shape, s, target) => {
        // y is a (log-)softmax output and dy an arbitrary gradient.
        const y = random(shape, s, op === 'softmaxGrad' ? (v) => Math.exp(v) / shape[shape.length - 1] : (v) => -Math.abs(v) - 1);
        await compareOp(op, [y, random(shape, s + 1)], {}, { abs: 1e-5, rel: 1e-5 }, target);
      }), runs(10));
    });
  }
  it('long rows (a vocabulary; 256 threads a row) match the reference', async () => {
    await compareOp('softmax', [random([3, 50257], 1, undefined, 4)], {}, softmaxTol);
    await compareOp('logSoftmax', [random([2, 50257], 2, undefined, 4)], {}, { abs: 1e-5, rel: 1e-6 });
    await compareOp('softmaxGrad', [random([2, 4099], 3, (v) => Math.exp(v) / 4099), random([2, 4099], 4)], {}, softmaxTol);
    const logits = random([3, 8191], 5, undefined, 3);
    const targets = randomTokens([3], 8191, 6);
    await compareOp('crossEntropy', [logits, targets], {}, { abs: 1e-5, rel: 1e-5 });
    await compareOp('crossEntropyGrad', [logits, targets, random([3], 7)], {}, softmaxTol);
    const x = random([2, 5000], 8);
    await compareOp('layerNorm', [x, random([5000], 9), random([5000], 10)], { eps: 1e-5 }, normTol);
    await compareOp('rmsNormGrad', [x, random([5000], 9), random([2, 5000], 11)], { eps: 1e-5 }, normTol);
  });
  it.each(bothTargets)('many short rows (cpu target: a thread per row, rows past a workgroup of 64) match the reference ($name target)', async (target) => {
    const [rows, n] = [300, 129];
    const compareOp = (...a: Parameters<typeof compare>) => compare(a[0], a[1], a[2], a[3], target);
    await compareOp('softmax', [random([rows, n], 1, undefined, 3)], {}, softmaxTol);
    await compareOp('logSoftmax', [random([rows, n], 2, undefined, 3)], {}, softmaxTol);
    await compareOp('softmaxGrad', [random([rows, n], 3, (v) => Math.exp(v) / n), random([rows, n], 4)], {}, { abs: 1e-5, rel: 1e-5 });
    await compareOp('logSoftmaxGrad', [random([rows, n], 3, (v) => -Math.abs(v) - 1), random([rows, n], 4)], {}, { abs: 1e-5, rel: 1e-5 });
    const logits = random([rows, n], 5, undefined, 3);
    const targets = randomTokens([rows], n, 6);
    await compareOp('crossEntropy', [logits, targets], {}, { abs: 1e-5, rel: 1e-5 });
    await compareOp('crossEntropyGrad', [logits, targets, random([rows], 7)], {}, softmaxTol);
    const x = random([rows, n], 8);
    await compareOp('layerNorm', [x, random([n], 9), random([n], 10)], { eps: 1e-5 }, normTol);
    await compareOp('rmsNorm', [x, random([n], 9)], { eps: 1e-5 }, normTol);
  });
});

/**
 * x with every row's standard deviation at least 0.5 (rows of 2 or 3 normals are often nearly
 * constant). The norms multiply the f32 rounding of x - mean by rstd (the gradients by rstd^2),
 * in f32 on the GPU as in every f32 framework, while the reference works in doubles:
 * near-constant rows would test that amplification, not the kernel.
 */
function spreadRows(x: HostTensor, d: number): HostTensor {
  const data = Float32Array.from(x.data);
  for (let off = 0; off < data.length; off += d) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += data[off + j] / d;
    let sq = 0;
    for (let j = 0; j < d; j++) sq += (data[off + j] - mean) ** 2 / d;
    const k = d > 1 && Math.sqrt(sq) < 0.5 ? 0.5 / Math.max(Math.sqrt(sq), 1e-3) : 1;
    for (let j = 0; j < d; j++) data[off + j] = mean + (data[off + j] - mean) * k;
  }
  return { shape: x.shape, data };
}

describe('norm kernels', () => {
  const eps = fc.constantFrom(1e-5, 1e-6);
  it('layerNorm and rmsNorm match the reference', async () => {
    await fc.assert(fc.asyncProperty(rowShapes, seed, eps, anyTarget, async (shape, s, e, target) => {
      const d = shape[shape.length - 1];
      const x = spreadRows(random(shape, s, (v) => v * 2 + 0.5), d);
      await compareOp('layerNorm', [x, random([d], s + 1), random([d], s + 2)], { eps: e }, normTol, target);
      await compareOp('rmsNorm', [x, random([d], s + 1)], { eps: e }, normTol, target);
    }), runs(10));
  });
  it('layerNormGrad and rmsNormGrad (dx, dgamma, dbeta) match the reference', async () => {
    await fc.assert(fc.asyncProperty(rowShapes, seed, eps, anyTarget, async (shape, s, e, target) => {
      const d = shape[shape.length - 1];
      const rows = numel(shape) / d;
      const x = spreadRows(random(shape, s, (v) => v * 2 + 0.5), d);
      // dgamma and dbeta sum `rows` terms of size ~1: f32 summation error grows like sqrt(rows).
      // dx is rstd * (g - mean(g) - ...), a cancellation scaled by rstd: rows of one element have
      // variance 0 and rstd = 1/sqrt(eps), so a rounding of g (an FMA contraction on NVIDIA gives
      // one) is amplified ~300x; spreadRows keeps rstd <= 2 elsewhere.
      const tol = { abs: 1e-5 * Math.sqrt(rows) * (d === 1 ? 1 / Math.sqrt(e) : 1), rel: 1e-5 };
      await compareOp('layerNormGrad', [x, random([d], s + 1), random(shape, s + 2)], { eps: e }, tol, target);
      await compareOp('rmsNormGrad', [x, random([d], s + 1), random(shape, s + 2)], { eps: e }, tol, target);
    }), runs(10));
  });
  it.each(bothTargets)('norm gradients over many rows (column sums split through scratch) match the reference ($name target)', async (target) => {
    const tol = { abs: 1e-5 * Math.sqrt(4096), rel: 1e-5 };
    for (const [rows, d] of [[4096, 768], [9000, 3], [2048, 1]]) {
      const x = spreadRows(random([rows, d], rows), d);
      await compareOp('layerNormGrad', [x, random([d], 2), random([rows, d], 3)], { eps: 1e-5 }, tol, target);
      await compareOp('rmsNormGrad', [x, random([d], 2), random([rows, d], 3)], { eps: 1e-5 }, tol, target);
    }
  });
});

describe('cross-entropy kernels', () => {
  it('crossEntropy and crossEntropyGrad match the reference', async () => {
    await fc.assert(fc.asyncProperty(rowShapes, seed, anyTarget, async (shape, s, target) => {
      const v = shape[shape.length - 1];
      const logits = random(shape, s, undefined, 3);
      const targets = randomTokens(shape.slice(0, -1), v, s + 1);
      // The loss is logsumexp - logit: absolute error of f32 exp/log sums, relative to its size.
      await compareOp('crossEntropy', [logits, targets], {}, { abs: 1e-5, rel: 1e-5 }, target);
      await compareOp('crossEntropyGrad', [logits, targets, random(shape.slice(0, -1), s + 2)], {}, softmaxTol, target);
    }), runs(10));
  });

  it('an out-of-range target gives NaN for its row, and leaves the others alone', async () => {
    const [rows, v] = [4, 65];
    const logits = random([rows, v], 1);
    const good = randomTokens([rows], v, 2);
    const bad = { shape: [rows], data: Int32Array.from(good.data, (t, i) => (i === 1 ? v : i === 2 ? -1 : t)) };
    const dloss = random([rows], 3);
    for (const op of ['crossEntropy', 'crossEntropyGrad'] as const) {
      const ins = op === 'crossEntropy' ? [logits, bad] : [logits, bad, dloss];
      const { g, outs } = opGraph(op, ins, {});
      const inputs = Object.fromEntries(ins.map((t, i) => [`x${i}`, t]));
      const gpu = (await runOnGpu(g, { inputs, params: {} }, outs)).get(outs[0])!;
      const per = op === 'crossEntropy' ? 1 : v;
      for (let r = 0; r < rows; r++) {
        const row = Array.from(gpu.slice(r * per, (r + 1) * per));
        expect(row.every(Number.isNaN), `${op} row ${r}`).toBe(r === 1 || r === 2);
      }
    }
  });
});

describe('rope kernel', () => {
  it('rope (and its inverse) over [..., T, Dh] matches the reference', async () => {
    const dims = fc.tuple(shapes(0, 2, 64), awkwardSize, fc.constantFrom(2, 4, 6, 32, 64, 128));
    await fc.assert(fc.asyncProperty(dims, seed, fc.boolean(), fc.constantFrom(10000, 500000), async ([lead, t, dh], s, inverse, base) => {
      // Angles are reduced modulo 2 pi in near-exact arithmetic: sin/cos and one rotation of f32s.
      await compareOp('rope', [random([...lead, t, dh], s)], { base, inverse }, { abs: 2e-6, rel: 1e-5 });
    }), runs(12));
  });
  it('rope stays accurate at long positions', async () => {
    await compareOp('rope', [random([4000, 64], 1)], { base: 10000, inverse: false }, { abs: 2e-6, rel: 1e-5 });
  });
});
