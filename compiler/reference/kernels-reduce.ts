// Reductions over sorted axes, and max's gradient. Each input element is mapped to its output
// slot by broadcasting the keep-dims output shape back over the input: the same index walk the
// VJPs use to undo a broadcast.
import type { Op } from '../ir/ops.ts';
import { numel, reducedShape } from '../ir/shape.ts';
import type { Shape } from '../ir/types.ts';
import { type Kernel, result } from './kernel.ts';
import { broadcastIndex } from './tensor.ts';

/** For each element of `shape`, the flat index of its slot in the reduction over `axes`. */
const slots = (shape: Shape, axes: readonly number[]): Int32Array =>
  broadcastIndex(reducedShape(shape, axes, true), shape);

/** Accumulates in doubles, visiting the input in row-major order, so the sum order is fixed. */
function reduce(
  init: number,
  step: (acc: number, x: number) => number,
  finish: (acc: number, count: number) => number = (acc) => acc,
): Kernel<'sum' | 'mean' | 'max'> {
  return (ins, attrs, out, precision) => {
    const x = ins[0];
    const slot = slots(x.shape, attrs.axes);
    const acc = new Float64Array(numel(out[0].shape)).fill(init);
    for (let i = 0; i < x.data.length; i++) acc[slot[i]] = step(acc[slot[i]], x.data[i]);
    const count = acc.length === 0 ? 0 : x.data.length / acc.length;
    for (let j = 0; j < acc.length; j++) acc[j] = finish(acc[j], count);
    return [result(out[0], precision, acc)];
  };
}

export const reduceKernels = {
  sum: reduce(0, (acc, x) => acc + x),
  mean: reduce(0, (acc, x) => acc + x, (acc, count) => acc / count),
  // A NaN anywhere makes the max NaN, as Math.max would.
  max: reduce(-Infinity, (acc, x) => (x > acc || Number.isNaN(x) ? x : acc)),
  // Ties all receive the full dy: x equals the max, whichever element produced it.
  maxGrad: (ins, attrs, out, precision) => {
    const [x, y, dy] = ins;
    const slot = slots(x.shape, attrs.axes);
    const dx = new Float64Array(x.data.length);
    for (let i = 0; i < dx.length; i++) dx[i] = x.data[i] === y.data[slot[i]] ? dy.data[slot[i]] : 0;
    return [result(out[0], precision, dx)];
  },
} satisfies { readonly [O in Extract<Op, 'sum' | 'mean' | 'max' | 'maxGrad'>]: Kernel<O> };
