import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { numel } from '../../compiler/ir/shape.ts';
import { randomTensor } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { expectClose, runOp, t } from './helpers.ts';

const mm = (a: HostTensor, b: HostTensor, transA = false, transB = false) => runOp('matmul', [a, b], { transA, transB })[0];

describe('matmul by hand', () => {
  const a = t([2, 3], [1, 2, 3, 4, 5, 6]);
  const b = t([3, 2], [7, 8, 9, 10, 11, 12]);
  const aT = t([3, 2], [1, 4, 2, 5, 3, 6]);
  const bT = t([2, 3], [7, 9, 11, 8, 10, 12]);
  const want = [58, 64, 139, 154];
  it('plain and with either or both operands transposed', () => {
    expect(Array.from(mm(a, b).data)).toEqual(want);
    expect(Array.from(mm(aT, b, true).data)).toEqual(want);
    expect(Array.from(mm(a, bT, false, true).data)).toEqual(want);
    expect(Array.from(mm(aT, bT, true, true).data)).toEqual(want);
    expect(mm(a, b).shape).toEqual([2, 2]);
  });
  it('broadcasts batch axes', () => {
    // [2, 1, 2] x [2, 1]: each batch row dotted with [1, 1]
    const y = mm(t([2, 1, 2], [1, 2, 3, 4]), t([2, 1], [1, 1]));
    expect(y.shape).toEqual([2, 1, 1]);
    expect(Array.from(y.data)).toEqual([3, 7]);
    // [1, 2] x [3, 2, 1]: one left matrix against three right ones
    const z = mm(t([1, 2], [1, 10]), t([3, 2, 1], [1, 2, 3, 4, 5, 6]));
    expect(z.shape).toEqual([3, 1, 1]);
    expect(Array.from(z.data)).toEqual([21, 43, 65]);
    // [2, 1, 1, 1] x [3, 1, 1]: batch [2, 1] against [3] -> [2, 3]
    const w = mm(t([2, 1, 1, 1], [2, 3]), t([3, 1, 1], [1, 10, 100]));
    expect(w.shape).toEqual([2, 3, 1, 1]);
    expect(Array.from(w.data)).toEqual([2, 20, 200, 3, 30, 300]);
  });
});

/** Operand `x` as explicit (possibly transposed) matrices, one per batch element in row-major order. */
function matricesOf(x: HostTensor, trans: boolean): number[][][] {
  const [r, c] = x.shape.slice(-2);
  const out: number[][][] = [];
  for (let p = 0; p < numel(x.shape.slice(0, -2)); p++) {
    const stored = Array.from({ length: r }, (_, i) => Array.from({ length: c }, (_, j) => x.data[p * r * c + i * c + j]));
    out.push(trans ? Array.from({ length: c }, (_, j) => stored.map((row) => row[j])) : stored);
  }
  return out;
}

/** The batch element of an operand with batch shape `own` that output batch index `idx` reads. */
function batchOf(idx: number[], own: number[]): number {
  const aligned = idx.slice(idx.length - own.length);
  return aligned.reduce((acc, i, a) => acc * own[a] + (own[a] === 1 ? 0 : i), 0);
}

function naiveMatmul(a: HostTensor, b: HostTensor, transA: boolean, transB: boolean, batch: number[]): number[] {
  const [am, bm] = [matricesOf(a, transA), matricesOf(b, transB)];
  const out: number[] = [];
  for (let p = 0; p < numel(batch); p++) {
    const idx = batch.map((_, i) => Math.floor(p / numel(batch.slice(i + 1))) % batch[i]);
    const A = am[batchOf(idx, a.shape.slice(0, -2))];
    const B = bm[batchOf(idx, b.shape.slice(0, -2))];
    for (let i = 0; i < A.length; i++)
      for (let j = 0; j < B[0].length; j++) {
        let s = 0;
        for (let l = 0; l < B.length; l++) s += A[i][l] * B[l][j];
        out.push(s);
      }
  }
  return out;
}

describe('matmul property', () => {
  const dim = fc.integer({ min: 1, max: 4 });
  // An output batch shape, and each operand's batch shape: a suffix of it with some axes set to 1.
  const operandBatch = (batch: number[]) =>
    fc
      .tuple(fc.integer({ min: 0, max: batch.length }), fc.array(fc.boolean(), { minLength: batch.length, maxLength: batch.length }))
      .map(([drop, ones]) => batch.map((d, i) => (ones[i] ? 1 : d)).slice(drop));
  const caseArb = fc.array(dim, { maxLength: 3 }).chain((batch) =>
    fc.record({
      aBatch: operandBatch(batch),
      bBatch: operandBatch(batch),
      m: dim,
      k: dim,
      n: dim,
      transA: fc.boolean(),
      transB: fc.boolean(),
      seed: fc.nat(),
    }),
  );

  it('matches a naive triple loop on random shapes, transposes and broadcast batches', () => {
    fc.assert(
      fc.property(caseArb, ({ aBatch, bBatch, m, k, n, transA, transB, seed }) => {
        const a = randomTensor([...aBatch, ...(transA ? [k, m] : [m, k])], seed, 'f64');
        const b = randomTensor([...bBatch, ...(transB ? [n, k] : [k, n])], seed + 1, 'f64');
        const y = mm(a, b, transA, transB);
        const lead = Math.max(aBatch.length, bBatch.length);
        const batch = Array.from({ length: lead }, (_, i) =>
          Math.max(aBatch[i - lead + aBatch.length] ?? 1, bBatch[i - lead + bBatch.length] ?? 1),
        );
        expect(y.shape).toEqual([...batch, m, n]);
        expectClose(y.data, naiveMatmul(a, b, transA, transB, batch), 1e-12);
      }),
      { numRuns: 200 },
    );
  });
});
