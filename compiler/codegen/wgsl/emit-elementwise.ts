// Elementwise kernels: unary math, binary ops with numpy broadcasting (stride 0 on broadcast
// axes), the activation gradients, fill and scale; and, through emit-layout.ts, the ops that
// only move elements. Formulas follow runtime/reference/kernels-elementwise.ts exactly (GELU is
// GPT-2's tanh approximation, differentiated as such).
import type { Op } from '../../ir/ops.ts';
import { reducedShape } from '../../ir/shape.ts';
import type { NodeOf } from '../../ir/types.ts';
import type { EmitContext, Emitter, KernelCall } from './emitter.ts';
import { layoutEmitters } from './emit-layout.ts';
import { broadcastStrides, contiguous } from './wgsl-index.ts';
import { elemOf, f32lit, floatOnly } from './wgsl-kernel.ts';
import { mapKernel, shapeOf } from './wgsl-map.ts';

const GELU_C = f32lit(Math.sqrt(2 / Math.PI));
const GELU_K = f32lit(0.044715);

/**
 * tanh through the clamp: some drivers evaluate tanh as sinh/cosh, which overflows to NaN past
 * |x| ~ 44; tanh(+-15) is +-1 in f32 already.
 */
const tanhFn = 'fn tanhC(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }';
const sigmoidFn = 'fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }';
const geluInner = `fn geluT(x: f32) -> f32 { return tanhC(${GELU_C} * (x + ${GELU_K} * x * x * x)); }`;

interface Formula {
  readonly expr: (a: string, b: string) => string;
  readonly fns?: string;
}

const unary: Record<'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'gelu' | 'silu' | 'relu', Formula> = {
  neg: { expr: (x) => `-${x}` },
  exp: { expr: (x) => `exp(${x})` },
  log: { expr: (x) => `log(${x})` },
  sqrt: { expr: (x) => `sqrt(${x})` },
  rsqrt: { expr: (x) => `inverseSqrt(${x})` },
  tanh: { expr: (x) => `tanhC(${x})`, fns: tanhFn },
  gelu: { expr: (x) => `gelu(${x})`, fns: `${tanhFn}\n${geluInner}\nfn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + geluT(x)); }` },
  silu: { expr: (x) => `silu(${x})`, fns: 'fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }' },
  // NaN passes through as Math.max(x, 0) lets it; tested on its bits, because GLES drivers turn
  // `select(x, 0.0, x < 0.0)` into a max that drops the NaN.
  relu: { expr: (x) => `relu(${x})`, fns: 'fn relu(x: f32) -> f32 { return select(max(x, 0.0), x, isNan(x)); }' },
};

const binary: Record<'add' | 'sub' | 'mul' | 'div' | 'geluGrad' | 'siluGrad' | 'reluGrad' | 'tanhGrad', Formula> = {
  add: { expr: (a, b) => `${a} + ${b}` },
  sub: { expr: (a, b) => `${a} - ${b}` },
  mul: { expr: (a, b) => `${a} * ${b}` },
  div: { expr: (a, b) => `${a} / ${b}` },
  geluGrad: {
    expr: (x, dy) => `geluGrad(${x}, ${dy})`,
    fns: `${tanhFn}\n${geluInner}
fn geluGrad(x: f32, dy: f32) -> f32 {
  let t = geluT(x);
  return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * ${GELU_C} * (1.0 + 3.0 * ${GELU_K} * x * x));
}`,
  },
  siluGrad: {
    expr: (x, dy) => `siluGrad(${x}, ${dy})`,
    fns: `${sigmoidFn}\nfn siluGrad(x: f32, dy: f32) -> f32 { let s = sigmoid(x); return dy * s * (1.0 + x * (1.0 - s)); }`,
  },
  reluGrad: { expr: (x, dy) => `select(0.0, ${dy}, ${x} > 0.0)` },
  tanhGrad: { expr: (y, dy) => `${dy} * (1.0 - ${y} * ${y})` },
};

function unaryEmitter(op: keyof typeof unary): Emitter<Op> {
  return (n, c) => {
    floatOnly(n, c);
    const shape = shapeOf(c, n.outputs[0]);
    const f = unary[op];
    return [mapKernel(c, {
      tag: op, shape, fns: f.fns,
      out: { value: n.outputs[0], walk: contiguous(shape) },
      ins: [{ value: n.inputs[0], walk: contiguous(shape) }],
      expr: ([x]) => f.expr(x, ''),
    })];
  };
}

function binaryEmitter(op: keyof typeof binary): Emitter<Op> {
  return (n, c) => {
    floatOnly(n, c);
    const shape = shapeOf(c, n.outputs[0]);
    const f = binary[op];
    return [mapKernel(c, {
      tag: op, shape, fns: f.fns,
      out: { value: n.outputs[0], walk: contiguous(shape) },
      ins: n.inputs.map((v) => ({ value: v, walk: { strides: broadcastStrides(shapeOf(c, v), shape), offset: 0 } })),
      expr: ([a, b]) => f.expr(a, b),
    })];
  };
}

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

const scale = (n: NodeOf<'scale'>, c: EmitContext): KernelCall[] => {
  floatOnly(n, c);
  const shape = shapeOf(c, n.outputs[0]);
  return [mapKernel(c, {
    tag: 'scale', shape,
    out: { value: n.outputs[0], walk: contiguous(shape) },
    ins: [{ value: n.inputs[0], walk: contiguous(shape) }],
    scalars: (u) => u.f32('c', n.attrs.c),
    expr: ([x]) => `u.c * ${x}`,
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
  add: binaryEmitter('add'),
  sub: binaryEmitter('sub'),
  mul: binaryEmitter('mul'),
  div: binaryEmitter('div'),
  neg: unaryEmitter('neg'),
  scale,
  fill,
  exp: unaryEmitter('exp'),
  log: unaryEmitter('log'),
  sqrt: unaryEmitter('sqrt'),
  rsqrt: unaryEmitter('rsqrt'),
  tanh: unaryEmitter('tanh'),
  gelu: unaryEmitter('gelu'),
  silu: unaryEmitter('silu'),
  relu: unaryEmitter('relu'),
  geluGrad: binaryEmitter('geluGrad'),
  siluGrad: binaryEmitter('siluGrad'),
  reluGrad: binaryEmitter('reluGrad'),
  tanhGrad: binaryEmitter('tanhGrad'),
  maxGrad,
  ...layoutEmitters,
} satisfies {
  readonly [O in Extract<Op, 'add' | 'sub' | 'mul' | 'div' | 'neg' | 'scale' | 'fill' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'gelu' | 'silu' | 'relu' | 'geluGrad' | 'siluGrad' | 'reluGrad' | 'tanhGrad' | 'maxGrad' | 'reshape' | 'transpose' | 'slice' | 'pad' | 'concat' | 'broadcastTo'>]: Emitter<O>;
};
