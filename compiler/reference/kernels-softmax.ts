// Softmax and log-softmax over the last axis, and their gradients. Both subtract the row max
// first so exp never overflows; the WGSL kernels must do the same to match.
import type { Op } from '../ir/ops.ts';
import { type Kernel, lastAxisRows, result } from './kernel.ts';
import type { TensorData } from './tensor.ts';

/** The row's max and sum of exp(x - max): logsumexp = max + log(sum). */
export function rowStats(x: TensorData, off: number, n: number): { max: number; sum: number } {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (x[off + j] > max || Number.isNaN(x[off + j])) max = x[off + j];
  // A row of all -inf would give -inf - -inf = NaN; its softmax is undefined, and stays NaN.
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[off + j] - max);
  return { max, sum };
}

/** Applies `row(off, n, y)` to every row of the first input, writing row results into y. */
function rowwise(row: (ins: readonly TensorData[], off: number, n: number, y: Float64Array) => void): Kernel<Op> {
  return (ins, _attrs, out, precision) => {
    const { rows, n } = lastAxisRows(ins[0].shape);
    const y = new Float64Array(ins[0].data.length);
    const data = ins.map((t) => t.data);
    for (let r = 0; r < rows; r++) row(data, r * n, n, y);
    return [result(out[0], precision, y)];
  };
}

export const softmaxKernels = {
  softmax: rowwise(([x], off, n, y) => {
    const { max, sum } = rowStats(x, off, n);
    for (let j = 0; j < n; j++) y[off + j] = Math.exp(x[off + j] - max) / sum;
  }),
  logSoftmax: rowwise(([x], off, n, y) => {
    const { max, sum } = rowStats(x, off, n);
    const lse = max + Math.log(sum);
    for (let j = 0; j < n; j++) y[off + j] = x[off + j] - lse;
  }),
  // dx = y * (dy - sum(dy * y))
  softmaxGrad: rowwise(([s, dy], off, n, y) => {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += dy[off + j] * s[off + j];
    for (let j = 0; j < n; j++) y[off + j] = s[off + j] * (dy[off + j] - dot);
  }),
  // dx = dy - exp(y) * sum(dy), with y the log-softmax output
  logSoftmaxGrad: rowwise(([ls, dy], off, n, y) => {
    let total = 0;
    for (let j = 0; j < n; j++) total += dy[off + j];
    for (let j = 0; j < n; j++) y[off + j] = dy[off + j] - Math.exp(ls[off + j]) * total;
  }),
} satisfies { readonly [O in Extract<Op, 'softmax' | 'logSoftmax' | 'softmaxGrad' | 'logSoftmaxGrad'>]: Kernel<O> };
