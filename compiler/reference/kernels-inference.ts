// The inference ops on host tensors: a position table's rows at a runtime position, rope at a
// runtime offset, a key/value cache write and attention over the cache. Positions past the end
// of an axis are clamped (reads) or dropped (writes): they only occur for padding rows of a
// prefill chunk, whose results nobody reads.
import type { Op } from '../ir/ops.ts';
import { strides } from '../ir/shape.ts';
import { type Kernel, matrices, result } from './kernel.ts';
import { rotate } from './kernels-attention.ts';

export const inferenceKernels = {
  positionSlice: (ins, attrs, out, precision) => {
    const [x, pos] = [ins[0], ins[1].data[0]];
    const inner = strides(x.shape)[attrs.axis];
    const outer = x.shape.slice(0, attrs.axis).reduce((a, b) => a * b, 1);
    const len = x.shape[attrs.axis];
    const y = new Float64Array(outer * attrs.size * inner);
    for (let o = 0; o < outer; o++)
      for (let r = 0; r < attrs.size; r++) {
        const src = (o * len + Math.min(pos + r, len - 1)) * inner;
        const dst = (o * attrs.size + r) * inner;
        for (let i = 0; i < inner; i++) y[dst + i] = x.data[src + i];
      }
    return [result(out[0], precision, y)];
  },
  ropeAt: (ins, attrs, out, precision) => [result(out[0], precision, rotate(ins[0].data, ins[0].shape, attrs, ins[1].data[0]))],
  cacheWrite: (ins, _attrs, out, precision) => {
    const [cache, x, pos] = [ins[0], ins[1], ins[2].data[0]];
    const { batch, t: maxT, d } = matrices(cache.shape);
    const n = x.shape[x.shape.length - 2];
    const y = Float64Array.from(cache.data);
    for (let b = 0; b < batch; b++)
      for (let r = 0; r < n && pos + r < maxT; r++)
        for (let c = 0; c < d; c++) y[(b * maxT + pos + r) * d + c] = x.data[(b * n + r) * d + c];
    return [result(out[0], precision, y)];
  },
  cachedAttention: (ins, attrs, out, precision) => {
    const [q, k, v] = ins.slice(0, 3).map((x) => x.data);
    const pos = ins[3].data[0];
    const { batch, t: n, d } = matrices(ins[0].shape);
    const maxT = ins[1].shape[ins[1].shape.length - 2];
    const y = new Float64Array(q.length);
    const p = new Float64Array(maxT);
    for (let b = 0; b < batch; b++)
      for (let i = 0; i < n; i++) {
        // The same arithmetic as attention's causal row: the max over j <= last, then exp, then sum.
        const last = Math.min(pos + i, maxT - 1);
        const qo = (b * n + i) * d;
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[qo + c] * k[(b * maxT + j) * d + c];
          p[j] = dot * attrs.scale;
          if (p[j] > max || Number.isNaN(p[j])) max = p[j];
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          p[j] = Math.exp(p[j] - max);
          sum += p[j];
        }
        for (let j = 0; j <= last; j++) p[j] /= sum;
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j <= last; j++) acc += p[j] * v[(b * maxT + j) * d + c];
          y[qo + c] = acc;
        }
      }
    return [result(out[0], precision, y)];
  },
} satisfies { readonly [O in Extract<Op, 'positionSlice' | 'ropeAt' | 'cacheWrite' | 'cachedAttention'>]: Kernel<O> };
