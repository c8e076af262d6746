// The elementwise ops, one entry each: how its operands combine, its reference (JS, f64) formula
// and its WGSL (f32) formula side by side. The op set, the attrs, the shape rules, the reference
// kernels, the single-op WGSL kernels and the fusible set (passes/fuse.ts) all derive from this
// table, so adding an elementwise op is one entry here, its DSL function and its VJP rule.
// GELU is GPT-2's tanh approximation everywhere, differentiated as such.

/** f32 literal text (as codegen's f32lit; kept here so the IR imports nothing from codegen). */
const lit = (x: number): string => `${Math.fround(x)}f`;

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const geluT = (x: number): number => Math.tanh(GELU_C * (x + GELU_K * x * x * x));

/** WGSL helper functions by name, each after the helpers it calls. */
export const wgslHelpers = {
  // Some drivers evaluate tanh as sinh/cosh, which overflows to NaN past |x| ~ 44; tanh(+-15) is
  // +-1 in f32 already.
  tanhC: 'fn tanhC(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }',
  sigmoid: 'fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }',
  geluT: `fn geluT(x: f32) -> f32 { return tanhC(${lit(GELU_C)} * (x + ${lit(GELU_K)} * x * x * x)); }`,
  gelu: 'fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + geluT(x)); }',
  silu: 'fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }',
  // NaN passes through as Math.max(x, 0) lets it; tested on its bits, because GLES drivers turn
  // `select(x, 0.0, x < 0.0)` into a max that drops the NaN.
  relu: 'fn relu(x: f32) -> f32 { return select(max(x, 0.0), x, isNan(x)); }',
  geluGrad: `fn geluGrad(x: f32, dy: f32) -> f32 {
  let t = geluT(x);
  return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * ${lit(GELU_C)} * (1.0 + 3.0 * ${lit(GELU_K)} * x * x));
}`,
  siluGrad: 'fn siluGrad(x: f32, dy: f32) -> f32 { let s = sigmoid(x); return dy * s * (1.0 + x * (1.0 - s)); }',
} as const;
export type WgslHelper = keyof typeof wgslHelpers;

/**
 * How the operands combine (each also fixes the shape rule):
 * `unary` x -> y of x's type; `binary` (a, b) -> y with numpy broadcasting, same dtype;
 * `gradient` (x, dy) -> dx of x's type, dy of x's shape (the activation gradients).
 */
export type Operands = 'unary' | 'binary' | 'gradient';

export interface ElementwiseDef {
  readonly operands: Operands;
  /**
   * Numeric attrs baked into the node (`scale`'s c): the reference reads them from the attrs,
   * WGSL from uniforms, so one shader serves every value.
   */
  readonly consts?: readonly string[];
  /** The reference formula in f64 (unary ops ignore `b`), rounded once into the output's dtype. */
  readonly js: (a: number, b: number, k: Readonly<Record<string, number>>) => number;
  /** The WGSL f32 expression over its operands' WGSL (unary ops ignore `b`; `k` names each const's uniform). */
  readonly wgsl: (a: string, b: string, k: Readonly<Record<string, string>>) => string;
  /** The WGSL helpers `wgsl` calls, with theirs, callees first. */
  readonly needs?: readonly WgslHelper[];
  /** Inputs the formula is real on (tests draw from it): `positive` for log, sqrt, rsqrt. */
  readonly domain?: 'positive';
}

export const elementwiseDefs = {
  add: { operands: 'binary', js: (a, b) => a + b, wgsl: (a, b) => `${a} + ${b}` },
  sub: { operands: 'binary', js: (a, b) => a - b, wgsl: (a, b) => `${a} - ${b}` },
  mul: { operands: 'binary', js: (a, b) => a * b, wgsl: (a, b) => `${a} * ${b}` },
  div: { operands: 'binary', js: (a, b) => a / b, wgsl: (a, b) => `${a} / ${b}` },
  neg: { operands: 'unary', js: (x) => -x, wgsl: (x) => `-${x}` },
  /** y = c * x */
  scale: { operands: 'unary', consts: ['c'], js: (x, _, k) => k.c * x, wgsl: (x, _, k) => `${k.c} * ${x}` },
  exp: { operands: 'unary', js: Math.exp, wgsl: (x) => `exp(${x})` },
  log: { operands: 'unary', domain: 'positive', js: Math.log, wgsl: (x) => `log(${x})` },
  sqrt: { operands: 'unary', domain: 'positive', js: Math.sqrt, wgsl: (x) => `sqrt(${x})` },
  rsqrt: { operands: 'unary', domain: 'positive', js: (x) => 1 / Math.sqrt(x), wgsl: (x) => `inverseSqrt(${x})` },
  tanh: { operands: 'unary', js: Math.tanh, wgsl: (x) => `tanhC(${x})`, needs: ['tanhC'] },
  /** GELU, tanh approximation (GPT-2's). */
  gelu: { operands: 'unary', js: (x) => 0.5 * x * (1 + geluT(x)), wgsl: (x) => `gelu(${x})`, needs: ['tanhC', 'geluT', 'gelu'] },
  silu: { operands: 'unary', js: (x) => x * sigmoid(x), wgsl: (x) => `silu(${x})`, needs: ['silu'] },
  // NaN stays NaN, so a diverged run shows.
  relu: { operands: 'unary', js: (x) => Math.max(x, 0), wgsl: (x) => `relu(${x})`, needs: ['relu'] },
  /** (x, dy) -> dy * gelu'(x), the derivative of the tanh approximation itself (not the erf GELU). */
  geluGrad: {
    operands: 'gradient',
    js: (x, dy) => {
      const t = geluT(x);
      return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * x * x));
    },
    wgsl: (x, dy) => `geluGrad(${x}, ${dy})`,
    needs: ['tanhC', 'geluT', 'geluGrad'],
  },
  /** (x, dy) -> dy * d/dx [x * sigmoid(x)] = dy * s * (1 + x * (1 - s)). */
  siluGrad: {
    operands: 'gradient',
    js: (x, dy) => {
      const s = sigmoid(x);
      return dy * (s * (1 + x * (1 - s)));
    },
    wgsl: (x, dy) => `siluGrad(${x}, ${dy})`,
    needs: ['sigmoid', 'siluGrad'],
  },
  reluGrad: { operands: 'gradient', js: (x, dy) => (x > 0 ? dy : 0), wgsl: (x, dy) => `select(0.0, ${dy}, ${x} > 0.0)` },
  /** (y, dy) -> dy * (1 - y^2) */
  tanhGrad: { operands: 'gradient', js: (y, dy) => dy * (1 - y * y), wgsl: (y, dy) => `${dy} * (1.0 - ${y} * ${y})` },
} as const satisfies Readonly<Record<string, ElementwiseDef>>;

export type ElementwiseOp = keyof typeof elementwiseDefs;

/** The attrs of an elementwise op: one number per const. */
type ConstAttrs<D> = D extends { readonly consts: readonly (infer C extends string)[] } ? { readonly [K in C]: number } : Readonly<Record<never, never>>;
export type ElementwiseAttrs = { [O in ElementwiseOp]: ConstAttrs<(typeof elementwiseDefs)[O]> };

export const elementwiseOpNames = Object.keys(elementwiseDefs) as ElementwiseOp[];

/** The entry of `op`, widened to the common shape. */
export const elementwiseDef = (op: ElementwiseOp): ElementwiseDef => elementwiseDefs[op];

export const isElementwiseOp = (op: string): op is ElementwiseOp => Object.hasOwn(elementwiseDefs, op);
