import { describe, expect, it } from 'vitest';
import { expectClose, numericGrad, run1, runOp, t } from './helpers.ts';

describe('binary ops broadcast like numpy', () => {
  const a = t([2, 3], [1, 2, 3, 4, 5, 6]);
  it('add: same shape, a row, a column, a scalar', () => {
    expect(run1('add', [a, a], {})).toEqual([2, 4, 6, 8, 10, 12]);
    expect(run1('add', [a, t([3], [10, 20, 30])], {})).toEqual([11, 22, 33, 14, 25, 36]);
    expect(run1('add', [t([2, 1], [100, 200]), t([1, 3], [1, 2, 3])], {})).toEqual([101, 102, 103, 201, 202, 203]);
    expect(run1('add', [t([], [0.5]), a], {})).toEqual([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]);
  });
  it('sub, mul, div keep operand order under broadcasting', () => {
    expect(run1('sub', [t([3], [10, 20, 30]), a], {})).toEqual([9, 18, 27, 6, 15, 24]);
    expect(run1('mul', [a, t([2, 1], [2, -1])], {})).toEqual([2, 4, 6, -4, -5, -6]);
    expect(run1('div', [a, t([3], [1, 2, 4])], {})).toEqual([1, 1, 0.75, 4, 2.5, 1.5]);
    expect(run1('div', [t([], [1]), t([2], [0, -0])], {})).toEqual([Infinity, -Infinity]);
  });
  it('broadcasts across ranks: [2, 1, 3] + [4, 1] -> [2, 4, 3]', () => {
    const y = runOp('add', [t([2, 1, 3], [0, 1, 2, 3, 4, 5]), t([4, 1], [0, 10, 20, 30])], {})[0];
    expect(y.shape).toEqual([2, 4, 3]);
    expect(Array.from(y.data.slice(0, 6))).toEqual([0, 1, 2, 10, 11, 12]);
    expect(Array.from(y.data.slice(21))).toEqual([33, 34, 35]);
  });
});

describe('unary ops', () => {
  const x = t([4], [-2, -0.5, 0.5, 3]);
  it('neg, scale, exp, log, sqrt, rsqrt, tanh', () => {
    expect(run1('neg', [x], {})).toEqual([2, 0.5, -0.5, -3]);
    expect(run1('scale', [x], { c: -2 })).toEqual([4, 1, -1, -6]);
    expect(run1('exp', [t([2], [0, 1])], {})).toEqual([1, Math.E]);
    expect(run1('log', [t([3], [1, Math.E, 0])], {})).toEqual([0, 1, -Infinity]);
    expect(run1('sqrt', [t([2], [4, 2])], {})).toEqual([2, Math.SQRT2]);
    expect(run1('rsqrt', [t([2], [4, 0.25])], {})).toEqual([0.5, 2]);
    expect(run1('tanh', [t([2], [0, 1])], {})).toEqual([0, Math.tanh(1)]);
  });
  it('gelu is the tanh approximation', () => {
    expectClose(run1('gelu', [t([3], [-1, 0, 1])], {}), [-0.15880800939172324, 0, 0.8411919906082768], 1e-12);
  });
  it('silu is x * sigmoid(x) and relu clips at zero', () => {
    expectClose(run1('silu', [t([3], [-1, 0, 1])], {}), [-0.2689414213699951, 0, 0.7310585786300049], 1e-15);
    expect(run1('silu', [t([1], [-1000])], {})).toEqual([-0]);
    expect(run1('relu', [x], {})).toEqual([0, 0, 0.5, 3]);
  });
  it('fill makes a constant of any dtype', () => {
    const f = runOp('fill', [], { value: 1.5, shape: [2, 2], dtype: 'f32' })[0];
    expect(f.shape).toEqual([2, 2]);
    expect(Array.from(f.data)).toEqual([1.5, 1.5, 1.5, 1.5]);
    const i = runOp('fill', [], { value: 7, shape: [3], dtype: 'i32' })[0];
    expect(i.data).toEqual(Int32Array.from([7, 7, 7]));
  });
});

describe('elementwise gradients', () => {
  const x = t([5], [-2.5, -0.7, 0.1, 0.9, 3.2]);
  const dy = t([5], [0.3, -1.1, 2, 0.5, -0.4]);
  // d/dx sum(f(x) * dy), by finite differences of the forward kernel itself.
  const fd = (op: 'gelu' | 'silu') => numericGrad((v) => run1(op, [t([5], v)], {}).reduce((s, y, i) => s + y * dy.data[i], 0), x.data);

  it('geluGrad and siluGrad are the exact derivatives of gelu and silu, times dy', () => {
    expectClose(run1('geluGrad', [x, dy], {}), fd('gelu'), 1e-8);
    expectClose(run1('siluGrad', [x, dy], {}), fd('silu'), 1e-8);
  });
  it('reluGrad passes dy where x > 0; tanhGrad is dy * (1 - y^2)', () => {
    expect(run1('reluGrad', [t([3], [-1, 0, 2]), t([3], [5, 6, 7])], {})).toEqual([0, 0, 7]);
    expect(run1('tanhGrad', [t([2], [0.5, -1]), t([2], [2, 3])], {})).toEqual([1.5, 0]);
  });
});

describe('storage and rounding', () => {
  it('f32 precision stores results rounded to f32', () => {
    const y = runOp('add', [t([1], [0.1]), t([1], [0.2])], {}, { precision: 'f32' })[0];
    expect(y.data).toBeInstanceOf(Float32Array);
    expect(y.data[0]).toBe(Math.fround(Math.fround(0.1) + Math.fround(0.2)));
  });
  it('f16 values are rounded to f16 under f32, and kept in f64 under f64', () => {
    const ins = [t([1], [1]), t([1], [2 ** -11])];
    expect(run1('add', ins, {}, { precision: 'f32', dtype: 'f16' })).toEqual([1]);
    expect(run1('add', ins, {}, { precision: 'f64', dtype: 'f16' })).toEqual([1 + 2 ** -11]);
    expect(run1('scale', [t([1], [60000])], { c: 2 }, { precision: 'f32', dtype: 'f16' })).toEqual([Infinity]);
  });
});
