import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomTensor } from '../../compiler/reference/random.ts';
import { dot, expectClose, numericGrad, run1, runOp, t } from './helpers.ts';

describe('rope', () => {
  it('by hand: position t rotates pair (i, i + Dh/2) by t * base^(-2i/Dh)', () => {
    // Dh = 4, base 100: pair 0 turns by t radians, pair 1 by t * 100^(-1/2) = 0.1 t
    const x = t([2, 4], [1, 2, 3, 4, 1, 2, 3, 4]);
    const y = run1('rope', [x], { base: 100, inverse: false });
    expect(y.slice(0, 4)).toEqual([1, 2, 3, 4]);
    const [c0, s0, c1, s1] = [Math.cos(1), Math.sin(1), Math.cos(0.1), Math.sin(0.1)];
    expectClose(y.slice(4), [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 1 * s0 + 3 * c0, 2 * s1 + 4 * c1], 1e-15);
  });
  it('positions count along axis -2 of every leading index', () => {
    const y = run1('rope', [t([2, 2, 2], [1, 0, 1, 0, 1, 0, 1, 0])], { base: 10000, inverse: false });
    expectClose(y, [1, 0, Math.cos(1), Math.sin(1), 1, 0, Math.cos(1), Math.sin(1)], 1e-15);
  });
  const rope3d = fc.record({
    b: fc.integer({ min: 1, max: 3 }),
    tt: fc.integer({ min: 1, max: 6 }),
    half: fc.integer({ min: 1, max: 4 }),
    seed: fc.nat(),
  });
  it('inverse undoes rope, and rope keeps each pair\'s length', () => {
    fc.assert(
      fc.property(rope3d, ({ b, tt, half, seed }) => {
        const x = randomTensor([b, tt, 2 * half], seed, 'f64');
        const y = runOp('rope', [x], { base: 10000, inverse: false })[0];
        expectClose(run1('rope', [y], { base: 10000, inverse: true }), x.data, 1e-12);
        for (let r = 0; r < b * tt; r++)
          for (let i = 0; i < half; i++) {
            const at = (d: ArrayLike<number>, j: number) => d[r * 2 * half + j];
            const norm = (d: ArrayLike<number>) => Math.hypot(at(d, i), at(d, i + half));
            expect(Math.abs(norm(y.data) - norm(x.data))).toBeLessThan(1e-12);
          }
      }),
      { numRuns: 100 },
    );
  });
});

/** Attention for one [T, Dh] head the long way: explicit scores, mask, softmax, weighted sum. */
function explicitAttention(q: number[][], k: number[][], v: number[][], scale: number, causal: boolean): number[][] {
  return q.map((qi, i) => {
    const scores = k.map((kj, j) => (causal && j > i ? -Infinity : scale * qi.reduce((s, x, c) => s + x * kj[c], 0)));
    const e = scores.map((s) => Math.exp(s - Math.max(...scores)));
    const p = e.map((x) => x / e.reduce((a, b) => a + b, 0));
    return v[0].map((_, c) => p.reduce((s, pj, j) => s + pj * v[j][c], 0));
  });
}

describe('attention', () => {
  const q = [[1, 0], [0, 1], [1, 1]];
  const k = [[1, 2], [0.5, -1], [2, 0]];
  const v = [[1, 10], [2, 20], [3, 30]];
  const flat = (m: number[][]) => t([3, 2], m.flat());

  it('causal, T = 3: row 0 sees only key 0, row 2 sees all three', () => {
    const y = run1('attention', [flat(q), flat(k), flat(v)], { scale: 0.5, causal: true });
    expect(y.slice(0, 2)).toEqual([1, 10]);
    // Row 1 by hand: scores 0.5 * [2, -1] -> softmax [e / (e + e^-0.5), ...]
    const p = [Math.exp(1), Math.exp(-0.5)].map((x, _, a) => x / (a[0] + a[1]));
    expectClose(y.slice(2, 4), [p[0] * 1 + p[1] * 2, p[0] * 10 + p[1] * 20], 1e-15);
    expectClose(y, explicitAttention(q, k, v, 0.5, true).flat(), 1e-15);
  });
  it('lse: each row\'s log-sum-exp of its scaled, masked scores', () => {
    const lse = runOp('attention', [flat(q), flat(k), flat(v)], { scale: 0.5, causal: true })[1];
    expect(lse.shape).toEqual([3]);
    const lse0 = (row: number[], last: number) => Math.log(k.slice(0, last + 1).reduce((a, kj) => a + Math.exp(0.5 * (row[0] * kj[0] + row[1] * kj[1])), 0));
    expectClose(lse.data, q.map((row, i) => lse0(row, i)), 1e-15);
    const full = runOp('attention', [flat(q), flat(k), flat(v)], { scale: 0.5, causal: false })[1];
    expectClose(full.data, q.map((row) => lse0(row, 2)), 1e-15);
  });
  it('non-causal, and over leading batch and head axes', () => {
    const full = run1('attention', [flat(q), flat(k), flat(v)], { scale: 0.7, causal: false });
    expectClose(full, explicitAttention(q, k, v, 0.7, false).flat(), 1e-15);
    const [Q, K, V] = [1, 2, 3].map((s) => randomTensor([2, 2, 3, 2], s, 'f64'));
    const y = run1('attention', [Q, K, V], { scale: 0.3, causal: true });
    for (let h = 0; h < 4; h++) {
      const head = (x: typeof Q) => [0, 1, 2].map((i) => [x.data[h * 6 + i * 2], x.data[h * 6 + i * 2 + 1]]);
      expectClose(y.slice(h * 6, h * 6 + 6), explicitAttention(head(Q), head(K), head(V), 0.3, true).flat(), 1e-14);
    }
  });
  it('attentionGrad gives dq, dk, dv of sum(attention * dout)', () => {
    for (const causal of [true, false]) {
      const shape = [2, 4, 3];
      const [Q, K, V, dout] = [11, 12, 13, 14].map((s) => randomTensor(shape, s, 'f64'));
      const attrs = { scale: 0.6, causal };
      const loss = (qs: ArrayLike<number>, ks: ArrayLike<number>, vs: ArrayLike<number>) =>
        dot(run1('attention', [t(shape, qs), t(shape, ks), t(shape, vs)], attrs), dout.data);
      const lse = runOp('attention', [Q, K, V], attrs)[1];
      const [dq, dk, dv] = runOp('attentionGrad', [Q, K, V, lse, dout], attrs);
      expectClose(dq.data, numericGrad((x) => loss(x, K.data, V.data), Q.data), 1e-7);
      expectClose(dk.data, numericGrad((x) => loss(Q.data, x, V.data), K.data), 1e-7);
      expectClose(dv.data, numericGrad((x) => loss(Q.data, K.data, x), V.data), 1e-7);
    }
  });
});
