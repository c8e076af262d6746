// AdamW (decoupled weight decay): m' = b1 m + (1 - b1) u; v' = b2 v + (1 - b2) u^2;
// w' = w - lr * (m' / (1 - b1^t) / (sqrt(v' / (1 - b2^t)) + eps) + wd * w).
import type { OptimizerDescriptor, UpdateRule } from './descriptor.ts';

const same = (p: readonly number[]) => p;

/** 1 - beta^t from lb = ln(beta), without the cancellation of 1 - pow(beta, t) near t * lb = 0. */
const oneMinusPow = `fn oneMinusPow(lb: f32, t: f32) -> f32 {
  let x = t * lb;
  if (x > -0.0625) { return -x * (1.0 + x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0 * (1.0 + x / 6.0))))); }
  return 1.0 - exp(x);
}`;

export const adamwRule: UpdateRule = {
  name: 'adamw',
  hyper: {
    beta1: { default: 0.9, min: 0, max: 0.999999, help: 'decay of the first moment' },
    beta2: { default: 0.999, min: 0, max: 0.999999, help: 'decay of the second moment' },
    eps: { default: 1e-8, min: 0, help: 'added to the root of the second moment' },
  },
  states: [{ name: 'm', shape: same }, { name: 'v', shape: same }],
  usesStep: true,
  reference: ({ w, u, lr, weightDecay, step, hyper: { beta1, beta2, eps }, states: { m, v } }) => {
    const c1 = 1 - beta1 ** step;
    const c2 = 1 - beta2 ** step;
    const n = w.length;
    const [m2, v2, w2] = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    for (let i = 0; i < n; i++) {
      m2[i] = beta1 * m[i] + (1 - beta1) * u[i];
      v2[i] = beta2 * v[i] + (1 - beta2) * u[i] * u[i];
      w2[i] = w[i] - lr * (m2[i] / c1 / (Math.sqrt(v2[i] / c2) + eps) + weightDecay * w[i]);
    }
    return { w: w2, states: { m: m2, v: v2 } };
  },
  wgsl: {
    // 1 - beta and ln(beta) in f64 on the host: exact where f32 arithmetic in the shader is not.
    uniforms: ({ beta1, beta2, eps }) => ({
      b1: beta1, ob1: 1 - beta1, b2: beta2, ob2: 1 - beta2, lb1: Math.log(beta1), lb2: Math.log(beta2), eps,
    }),
    functions: oneMinusPow,
    body: (v) => `let m2 = ${v.uniform('b1')} * ${v.state('m')} + ${v.uniform('ob1')} * ${v.x};
let v2 = ${v.uniform('b2')} * ${v.state('v')} + ${v.uniform('ob2')} * ${v.x} * ${v.x};
${v.state('m')} = m2;
${v.state('v')} = v2;
let w2 = ${v.w} - ${v.lr} * (m2 / oneMinusPow(${v.uniform('lb1')}, ${v.step}) / (sqrt(v2 / oneMinusPow(${v.uniform('lb2')}, ${v.step})) + ${v.uniform('eps')}) + ${v.wd} * ${v.w});`,
  },
};

export const adamw: OptimizerDescriptor = {
  name: 'adamw',
  summary: 'AdamW: first and second moments, decoupled weight decay',
  rule: adamwRule,
  inBackward: false,
  fuseMatmulUpdate: false,
  clipNorm: 'afterBackward',
  masterCopy: true,
};
