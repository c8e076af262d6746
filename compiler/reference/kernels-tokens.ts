// Ops that read i32 token ids: embedding lookup, cross-entropy, and their gradients. Ids are
// checked, not clamped: an out-of-range id is a bug in the data or the model, and the GPU
// kernels would read garbage where this one throws.
import type { Op } from '../ir/ops.ts';
import { fmtShape, numel } from '../ir/shape.ts';
import { type Kernel, lastAxisRows, result } from './kernel.ts';
import { type HostTensor, unravel } from './tensor.ts';
import { rowStats } from './kernels-softmax.ts';

function checkIds(ids: HostTensor, vocab: number, what: string): void {
  for (let i = 0; i < ids.data.length; i++) {
    const id = ids.data[i];
    if (!(id >= 0 && id < vocab))
      throw new Error(`${what} ${id} at ${fmtShape(unravel(i, ids.shape))} is out of range for vocab ${vocab}`);
  }
}

export const tokenKernels = {
  embedding: (ins, _attrs, out, precision) => {
    const [table, ids] = ins;
    const [vocab, d] = table.shape;
    checkIds(ids, vocab, 'token id');
    const y = new Float64Array(numel(out[0].shape));
    for (let i = 0; i < ids.data.length; i++)
      for (let c = 0; c < d; c++) y[i * d + c] = table.data[ids.data[i] * d + c];
    return [result(out[0], precision, y)];
  },
  // Rows scatter-add in position order, in doubles: a repeated id sums exactly the same way every run.
  embeddingGrad: (ins, attrs, out, precision) => {
    const [ids, dy] = ins;
    checkIds(ids, attrs.vocab, 'token id');
    const d = out[0].shape[1];
    const dtable = new Float64Array(attrs.vocab * d);
    for (let i = 0; i < ids.data.length; i++)
      for (let c = 0; c < d; c++) dtable[ids.data[i] * d + c] += dy.data[i * d + c];
    return [result(out[0], precision, dtable)];
  },
  // loss = logsumexp(logits) - logits[target], per position
  crossEntropy: (ins, _attrs, out, precision) => {
    const [logits, targets] = ins;
    const { rows, n } = lastAxisRows(logits.shape);
    checkIds(targets, n, 'target');
    const loss = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const { max, sum } = rowStats(logits.data, r * n, n);
      loss[r] = max + Math.log(sum) - logits.data[r * n + targets.data[r]];
    }
    return [result(out[0], precision, loss)];
  },
  // dlogits = (softmax(logits) - onehot(target)) * dloss
  crossEntropyGrad: (ins, _attrs, out, precision) => {
    const [logits, targets, dloss] = ins;
    const { rows, n } = lastAxisRows(logits.shape);
    checkIds(targets, n, 'target');
    const dx = new Float64Array(logits.data.length);
    for (let r = 0; r < rows; r++) {
      const off = r * n;
      const { max, sum } = rowStats(logits.data, off, n);
      for (let j = 0; j < n; j++) {
        const p = Math.exp(logits.data[off + j] - max) / sum;
        dx[off + j] = (p - (j === targets.data[r] ? 1 : 0)) * dloss.data[r];
      }
    }
    return [result(out[0], precision, dx)];
  },
} satisfies { readonly [O in Extract<Op, 'embedding' | 'embeddingGrad' | 'crossEntropy' | 'crossEntropyGrad'>]: Kernel<O> };
