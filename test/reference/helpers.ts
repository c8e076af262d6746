// Shared by the reference executor's tests: one-op graphs, tolerances, finite differences.
import { expect } from 'vitest';
import { GraphBuilder } from '../../compiler/ir/builder.ts';
import type { Op, OpAttrs } from '../../compiler/ir/ops.ts';
import type { DType, Graph } from '../../compiler/ir/types.ts';
import { execute } from '../../compiler/reference/execute.ts';
import { type HostTensor, type Precision, tensor } from '../../compiler/reference/tensor.ts';
import { loc } from './graphs.ts';


export interface OpOptions {
  readonly precision?: Precision;
  /** dtype of the float inputs (i32 inputs are recognised by their Int32Array). */
  readonly dtype?: DType;
}

/** Operands that stay f32 whatever the float inputs' dtype: statistics a gradient op reads. */
const f32Operands: { readonly [O in Op]?: readonly number[] } = { attentionGrad: [3], linearCrossEntropyGrad: [3] };

/** A graph with one input per operand, named x0, x1, ..., and a single `op` node. */
export function opGraph<O extends Op>(
  op: O,
  ins: readonly HostTensor[],
  attrs: OpAttrs[O],
  dtype: DType = 'f32',
): { g: Graph; outs: number[] } {
  const b = new GraphBuilder(`test-${op}`);
  const ids = ins.map((t, i) => {
    const id = b.value(t.shape, t.data instanceof Int32Array ? 'i32' : f32Operands[op]?.includes(i) ? 'f32' : dtype, 'input', loc, `x${i}`);
    b.inputs.push({ name: `x${i}`, value: id, loc });
    return id;
  });
  const outs = b.node(op, ids, attrs, loc, 'forward');
  const [loss] = b.node('fill', [], { value: 0, shape: [], dtype: 'f32' }, loc, 'forward', 'loss');
  return { g: { name: b.name, values: b.values, nodes: b.nodes, inputs: b.inputs, params: b.params, loss }, outs };
}

/** Runs one op through the executor (so feeds are checked and converted as in real use). */
export function runOp<O extends Op>(op: O, ins: readonly HostTensor[], attrs: OpAttrs[O], opts: OpOptions = {}): HostTensor[] {
  const { g, outs } = opGraph(op, ins, attrs, opts.dtype);
  const inputs = Object.fromEntries(ins.map((t, i) => [`x${i}`, t]));
  const ex = execute(g, { inputs, params: {} }, opts.precision ?? 'f64');
  return outs.map((id) => ex.values[id]!);
}

/** The single output of a one-op graph, as plain numbers. */
export const run1 = <O extends Op>(op: O, ins: readonly HostTensor[], attrs: OpAttrs[O], opts?: OpOptions): number[] =>
  Array.from(runOp(op, ins, attrs, opts)[0].data);

export const t = tensor;
export const ids = (shape: readonly number[], values: readonly number[]): HostTensor => ({ shape, data: Int32Array.from(values) });

/** Elementwise |a - b| <= tol * max(1, |b|), reporting the first index that fails. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    if (Object.is(a, e)) continue;
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e))))
      expect.fail(`element ${i}: expected ${e}, got ${a} (tolerance ${tol})`);
  }
}

/** Central finite differences of a scalar function, the oracle for every gradient op. */
export function numericGrad(f: (x: Float64Array) => number, x: ArrayLike<number>, h = 1e-6): Float64Array {
  const xs = Float64Array.from(x);
  const grad = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const keep = xs[i];
    xs[i] = keep + h;
    const up = f(xs);
    xs[i] = keep - h;
    const down = f(xs);
    xs[i] = keep;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
