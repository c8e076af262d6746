// Batched matmul over the last two axes. Leading (batch) axes broadcast; transA / transB read
// that operand's last two axes swapped. Each output element is one dot product summed in
// doubles in ascending k, then rounded once.
import { type Kernel, result } from './kernel.ts';
import { broadcastIndex } from './tensor.ts';

export const matmul: Kernel<'matmul'> = (ins, attrs, out, precision) => {
  const [a, b] = ins;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [m, k] = attrs.transA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const n = attrs.transB ? b.shape[rb - 2] : b.shape[rb - 1];
  // Element (r, c) of a stored [R, C] matrix sits at r*C + c; transposing swaps the strides.
  const [aRow, aCol] = attrs.transA ? [1, m] : [k, 1];
  const [bRow, bCol] = attrs.transB ? [1, k] : [n, 1];

  const batchShape = out[0].shape.slice(0, -2);
  const aBatch = broadcastIndex(a.shape.slice(0, -2), batchShape);
  const bBatch = broadcastIndex(b.shape.slice(0, -2), batchShape);
  const y = new Float64Array(aBatch.length * m * n);
  for (let p = 0; p < aBatch.length; p++) {
    const aOff = aBatch[p] * m * k;
    const bOff = bBatch[p] * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let l = 0; l < k; l++) acc += a.data[aOff + i * aRow + l * aCol] * b.data[bOff + l * bRow + j * bCol];
        y[(p * m + i) * n + j] = acc;
      }
    }
  }
  return [result(out[0], precision, y)];
};
