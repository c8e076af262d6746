// Elementwise ops and their gradients: numpy broadcasting for the binary ones, and the exact
// formulas the WGSL emitters must reproduce (GELU is GPT-2's tanh approximation).
import type { Op } from '../ir/ops.ts';
import { numel, sameShape } from '../ir/shape.ts';
import { type Kernel, result } from './kernel.ts';
import { broadcastIndex } from './tensor.ts';

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export const gelu = (x: number): number => 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_K * x * x * x)));

/** d/dx gelu(x), differentiating the tanh approximation itself (not the erf GELU). */
export function geluDerivative(x: number): number {
  const t = Math.tanh(GELU_C * (x + GELU_K * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * x * x);
}

/** d/dx [x * sigmoid(x)] = s * (1 + x * (1 - s)). */
export function siluDerivative(x: number): number {
  const s = sigmoid(x);
  return s * (1 + x * (1 - s));
}

type ElementwiseOp = Extract<
  Op,
  'add' | 'sub' | 'mul' | 'div' | 'neg' | 'scale' | 'fill' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'gelu' | 'silu' | 'relu'
  | 'geluGrad' | 'siluGrad' | 'reluGrad' | 'tanhGrad'
>;

function unary(f: (x: number) => number): Kernel<Op> {
  return (ins, _attrs, out, precision) => {
    const x = ins[0].data;
    const y = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
    return [result(out[0], precision, y)];
  };
}

/** Binary with numpy broadcasting; also the (x, dy) gradient ops, whose shapes are equal. */
function binary(f: (a: number, b: number) => number): Kernel<Op> {
  return (ins, _attrs, out, precision) => {
    const [a, b] = [ins[0], ins[1]];
    const shape = out[0].shape;
    const y = new Float64Array(numel(shape));
    if (sameShape(a.shape, shape) && sameShape(b.shape, shape)) {
      for (let i = 0; i < y.length; i++) y[i] = f(a.data[i], b.data[i]);
    } else {
      const ia = broadcastIndex(a.shape, shape);
      const ib = broadcastIndex(b.shape, shape);
      for (let i = 0; i < y.length; i++) y[i] = f(a.data[ia[i]], b.data[ib[i]]);
    }
    return [result(out[0], precision, y)];
  };
}

export const elementwiseKernels = {
  add: binary((a, b) => a + b),
  sub: binary((a, b) => a - b),
  mul: binary((a, b) => a * b),
  div: binary((a, b) => a / b),
  neg: unary((x) => -x),
  scale: (ins, attrs, out, precision) => unary((x) => attrs.c * x)(ins, attrs, out, precision),
  fill: (_ins, attrs, out, precision) => [result(out[0], precision, new Float64Array(numel(attrs.shape)).fill(attrs.value))],
  exp: unary(Math.exp),
  log: unary(Math.log),
  sqrt: unary(Math.sqrt),
  rsqrt: unary((x) => 1 / Math.sqrt(x)),
  tanh: unary(Math.tanh),
  gelu: unary(gelu),
  silu: unary((x) => x * sigmoid(x)),
  relu: unary((x) => Math.max(x, 0)), // NaN stays NaN, so a diverged run shows
  geluGrad: binary((x, dy) => dy * geluDerivative(x)),
  siluGrad: binary((x, dy) => dy * siluDerivative(x)),
  reluGrad: binary((x, dy) => (x > 0 ? dy : 0)),
  tanhGrad: binary((y, dy) => dy * (1 - y * y)),
} satisfies { readonly [O in ElementwiseOp]: Kernel<O> };
