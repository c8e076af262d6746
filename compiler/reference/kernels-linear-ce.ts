// The fused LM head and loss (ops.ts linearCrossEntropy): the oracle the WGSL kernels are tested
// against. It computes what matmul + crossEntropy compute, each logit a dot product in doubles in
// ascending k, but never rounds the logits to storage (the fused kernels keep them in f32
// workspace) and needs no chunks: the chunk only shapes the GPU's passes over the vocabulary.
import type { OpAttrs } from '../ir/ops.ts';
import { fmtShape, numel } from '../ir/shape.ts';
import { type Kernel, result } from './kernel.ts';
import { type HostTensor, unravel } from './tensor.ts';

interface Head {
  readonly rows: number;
  readonly d: number;
  readonly v: number;
  /** Flat index of W(l, j): row l of the [D, V] view, whatever the stored layout. */
  readonly at: (l: number, j: number) => number;
}

function headOf(h: HostTensor, w: HostTensor, a: OpAttrs['linearCrossEntropy']): Head {
  const d = h.shape[h.shape.length - 1];
  const v = a.transW ? w.shape[0] : w.shape[1];
  return { rows: d === 0 ? 0 : numel(h.shape) / d, d, v, at: a.transW ? (l, j) => j * d + l : (l, j) => l * v + j };
}

/** Row r's logits, in doubles. */
function logitsRow(h: HostTensor, w: HostTensor, head: Head, r: number, out: Float64Array): void {
  for (let j = 0; j < head.v; j++) {
    let acc = 0;
    for (let l = 0; l < head.d; l++) acc += h.data[r * head.d + l] * w.data[head.at(l, j)];
    out[j] = acc;
  }
}

function checkTargets(t: HostTensor, v: number): void {
  for (let i = 0; i < t.data.length; i++)
    if (!(t.data[i] >= 0 && t.data[i] < v)) throw new Error(`target ${t.data[i]} at ${fmtShape(unravel(i, t.shape))} is out of range for vocab ${v}`);
}

export const linearCrossEntropyKernels = {
  // loss = lse(logits) - logits[target], lse = max + log(sum exp(logits - max)), per position
  linearCrossEntropy: ([h, w, targets], attrs, out, precision) => {
    const head = headOf(h, w, attrs);
    checkTargets(targets, head.v);
    const [loss, lse] = [new Float64Array(head.rows), new Float64Array(head.rows)];
    const z = new Float64Array(head.v);
    for (let r = 0; r < head.rows; r++) {
      logitsRow(h, w, head, r, z);
      let max = -Infinity;
      for (let j = 0; j < head.v; j++) if (z[j] > max || Number.isNaN(z[j])) max = z[j];
      let sum = 0;
      for (let j = 0; j < head.v; j++) sum += Math.exp(z[j] - max);
      lse[r] = max + Math.log(sum);
      loss[r] = lse[r] - z[targets.data[r]];
    }
    return [result(out[0], precision, loss), result(out[1], precision, lse)];
  },
  // g = (exp(logits - lse) - onehot(target)) * dloss per row; dh = g W^T, dW = h^T g (rows in order)
  linearCrossEntropyGrad: ([h, w, targets, lse, dloss], attrs, out, precision) => {
    const head = headOf(h, w, attrs);
    checkTargets(targets, head.v);
    const dh = new Float64Array(numel(h.shape));
    const dw = new Float64Array(numel(w.shape));
    const z = new Float64Array(head.v);
    for (let r = 0; r < head.rows; r++) {
      logitsRow(h, w, head, r, z);
      for (let j = 0; j < head.v; j++) z[j] = (Math.exp(z[j] - lse.data[r]) - (j === targets.data[r] ? 1 : 0)) * dloss.data[r];
      for (let l = 0; l < head.d; l++) {
        const x = h.data[r * head.d + l];
        let acc = 0;
        for (let j = 0; j < head.v; j++) {
          acc += z[j] * w.data[head.at(l, j)];
          dw[head.at(l, j)] += x * z[j];
        }
        dh[r * head.d + l] = acc;
      }
    }
    return [result(out[0], precision, dh), result(out[1], precision, dw)];
  },
} satisfies { readonly [O in 'linearCrossEntropy' | 'linearCrossEntropyGrad']: Kernel<O> };
