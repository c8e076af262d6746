// What an optimizer is, as data: one descriptor per optimizer (sgd.ts, adamw.ts, lomo.ts,
// adalomo.ts), listed in table.ts. Every other part of lomoc reads these facts from here: the
// optimizer-step pass (states, inputs, clipping, master copy), the pipeline (schedule, fusion), the
// shape rule of `optimizerUpdate`, the reference executor and WGSL codegen (the update rule), the
// CLI (names, --opt keys). Plain data and pure functions of plain numbers: nothing here imports the IR.

/** A hyper-parameter baked into the compiled update (a uniform of its kernel), with its default. */
export interface HyperParam {
  readonly default: number;
  readonly help: string;
  /** The accepted range, both ends included; a value outside it is a user error. */
  readonly min?: number;
  readonly max?: number;
}

/** One optimizer state tensor (f32, zero at the start), with its own shape. */
export interface StateSpec {
  readonly name: string;
  /** Its shape from the param's: the param's own for a moment, [m] and [n] for factored moments. */
  readonly shape: (param: readonly number[]) => readonly number[];
}

/** What the reference rule gets: f64 views of one param's update, values already read from storage. */
export interface ReferenceArgs {
  /** The weights the rule updates: the f32 master copy where there is one, else the param. */
  readonly w: Float64Array;
  /** The gradient, already multiplied by the clip-norm factor and clamped to the clip value. */
  readonly u: Float64Array;
  readonly paramShape: readonly number[];
  readonly lr: number;
  readonly weightDecay: number;
  /** The 1-based step count; 0 unless the rule asks for it (`usesStep`). */
  readonly step: number;
  readonly hyper: Readonly<Record<string, number>>;
  /** The rule's states by name, each of its StateSpec shape. */
  readonly states: Readonly<Record<string, Float64Array>>;
}

/** New weights and new states, computed exactly (f64); the executor rounds each once when stored. */
export interface ReferenceResult {
  readonly w: ArrayLike<number>;
  readonly states: Readonly<Record<string, ArrayLike<number>>>;
}

/** WGSL expressions the per-element rule is written with; every one is an f32. */
export interface WgslNames {
  /** The clipped, scaled gradient element. */
  readonly x: string;
  /** The weight element (master copy or param). */
  readonly w: string;
  readonly lr: string;
  readonly wd: string;
  /** The step count (only when `usesStep`). */
  readonly step: string;
  /** A uniform that the rule's `uniforms` named. */
  readonly uniform: (name: string) => string;
  /** A state element, readable and assignable (`state('m') = m2;`). */
  readonly state: (name: string) => string;
}

/**
 * The update of one element in WGSL, for rules whose states all have the param's shape (others
 * use WgslPhasedRule). `body` ends with `let w2 = ...;` (the new weight) after storing each new
 * state element.
 */
export interface WgslRule {
  /** Uniform f32 values computed on the host in f64 from the hyper-parameters (e.g. 1 - beta). */
  readonly uniforms: (hyper: Readonly<Record<string, number>>) => Readonly<Record<string, number>>;
  /** Helper functions the body calls. */
  readonly functions?: string;
  readonly body: (v: WgslNames) => string;
}

/**
 * The names a reduction-form rule (WgslPhasedRule) is written with. The param is seen as a matrix
 * [rows, cols] (cols its last axis, rows the product of the others; a vector is one row, a scalar
 * [1, 1]); element (i, j) is flat index i * cols + j. Every name is an f32 expression.
 */
export interface WgslPhaseNames extends WgslNames {
  /** rows, cols and their product, as f32. */
  readonly rows: string;
  readonly cols: string;
  readonly count: string;
  /** Element i of a [rows] state; assignable in a 'rows' phase's `finish`. */
  readonly row: (name: string) => string;
  /** Element j of a [cols] state; assignable in a 'cols' phase's `finish`. */
  readonly col: (name: string) => string;
  /** A scalar a 'total' phase computed; assignable in that phase's `finish`. */
  readonly scalar: (name: string) => string;
  /** In a `finish`: this phase's sum of the term `name`. */
  readonly sum: (name: string) => string;
}

/**
 * One reduction of a reduction-form rule: each term (an expression of one element: `x`, `w`, row
 * and column state elements, earlier scalars) summed over each row ('rows'), each column ('cols')
 * or the whole param ('total'); then `finish` runs once per row, per column, or once, with the
 * sums. A 'rows' finish assigns `row(...)` states, a 'cols' finish `col(...)` ones, a 'total'
 * finish the `scalars` it declares. Sums are f32, in a fixed order (the same bits every run).
 */
export interface WgslPhase {
  readonly over: 'rows' | 'cols' | 'total';
  readonly terms: Readonly<Record<string, (v: WgslPhaseNames) => string>>;
  /** 'total' only: the scalars `finish` assigns (read by later phases and the body). */
  readonly scalars?: readonly string[];
  readonly finish: (v: WgslPhaseNames) => string;
}

/**
 * The reduction form, for rules whose update needs statistics of the whole param first (factored
 * moments, update RMS): `phases` run in order, one or two dispatches each, then `body` per element
 * as WgslRule's (ending with `let w2 = ...;`). States are [rows], [cols] or the param's shape.
 */
export interface WgslPhasedRule {
  readonly uniforms: (hyper: Readonly<Record<string, number>>) => Readonly<Record<string, number>>;
  readonly functions?: string;
  readonly phases: readonly WgslPhase[];
  readonly body: (v: WgslPhaseNames) => string;
}

/** The param as the reduction form sees it: cols its last axis, rows the product of the others. */
export function matrixShape(p: readonly number[]): { rows: number; cols: number } {
  const cols = p.length ? p[p.length - 1] : 1;
  return { rows: cols === 0 ? 0 : p.reduce((a, b) => a * b, 1) / cols, cols };
}

/** How one param's new value is computed: shared by optimizers that differ only in schedule. */
export interface UpdateRule {
  /** Names the rule in update nodes (`attrs.rule`) and in kernel keys: [a-z][a-zA-Z0-9]*. */
  readonly name: string;
  readonly hyper: Readonly<Record<string, HyperParam>>;
  readonly states: readonly StateSpec[];
  /** Reads the step count (AdamW's bias correction). */
  readonly usesStep: boolean;
  readonly reference: (a: ReferenceArgs) => ReferenceResult;
  /** Per element. Absent, with no `reduction` either: the rule runs on the reference executor only (codegen says so). */
  readonly wgsl?: WgslRule;
  /** The reduction form, for a rule that needs sums over the param first (instead of `wgsl`). */
  readonly reduction?: WgslPhasedRule;
}

export interface OptimizerDescriptor {
  /** The --optimizer name. */
  readonly name: string;
  /** One line for `lomoc help`. */
  readonly summary: string;
  readonly rule: UpdateRule;
  /** LOMO: each update runs inside backward, the moment its gradient is complete. */
  readonly inBackward: boolean;
  /** The weight-gradient matmul and the update as one kernel (only for a rule without states). */
  readonly fuseMatmulUpdate: boolean;
  /**
   * Clip by norm: 'twoPass' runs backward twice (pass 1 only sums squared gradients), as an
   * optimizer that updates inside backward must; 'afterBackward' scales the stored gradients.
   */
  readonly clipNorm: 'twoPass' | 'afterBackward';
  /** Keeps an f32 master copy of f16 weights when asked (the baselines do; LOMO does not). */
  readonly masterCopy: boolean;
}
