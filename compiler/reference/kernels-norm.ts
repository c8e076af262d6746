// LayerNorm and RMSNorm over the last axis, with their gradients. Statistics are per row, in
// doubles, with the biased variance (divide by D), as PyTorch's layer_norm does.
import type { Op } from '../ir/ops.ts';
import { type Kernel, lastAxisRows, result } from './kernel.ts';
import type { TensorData } from './tensor.ts';

/** mean and 1/sqrt(var + eps) of one row. */
function moments(x: TensorData, off: number, n: number, eps: number): { mean: number; rstd: number } {
  let sum = 0;
  for (let j = 0; j < n; j++) sum += x[off + j];
  const mean = sum / n;
  let sq = 0;
  for (let j = 0; j < n; j++) sq += (x[off + j] - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(sq / n + eps) };
}

/** 1/sqrt(mean(x^2) + eps) of one row. */
function rmsScale(x: TensorData, off: number, n: number, eps: number): number {
  let sq = 0;
  for (let j = 0; j < n; j++) sq += x[off + j] ** 2;
  return 1 / Math.sqrt(sq / n + eps);
}

export const normKernels = {
  layerNorm: (ins, attrs, out, precision) => {
    const [x, gamma, beta] = ins.map((t) => t.data);
    const { rows, n } = lastAxisRows(ins[0].shape);
    const y = new Float64Array(x.length);
    for (let r = 0; r < rows; r++) {
      const off = r * n;
      const { mean, rstd } = moments(x, off, n, attrs.eps);
      for (let j = 0; j < n; j++) y[off + j] = (x[off + j] - mean) * rstd * gamma[j] + beta[j];
    }
    return [result(out[0], precision, y)];
  },
  // With xhat = (x - mean) * rstd and g = dy * gamma:
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); dgamma = sum(dy * xhat); dbeta = sum(dy).
  layerNormGrad: (ins, attrs, out, precision) => {
    const [x, gamma, dy] = ins.map((t) => t.data);
    const { rows, n } = lastAxisRows(ins[0].shape);
    const dx = new Float64Array(x.length);
    const dgamma = new Float64Array(n);
    const dbeta = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      const off = r * n;
      const { mean, rstd } = moments(x, off, n, attrs.eps);
      let gSum = 0;
      let gxSum = 0;
      for (let j = 0; j < n; j++) {
        const g = dy[off + j] * gamma[j];
        gSum += g;
        gxSum += g * (x[off + j] - mean) * rstd;
      }
      const [gMean, gxMean] = [gSum / n, gxSum / n];
      for (let j = 0; j < n; j++) {
        const xhat = (x[off + j] - mean) * rstd;
        dx[off + j] = rstd * (dy[off + j] * gamma[j] - gMean - xhat * gxMean);
        dgamma[j] += dy[off + j] * xhat;
        dbeta[j] += dy[off + j];
      }
    }
    return [result(out[0], precision, dx), result(out[1], precision, dgamma), result(out[2], precision, dbeta)];
  },
  rmsNorm: (ins, attrs, out, precision) => {
    const [x, gamma] = ins.map((t) => t.data);
    const { rows, n } = lastAxisRows(ins[0].shape);
    const y = new Float64Array(x.length);
    for (let r = 0; r < rows; r++) {
      const off = r * n;
      const s = rmsScale(x, off, n, attrs.eps);
      for (let j = 0; j < n; j++) y[off + j] = x[off + j] * s * gamma[j];
    }
    return [result(out[0], precision, y)];
  },
  // With s = 1/sqrt(mean(x^2) + eps) and g = dy * gamma:
  // dx = s * g - s^3 * x * mean(g * x); dgamma = sum(dy * x * s).
  rmsNormGrad: (ins, attrs, out, precision) => {
    const [x, gamma, dy] = ins.map((t) => t.data);
    const { rows, n } = lastAxisRows(ins[0].shape);
    const dx = new Float64Array(x.length);
    const dgamma = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      const off = r * n;
      const s = rmsScale(x, off, n, attrs.eps);
      let gxSum = 0;
      for (let j = 0; j < n; j++) gxSum += dy[off + j] * gamma[j] * x[off + j];
      const gxMean = gxSum / n;
      for (let j = 0; j < n; j++) {
        dx[off + j] = s * dy[off + j] * gamma[j] - s * s * s * x[off + j] * gxMean;
        dgamma[j] += dy[off + j] * x[off + j] * s;
      }
    }
    return [result(out[0], precision, dx), result(out[1], precision, dgamma)];
  },
} satisfies { readonly [O in Extract<Op, 'layerNorm' | 'layerNormGrad' | 'rmsNorm' | 'rmsNormGrad'>]: Kernel<O> };
