import { describe, expect, it } from 'vitest';
import { run1, runOp, t } from './helpers.ts';

describe('sum, mean, max over sorted axes', () => {
  const x = t([2, 3], [1, 2, 3, 4, 5, 6]);
  it('reduce one axis, both, or none; keepDims keeps size-1 axes', () => {
    expect(run1('sum', [x], { axes: [0], keepDims: false })).toEqual([5, 7, 9]);
    const rows = runOp('sum', [x], { axes: [1], keepDims: true })[0];
    expect(rows.shape).toEqual([2, 1]);
    expect(Array.from(rows.data)).toEqual([6, 15]);
    const all = runOp('sum', [x], { axes: [0, 1], keepDims: false })[0];
    expect(all.shape).toEqual([]);
    expect(Array.from(all.data)).toEqual([21]);
    expect(run1('sum', [x], { axes: [], keepDims: false })).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it('reduces non-adjacent axes of a rank-3 tensor', () => {
    const y = t([2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(run1('sum', [y], { axes: [0, 2], keepDims: false })).toEqual([10, 18]);
    expect(run1('max', [y], { axes: [0, 2], keepDims: true })).toEqual([5, 7]);
    expect(run1('mean', [y], { axes: [1], keepDims: false })).toEqual([1, 2, 5, 6]);
  });
  it('mean divides by the number of reduced elements; max takes the largest', () => {
    expect(run1('mean', [x], { axes: [1], keepDims: false })).toEqual([2, 5]);
    expect(run1('mean', [x], { axes: [0, 1], keepDims: false })).toEqual([3.5]);
    expect(run1('max', [t([2, 3], [-1, -5, -3, 2, 9, 0])], { axes: [1], keepDims: false })).toEqual([-1, 9]);
  });
  it('max propagates NaN', () => {
    expect(run1('max', [t([3], [1, NaN, 2])], { axes: [0], keepDims: false })).toEqual([NaN]);
  });
});

describe('maxGrad', () => {
  it('sends dy to every position equal to the max (ties included), zero elsewhere', () => {
    const x = t([2, 3], [1, 3, 3, 2, 0, 1]);
    const y = t([2], [3, 2]);
    expect(run1('maxGrad', [x, y, t([2], [10, 20])], { axes: [1], keepDims: false })).toEqual([0, 10, 10, 20, 0, 0]);
  });
  it('with keepDims and over the leading axis', () => {
    const x = t([2, 2], [1, 4, 3, 2]);
    expect(run1('maxGrad', [x, t([1, 2], [3, 4]), t([1, 2], [5, 6])], { axes: [0], keepDims: true })).toEqual([0, 6, 5, 0]);
  });
});
