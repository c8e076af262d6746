// Rotary embeddings and fused scaled dot-product attention. Attention keeps its T x T
// probabilities in doubles inside the op (they are never a value of the graph), and its gradient
// recomputes them from q and k, as the fused GPU kernel will.
import type { Op, OpAttrs } from '../ir/ops.ts';
import { type Kernel, matrices, result } from './kernel.ts';
import type { TensorData } from './tensor.ts';

/**
 * Row-softmax of s = q k^T * scale for one [T, Dh] matrix at `off`; causal rows mask j > i.
 * Masked entries get probability exactly 0. `lse` (when given) gets each row's log-sum-exp of
 * its scaled scores at `row0 + i`.
 */
function probabilities(
  q: TensorData,
  k: TensorData,
  off: number,
  t: number,
  d: number,
  scale: number,
  causal: boolean,
  lse?: { readonly out: Float64Array; readonly row0: number },
): Float64Array {
  const p = new Float64Array(t * t);
  for (let i = 0; i < t; i++) {
    const last = causal ? i : t - 1;
    let max = -Infinity;
    for (let j = 0; j <= last; j++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[off + i * d + c] * k[off + j * d + c];
      p[i * t + j] = dot * scale;
      if (p[i * t + j] > max || Number.isNaN(p[i * t + j])) max = p[i * t + j];
    }
    let sum = 0;
    for (let j = 0; j <= last; j++) {
      p[i * t + j] = Math.exp(p[i * t + j] - max);
      sum += p[i * t + j];
    }
    for (let j = 0; j <= last; j++) p[i * t + j] /= sum;
    if (lse) lse.out[lse.row0 + i] = max + Math.log(sum);
  }
  return p;
}

/**
 * Rotary embedding of x [..., T, Dh] whose row t sits at position `start + t` (`rope` has start
 * 0; the inference op `ropeAt` takes it from its position input): one rule for both.
 */
export function rotate(x: TensorData, shape: readonly number[], attrs: OpAttrs['rope'], start: number): Float64Array {
  const { batch, t, d } = matrices(shape);
  const half = d / 2;
  const sign = attrs.inverse ? -1 : 1;
  const y = new Float64Array(x.length);
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < t; r++) {
      const row = (b * t + r) * d;
      const pos = start + r;
      for (let i = 0; i < half; i++) {
        const theta = sign * pos * attrs.base ** ((-2 * i) / d);
        const [cos, sin] = [Math.cos(theta), Math.sin(theta)];
        const [x1, x2] = [x[row + i], x[row + i + half]];
        y[row + i] = x1 * cos - x2 * sin;
        y[row + i + half] = x1 * sin + x2 * cos;
      }
    }
  }
  return y;
}

export const attentionKernels = {
  rope: (ins, attrs, out, precision) => [result(out[0], precision, rotate(ins[0].data, ins[0].shape, attrs, 0))],
  attention: (ins, attrs, out, precision) => {
    const [q, k, v] = ins.map((x) => x.data);
    const { batch, t, d } = matrices(ins[0].shape);
    const y = new Float64Array(q.length);
    const lse = new Float64Array(batch * t);
    for (let b = 0; b < batch; b++) {
      const off = b * t * d;
      const p = probabilities(q, k, off, t, d, attrs.scale, attrs.causal, { out: lse, row0: b * t });
      for (let i = 0; i < t; i++)
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < t; j++) acc += p[i * t + j] * v[off + j * d + c];
          y[off + i * d + c] = acc;
        }
    }
    return [result(out[0], precision, y), result(out[1], precision, lse)];
  },
  // dv = p^T dout; dp = dout v^T; ds = p * (dp - rowsum(dp * p)); dq = ds k * scale; dk = ds^T q * scale.
  // The oracle recomputes p in doubles and does not read the forward's lse (input 3).
  attentionGrad: (ins, attrs, out, precision) => {
    const [q, k, v, , dout] = ins.map((x) => x.data);
    const { batch, t, d } = matrices(ins[0].shape);
    const [dq, dk, dv] = [0, 1, 2].map(() => new Float64Array(q.length));
    const ds = new Float64Array(t * t);
    for (let b = 0; b < batch; b++) {
      const off = b * t * d;
      const p = probabilities(q, k, off, t, d, attrs.scale, attrs.causal);
      for (let i = 0; i < t; i++) {
        let rowDot = 0;
        for (let j = 0; j < t; j++) {
          let dp = 0;
          for (let c = 0; c < d; c++) dp += dout[off + i * d + c] * v[off + j * d + c];
          ds[i * t + j] = dp;
          rowDot += dp * p[i * t + j];
        }
        for (let j = 0; j < t; j++) ds[i * t + j] = p[i * t + j] * (ds[i * t + j] - rowDot);
      }
      for (let r = 0; r < t; r++)
        for (let c = 0; c < d; c++) {
          let [accQ, accK, accV] = [0, 0, 0];
          for (let l = 0; l < t; l++) {
            accQ += ds[r * t + l] * k[off + l * d + c];
            accK += ds[l * t + r] * q[off + l * d + c];
            accV += p[l * t + r] * dout[off + l * d + c];
          }
          dq[off + r * d + c] = accQ * attrs.scale;
          dk[off + r * d + c] = accK * attrs.scale;
          dv[off + r * d + c] = accV;
        }
    }
    return [result(out[0], precision, dq), result(out[1], precision, dk), result(out[2], precision, dv)];
  },
} satisfies { readonly [O in Extract<Op, 'rope' | 'attention' | 'attentionGrad'>]: Kernel<O> };
