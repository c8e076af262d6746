// The optimizer step's kernels: SGD and AdamW updates, and the clip-norm reduction.
// Each new value is computed in doubles from the stored inputs and rounded once when stored.
import type { UpdateAttrs } from '../ir/ops.ts';
import type { Kernel } from './kernel.ts';
import { result } from './kernel.ts';
import type { HostTensor } from './tensor.ts';

/** The update direction for element i: the gradient scaled by the clip-norm factor, then clamped. */
function gradient(g: HostTensor, scale: number, a: UpdateAttrs): (i: number) => number {
  const cv = a.clipValue;
  return (i) => {
    const u = g.data[i] * scale;
    return cv === null ? u : Math.min(cv, Math.max(-cv, u));
  };
}

const sgdUpdate: Kernel<'sgdUpdate'> = (ins, a, out, precision) => {
  const [p, g, lr, wd] = ins;
  const scale = a.scaled ? ins[4].data[0] : 1;
  const w = a.master ? ins[ins.length - 1] : p;
  const u = gradient(g, scale, a);
  const rate = lr.data[0];
  const decay = wd.data[0];
  const next = Float64Array.from(w.data, (x, i) => x - rate * (u(i) + decay * x));
  return out.map((t) => result(t, precision, next));
};

const adamwUpdate: Kernel<'adamwUpdate'> = (ins, a, out, precision) => {
  const [p, g, lr, wd, step] = ins;
  const scale = a.scaled ? ins[5].data[0] : 1;
  const first = 5 + (a.scaled ? 1 : 0);
  const [m, v] = [ins[first], ins[first + 1]];
  const w = a.master ? ins[first + 2] : p;
  const u = gradient(g, scale, a);
  const t = step.data[0];
  const c1 = 1 - a.beta1 ** t;
  const c2 = 1 - a.beta2 ** t;
  const n = w.data.length;
  const [m2, v2, w2] = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  for (let i = 0; i < n; i++) {
    const ui = u(i);
    m2[i] = a.beta1 * m.data[i] + (1 - a.beta1) * ui;
    v2[i] = a.beta2 * v.data[i] + (1 - a.beta2) * ui * ui;
    w2[i] = w.data[i] - lr.data[0] * (m2[i] / c1 / (Math.sqrt(v2[i] / c2) + a.eps) + wd.data[0] * w.data[i]);
  }
  const values = [w2, m2, v2, w2];
  return out.map((t2, k) => result(t2, precision, values[k]));
};

export const optimizerKernels = {
  sgdUpdate,
  adamwUpdate,
  sumSquares: (ins, _a, out, precision) => {
    let s = 0;
    for (const x of ins[0].data) s += x * x;
    return [result(out[0], precision, [s])];
  },
  clipFactor: (ins, a, out, precision) => [
    result(out[0], precision, [Math.min(1, a.maxNorm / (Math.sqrt(ins[0].data[0]) + 1e-6))]),
  ],
} satisfies { readonly [O in 'sgdUpdate' | 'adamwUpdate' | 'sumSquares' | 'clipFactor']: Kernel<O> };
