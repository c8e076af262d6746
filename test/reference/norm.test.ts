import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomTensor } from '../../compiler/reference/random.ts';
import { dot, expectClose, numericGrad, run1, runOp, t } from './helpers.ts';

describe('softmax and logSoftmax over the last axis', () => {
  it('by hand, and stable for large logits', () => {
    expectClose(run1('softmax', [t([2, 2], [0, 0, 0, Math.log(3)])], {}), [0.5, 0.5, 0.25, 0.75], 1e-15);
    expectClose(run1('softmax', [t([2], [1000, 1000 + Math.log(3)])], {}), [0.25, 0.75], 1e-12);
    expectClose(run1('logSoftmax', [t([2], [1000, 1000 + Math.log(3)])], {}), [Math.log(0.25), Math.log(0.75)], 1e-12);
    expectClose(run1('logSoftmax', [t([3], [0, 0, 0])], {}), [-Math.log(3), -Math.log(3), -Math.log(3)], 1e-15);
  });
  it('gradients: softmaxGrad = y * (dy - sum(dy * y)), logSoftmaxGrad = dy - exp(y) * sum(dy)', () => {
    const x = t([2, 3], [0.2, -1, 0.5, 2, 1, -0.3]);
    const dy = t([2, 3], [1, -0.5, 0.25, 0.3, 0.3, -2]);
    for (const [op, grad] of [['softmax', 'softmaxGrad'], ['logSoftmax', 'logSoftmaxGrad']] as const) {
      const y = runOp(op, [x], {})[0];
      const fd = numericGrad((v) => dot(run1(op, [t([2, 3], v)], {}), dy.data), x.data);
      expectClose(run1(grad, [y, dy], {}), fd, 1e-8);
    }
    // Hand check of one row: y = [0.5, 0.5], dy = [1, 0] -> 0.5 * ([1, 0] - 0.5) = [0.25, -0.25]
    expect(run1('softmaxGrad', [t([2], [0.5, 0.5]), t([2], [1, 0])], {})).toEqual([0.25, -0.25]);
    expect(run1('logSoftmaxGrad', [t([2], [Math.log(0.5), Math.log(0.5)]), t([2], [1, 0])], {})).toEqual([0.5, -0.5]);
  });
  const rowsArb = fc.record({
    rows: fc.integer({ min: 1, max: 4 }),
    n: fc.integer({ min: 1, max: 8 }),
    seed: fc.nat(),
    std: fc.double({ min: 0.1, max: 30, noNaN: true }),
  });
  it('softmax rows sum to 1 and logSoftmax is log(softmax)', () => {
    fc.assert(
      fc.property(rowsArb, ({ rows, n, seed, std }) => {
        const x = randomTensor([rows, n], seed, 'f64', 'f32', std);
        const s = run1('softmax', [x], {});
        for (let r = 0; r < rows; r++) expect(Math.abs(s.slice(r * n, (r + 1) * n).reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
        expectClose(run1('logSoftmax', [x], {}), s.map(Math.log), 1e-9);
      }),
      { numRuns: 100 },
    );
  });
});

describe('layerNorm', () => {
  it('by hand: biased variance, then gamma and beta', () => {
    const r = Math.sqrt(1.5);
    expectClose(run1('layerNorm', [t([3], [1, 2, 3]), t([3], [1, 1, 1]), t([3], [0, 0, 0])], { eps: 0 }), [-r, 0, r], 1e-15);
    expectClose(run1('layerNorm', [t([1, 3], [1, 2, 3]), t([3], [2, 1, 1]), t([3], [0, 1, 0])], { eps: 0 }), [-2 * r, 1, r], 1e-15);
    // eps enters under the square root: var 1 + eps 3 -> divide by 2
    expectClose(run1('layerNorm', [t([2], [1, 3]), t([2], [1, 1]), t([2], [0, 0])], { eps: 3 }), [-0.5, 0.5], 1e-15);
  });
  it('rows have zero mean and unit variance when gamma = 1, beta = 0', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 16 }), fc.nat(), (rows, n, seed) => {
        const [ones, zeros] = [t([n], new Array(n).fill(1)), t([n], new Array(n).fill(0))];
        const y = run1('layerNorm', [randomTensor([rows, n], seed, 'f64'), ones, zeros], { eps: 0 });
        for (let r = 0; r < rows; r++) {
          const row = y.slice(r * n, (r + 1) * n);
          const mean = row.reduce((a, b) => a + b, 0) / n;
          expect(Math.abs(mean)).toBeLessThan(1e-12);
          expect(Math.abs(row.reduce((a, b) => a + (b - mean) ** 2, 0) / n - 1)).toBeLessThan(1e-12);
        }
      }),
      { numRuns: 100 },
    );
  });
  it('layerNormGrad gives dx, dgamma, dbeta of sum(layerNorm * dy)', () => {
    const [x, dy] = [randomTensor([2, 3, 4], 1, 'f64'), randomTensor([2, 3, 4], 4, 'f64')];
    const [gamma, beta] = [randomTensor([4], 2, 'f64'), randomTensor([4], 3, 'f64')];
    const attrs = { eps: 1e-3 };
    const loss = (xs: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) =>
      dot(run1('layerNorm', [t([2, 3, 4], xs), t([4], g), t([4], b)], attrs), dy.data);
    const [dx, dgamma, dbeta] = runOp('layerNormGrad', [x, gamma, dy], attrs);
    expect(dgamma.shape).toEqual([4]);
    expectClose(dx.data, numericGrad((v) => loss(v, gamma.data, beta.data), x.data), 1e-7);
    expectClose(dgamma.data, numericGrad((v) => loss(x.data, v, beta.data), gamma.data), 1e-7);
    expectClose(dbeta.data, numericGrad((v) => loss(x.data, gamma.data, v), beta.data), 1e-7);
  });
});

describe('rmsNorm', () => {
  it('by hand: x / sqrt(mean(x^2) + eps) * gamma', () => {
    const rms = Math.sqrt(12.5);
    expectClose(run1('rmsNorm', [t([2], [3, 4]), t([2], [1, 2])], { eps: 0 }), [3 / rms, 8 / rms], 1e-15);
    expectClose(run1('rmsNorm', [t([2, 1], [2, -1]), t([1], [1])], { eps: 12 }), [0.5, -1 / Math.sqrt(13)], 1e-15);
  });
  it('rmsNormGrad gives dx and dgamma of sum(rmsNorm * dy)', () => {
    const [x, gamma, dy] = [randomTensor([3, 5], 5, 'f64'), randomTensor([5], 6, 'f64'), randomTensor([3, 5], 7, 'f64')];
    const attrs = { eps: 1e-3 };
    const loss = (xs: ArrayLike<number>, g: ArrayLike<number>) => dot(run1('rmsNorm', [t([3, 5], xs), t([5], g)], attrs), dy.data);
    const [dx, dgamma] = runOp('rmsNormGrad', [x, gamma, dy], attrs);
    expectClose(dx.data, numericGrad((v) => loss(v, gamma.data), x.data), 1e-7);
    expectClose(dgamma.data, numericGrad((v) => loss(x.data, v), gamma.data), 1e-7);
  });
});
