// Elementwise kernels: every op of the elementwise table (ir/elementwise-ops.ts) with its WGSL
// formula, binary ones with numpy broadcasting (stride 0 on broadcast axes); fill and maxGrad;
// and, through emit-layout.ts, the ops that only move elements. The formulas are wgsl-math.ts's,
// shared with the fused chains.
import { elementwiseOpNames, type ElementwiseOp } from '../../ir/elementwise-ops.ts';
import type { Op } from '../../ir/ops.ts';
import { reducedShape } from '../../ir/shape.ts';
import type { NodeOf, ValueId } from '../../ir/types.ts';
import type { EmitContext, Emitter, KernelCall } from './emitter.ts';
import { layoutEmitters } from './emit-layout.ts';
import { broadcastStrides, contiguous } from './wgsl-index.ts';
import { elemOf, floatOnly } from './wgsl-kernel.ts';
import { mapKernel, shapeOf } from './wgsl-map.ts';
import { declareConsts, formulaWgsl, helperCode } from './wgsl-math.ts';

/** An op of the elementwise table; binary operands broadcast (stride 0 on broadcast axes), consts are uniforms. */
function formulaEmitter(op: ElementwiseOp): Emitter<Op> {
  return (n, c) => {
    floatOnly(n, c);
    const shape = shapeOf(c, n.outputs[0]);
    const walk = (v: ValueId) => (n.inputs.length === 1 ? contiguous(shape) : { strides: broadcastStrides(shapeOf(c, v), shape), offset: 0 });
    return [mapKernel(c, {
      tag: op, shape, fns: helperCode([op]),
      out: { value: n.outputs[0], walk: contiguous(shape) },
      ins: n.inputs.map((v) => ({ value: v, walk: walk(v) })),
      scalars: (u) => declareConsts(op, n.attrs, u),
      expr: (loaded) => formulaWgsl(op, loaded),
    })];
  };
}

const formulaEmitters = Object.fromEntries(elementwiseOpNames.map((op) => [op, formulaEmitter(op)])) as {
  readonly [O in ElementwiseOp]: Emitter<O>;
};

const fill = (n: NodeOf<'fill'>, c: EmitContext): KernelCall[] => {
  const elem = elemOf(n, c, n.outputs[0], ['f32', 'i32']);
  const shape = n.attrs.shape;
  return [mapKernel(c, {
    tag: `fill${elem}`, shape, ins: [],
    out: { value: n.outputs[0], walk: contiguous(shape), elem },
    scalars: (u) => (elem === 'i32' ? u.i32('value', n.attrs.value) : u.f32('value', n.attrs.value)),
    expr: () => 'u.value',
  })];
};

/** (x, y, dy) -> dy where x equals its max y, else 0; y and dy are read through the reduction's slots. */
const maxGrad = (n: NodeOf<'maxGrad'>, c: EmitContext): KernelCall[] => {
  floatOnly(n, c);
  const [x, y, dy] = n.inputs;
  const shape = shapeOf(c, x);
  const slot = { strides: broadcastStrides(reducedShape(shape, n.attrs.axes, true), shape), offset: 0 };
  return [mapKernel(c, {
    tag: 'maxGrad', shape,
    out: { value: n.outputs[0], walk: contiguous(shape) },
    ins: [{ value: x, walk: contiguous(shape) }, { value: y, walk: slot }, { value: dy, walk: slot }],
    expr: ([xv, yv, dyv]) => `select(0.0, ${dyv}, ${xv} == ${yv})`,
  })];
};

export const elementwiseEmitters = {
  ...formulaEmitters,
  fill,
  maxGrad,
  ...layoutEmitters,
} satisfies {
  readonly [O in ElementwiseOp | Extract<Op, 'fill' | 'maxGrad' | 'reshape' | 'transpose' | 'slice' | 'pad' | 'concat' | 'broadcastTo'>]: Emitter<O>;
};
