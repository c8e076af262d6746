// The WGSL math of the elementwise ops, in one table: the single-op kernels (emit-elementwise.ts)
// and the fused chains (fused.ts) both write their expressions from it, so a fix to a formula
// (such as relu's NaN below) reaches both. The formulas follow runtime/reference/kernels-elementwise.ts
// exactly (GELU is GPT-2's tanh approximation, differentiated as such).
import { f32lit } from './wgsl-kernel.ts';

const GELU_C = f32lit(Math.sqrt(2 / Math.PI));
const GELU_K = f32lit(0.044715);

/** Helper functions by name, each after the helpers it calls. */
const helpers = {
  // Some drivers evaluate tanh as sinh/cosh, which overflows to NaN past |x| ~ 44; tanh(+-15) is
  // +-1 in f32 already.
  tanhC: 'fn tanhC(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }',
  sigmoid: 'fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }',
  geluT: `fn geluT(x: f32) -> f32 { return tanhC(${GELU_C} * (x + ${GELU_K} * x * x * x)); }`,
  gelu: 'fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + geluT(x)); }',
  silu: 'fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }',
  // NaN passes through as Math.max(x, 0) lets it; tested on its bits, because GLES drivers turn
  // `select(x, 0.0, x < 0.0)` into a max that drops the NaN.
  relu: 'fn relu(x: f32) -> f32 { return select(max(x, 0.0), x, isNan(x)); }',
  geluGrad: `fn geluGrad(x: f32, dy: f32) -> f32 {
  let t = geluT(x);
  return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * ${GELU_C} * (1.0 + 3.0 * ${GELU_K} * x * x));
}`,
  siluGrad: 'fn siluGrad(x: f32, dy: f32) -> f32 { let s = sigmoid(x); return dy * s * (1.0 + x * (1.0 - s)); }',
} as const;

type Helper = keyof typeof helpers;

export interface Formula {
  /** The expression over its operands' WGSL (unary ops ignore `b`). */
  readonly expr: (a: string, b: string) => string;
  /** The helpers it calls, with theirs, callees first. */
  readonly needs?: readonly Helper[];
}

export const unaryOps = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'gelu', 'silu', 'relu'] as const;
export const binaryOps = ['add', 'sub', 'mul', 'div', 'geluGrad', 'siluGrad', 'reluGrad', 'tanhGrad'] as const;
export type UnaryOp = (typeof unaryOps)[number];
export type BinaryOp = (typeof binaryOps)[number];

export const formulas: { readonly [O in UnaryOp | BinaryOp]: Formula } = {
  neg: { expr: (x) => `-${x}` },
  exp: { expr: (x) => `exp(${x})` },
  log: { expr: (x) => `log(${x})` },
  sqrt: { expr: (x) => `sqrt(${x})` },
  rsqrt: { expr: (x) => `inverseSqrt(${x})` },
  tanh: { expr: (x) => `tanhC(${x})`, needs: ['tanhC'] },
  gelu: { expr: (x) => `gelu(${x})`, needs: ['tanhC', 'geluT', 'gelu'] },
  silu: { expr: (x) => `silu(${x})`, needs: ['silu'] },
  relu: { expr: (x) => `relu(${x})`, needs: ['relu'] },
  add: { expr: (a, b) => `${a} + ${b}` },
  sub: { expr: (a, b) => `${a} - ${b}` },
  mul: { expr: (a, b) => `${a} * ${b}` },
  div: { expr: (a, b) => `${a} / ${b}` },
  geluGrad: { expr: (x, dy) => `geluGrad(${x}, ${dy})`, needs: ['tanhC', 'geluT', 'geluGrad'] },
  siluGrad: { expr: (x, dy) => `siluGrad(${x}, ${dy})`, needs: ['sigmoid', 'siluGrad'] },
  reluGrad: { expr: (x, dy) => `select(0.0, ${dy}, ${x} > 0.0)` },
  tanhGrad: { expr: (y, dy) => `${dy} * (1.0 - ${y} * ${y})` },
};

export const isFormulaOp = (op: string): op is UnaryOp | BinaryOp => op in formulas;

/** The WGSL of the helpers `ops` call, each once, callees first (undefined when none). */
export function helperCode(ops: Iterable<UnaryOp | BinaryOp>): string | undefined {
  const names = [...new Set([...ops].flatMap((op) => formulas[op].needs ?? []))];
  return names.length ? names.map((h) => helpers[h]).join('\n') : undefined;
}
