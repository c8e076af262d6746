import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { numel } from '../../compiler/ir/shape.ts';
import { randomTensor } from '../../compiler/reference/random.ts';
import { unravel } from '../../compiler/reference/tensor.ts';
import { ids, run1, runOp, t } from './helpers.ts';

const x23 = t([2, 3], [1, 2, 3, 4, 5, 6]);

describe('data movement', () => {
  it('reshape keeps row-major order', () => {
    const y = runOp('reshape', [x23], { shape: [3, 1, 2] })[0];
    expect(y.shape).toEqual([3, 1, 2]);
    expect(Array.from(y.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it('transpose permutes axes', () => {
    expect(run1('transpose', [x23], { perm: [1, 0] })).toEqual([1, 4, 2, 5, 3, 6]);
    const y = runOp('transpose', [t([2, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])], { perm: [2, 0, 1] })[0];
    expect(y.shape).toEqual([3, 2, 2]);
    expect(Array.from(y.data)).toEqual([0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
  });
  it('slice takes [start, end) on every axis', () => {
    expect(run1('slice', [x23], { starts: [0, 1], ends: [2, 3] })).toEqual([2, 3, 5, 6]);
    expect(run1('slice', [x23], { starts: [1, 0], ends: [2, 2] })).toEqual([4, 5]);
  });
  it('concat joins any number of operands along an axis', () => {
    expect(run1('concat', [x23, t([1, 3], [7, 8, 9])], { axis: 0 })).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const y = runOp('concat', [t([2, 1], [0, 0]), x23, t([2, 2], [8, 9, 8, 9])], { axis: 1 })[0];
    expect(y.shape).toEqual([2, 6]);
    expect(Array.from(y.data)).toEqual([0, 1, 2, 3, 8, 9, 0, 4, 5, 6, 8, 9]);
  });
  it('broadcastTo repeats along new and size-1 axes', () => {
    expect(run1('broadcastTo', [t([3], [1, 2, 3])], { shape: [2, 3] })).toEqual([1, 2, 3, 1, 2, 3]);
    expect(run1('broadcastTo', [t([2, 1], [1, 2])], { shape: [2, 3] })).toEqual([1, 1, 1, 2, 2, 2]);
    expect(run1('broadcastTo', [t([], [5])], { shape: [2] })).toEqual([5, 5]);
  });
  it('pad adds zeros before and after each axis', () => {
    expect(run1('pad', [t([2], [1, 2])], { before: [1], after: [2] })).toEqual([0, 1, 2, 0, 0]);
    expect(run1('pad', [t([1, 2], [1, 2])], { before: [1, 0], after: [0, 1] })).toEqual([0, 0, 0, 1, 2, 0]);
  });
  it('moves i32 data as i32', () => {
    const y = runOp('transpose', [ids([2, 2], [1, 2, 3, 4])], { perm: [1, 0] })[0];
    expect(y.data).toEqual(Int32Array.from([1, 3, 2, 4]));
    const c = runOp('concat', [ids([1], [7]), ids([2], [8, 9])], { axis: 0 })[0];
    expect(c.data).toEqual(Int32Array.from([7, 8, 9]));
  });
});

const shapeArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });
const same = (a: ArrayLike<number>, b: ArrayLike<number>) => expect(Array.from(a)).toEqual(Array.from(b));

describe('round trips', () => {
  it('reshape to flat and back, and transpose then the inverse permutation, give back the input', () => {
    const withPerm = shapeArb.chain((shape) =>
      fc.tuple(fc.constant(shape), fc.shuffledSubarray(shape.map((_, i) => i), { minLength: shape.length, maxLength: shape.length })),
    );
    fc.assert(
      fc.property(withPerm, fc.nat(), ([shape, perm], seed) => {
        const x = randomTensor(shape, seed, 'f64');
        const flat = runOp('reshape', [x], { shape: [numel(shape)] })[0];
        same(runOp('reshape', [flat], { shape })[0].data, x.data);
        const inv = perm.map((_, i) => perm.indexOf(i));
        const y = runOp('transpose', [x], { perm })[0];
        expect(y.shape).toEqual(perm.map((p) => shape[p]));
        same(runOp('transpose', [y], { perm: inv })[0].data, x.data);
      }),
      { numRuns: 100 },
    );
  });

  // A shape, a seed, and a non-empty box [starts, ends) inside the shape.
  const region = fc.tuple(shapeArb, fc.nat()).chain(([shape, seed]) =>
    fc
      .tuple(...shape.map((d) => fc.integer({ min: 0, max: d - 1 }).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: s + 1, max: d })))),
      )
      .map((box) => ({ shape, seed, starts: box.map(([s]) => s), ends: box.map(([, e]) => e) })),
  );

  it('slice then pad back to full size keeps the region and zeros the rest; pad then slice is the identity', () => {
    fc.assert(
      fc.property(region, ({ shape, seed, starts, ends }) => {
        const x = randomTensor(shape, seed, 'f64');
        const part = runOp('slice', [x], { starts, ends })[0];
        const back = runOp('pad', [part], { before: starts, after: shape.map((d, i) => d - ends[i]) })[0].data;
        const inside = (flat: number) => unravel(flat, shape).every((i, a) => starts[a] <= i && i < ends[a]);
        same(back, Array.from(x.data, (v, i) => (inside(i) ? v : 0)));
        const padded = runOp('pad', [x], { before: starts, after: ends })[0];
        same(runOp('slice', [padded], { starts, ends: shape.map((d, i) => starts[i] + d) })[0].data, x.data);
      }),
      { numRuns: 100 },
    );
  });

  it('concat of consecutive slices along an axis gives back the original', () => {
    fc.assert(
      fc.property(shapeArb, fc.nat(), fc.nat(), fc.array(fc.nat(), { maxLength: 3 }), (shape, seed, axisSeed, cuts) => {
        const axis = axisSeed % shape.length;
        const x = randomTensor(shape, seed, 'f64');
        const points = [...new Set([0, ...cuts.map((c) => 1 + (c % shape[axis])), shape[axis]])].sort((a, b) => a - b);
        const pieces = points.slice(1).map((end, k) => {
          const starts = shape.map((_, i) => (i === axis ? points[k] : 0));
          const ends = shape.map((d, i) => (i === axis ? end : d));
          return runOp('slice', [x], { starts, ends })[0];
        });
        same(runOp('concat', pieces, { axis })[0].data, x.data);
      }),
      { numRuns: 100 },
    );
  });
});
