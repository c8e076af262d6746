// The elementwise ops' reference kernels, from their table (ir/elementwise-ops.ts): each op's JS
// formula in f64, with numpy broadcasting for the binary ones; plus fill, which has no operand.
import { elementwiseDef, elementwiseOpNames, type ElementwiseOp } from '../ir/elementwise-ops.ts';
import type { Op } from '../ir/ops.ts';
import { numel, sameShape } from '../ir/shape.ts';
import { type Kernel, result } from './kernel.ts';
import { broadcastIndex } from './tensor.ts';

/** `op`'s formula over every element: unary, or binary with numpy broadcasting (the gradient ops' shapes are equal). */
function formulaKernel(op: ElementwiseOp): Kernel<Op> {
  const def = elementwiseDef(op);
  return (ins, attrs, out, precision) => {
    const k = attrs as Readonly<Record<string, number>>;
    const f = def.js;
    const shape = out[0].shape;
    const y = new Float64Array(numel(shape));
    if (def.operands === 'unary') {
      const x = ins[0].data;
      for (let i = 0; i < x.length; i++) y[i] = f(x[i], 0, k);
      return [result(out[0], precision, y)];
    }
    const [a, b] = [ins[0], ins[1]];
    if (sameShape(a.shape, shape) && sameShape(b.shape, shape)) {
      for (let i = 0; i < y.length; i++) y[i] = f(a.data[i], b.data[i], k);
    } else {
      const ia = broadcastIndex(a.shape, shape);
      const ib = broadcastIndex(b.shape, shape);
      for (let i = 0; i < y.length; i++) y[i] = f(a.data[ia[i]], b.data[ib[i]], k);
    }
    return [result(out[0], precision, y)];
  };
}

const formulaKernels = Object.fromEntries(elementwiseOpNames.map((op) => [op, formulaKernel(op)])) as {
  readonly [O in ElementwiseOp]: Kernel<O>;
};

export const elementwiseKernels = {
  ...formulaKernels,
  fill: (_ins, attrs, out, precision) => [result(out[0], precision, new Float64Array(numel(attrs.shape)).fill(attrs.value))],
} satisfies { readonly [O in ElementwiseOp | 'fill']: Kernel<O> };
