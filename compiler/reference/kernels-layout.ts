// Ops that only move elements: reshape, transpose, slice, concat, broadcastTo, pad. They work on
// any dtype (i32 token ids included) and never change a value, so storing them rounds nothing.
import type { Op } from '../ir/ops.ts';
import { numel, strides } from '../ir/shape.ts';
import { type Kernel, result } from './kernel.ts';
import { broadcastIndex, strided } from './tensor.ts';

/** out[i] = x[index[i]] */
function gather(x: ArrayLike<number>, index: Int32Array): Float64Array {
  const y = new Float64Array(index.length);
  for (let i = 0; i < index.length; i++) y[i] = x[index[i]];
  return y;
}

/** out[index[i]] = x[i] */
function scatter(into: Float64Array, x: ArrayLike<number>, index: Int32Array): void {
  for (let i = 0; i < index.length; i++) into[index[i]] = x[i];
}

export const layoutKernels = {
  reshape: (ins, _attrs, out, precision) => [result(out[0], precision, ins[0].data)],
  transpose: (ins, attrs, out, precision) => {
    const st = strides(ins[0].shape);
    const index = strided(out[0].shape, attrs.perm.map((p) => st[p]));
    return [result(out[0], precision, gather(ins[0].data, index))];
  },
  slice: (ins, attrs, out, precision) => {
    const st = strides(ins[0].shape);
    const offset = attrs.starts.reduce((acc, s, i) => acc + s * st[i], 0);
    return [result(out[0], precision, gather(ins[0].data, strided(out[0].shape, st, offset)))];
  },
  concat: (ins, attrs, out, precision) => {
    const st = strides(out[0].shape);
    const y = new Float64Array(numel(out[0].shape));
    let at = 0;
    for (const x of ins) {
      scatter(y, x.data, strided(x.shape, st, at * st[attrs.axis]));
      at += x.shape[attrs.axis];
    }
    return [result(out[0], precision, y)];
  },
  broadcastTo: (ins, _attrs, out, precision) =>
    [result(out[0], precision, gather(ins[0].data, broadcastIndex(ins[0].shape, out[0].shape)))],
  pad: (ins, attrs, out, precision) => {
    const st = strides(out[0].shape);
    const offset = attrs.before.reduce((acc, b, i) => acc + b * st[i], 0);
    const y = new Float64Array(numel(out[0].shape));
    scatter(y, ins[0].data, strided(ins[0].shape, st, offset));
    return [result(out[0], precision, y)];
  },
} satisfies { readonly [O in Extract<Op, 'reshape' | 'transpose' | 'slice' | 'concat' | 'broadcastTo' | 'pad'>]: Kernel<O> };
