// Reductions: sum, mean and max over sorted axes (keepDims only changes the output's shape, not
// its layout), the clip-norm's sumSquares (a full reduction to an f32 scalar) and clipFactor.
// All go through reduce-kernel.ts: one pass, or two through a scratch buffer of partial results
// when a large reduction would otherwise run on few workgroups.
import type { Op } from '../../ir/ops.ts';
import { CompilerBug } from '../../diagnostics.ts';
import type { NodeOf, ValueId } from '../../ir/types.ts';
import type { EmitContext, Emitter, KernelCall, ScratchRule } from './emitter.ts';
import type { MatmulEpilogue } from './emit-matmul.ts';
import { partialsPlan, planReduce, reducePass, type ReduceMode, type ReducePlan, reduceScratchBytes } from './reduce-kernel.ts';
import { Bindings, entryArgs, f32lit, floatOnly, kernel, Uniforms } from './wgsl-kernel.ts';

type ReduceOp = 'sum' | 'mean' | 'max' | 'sumSquares';

const allAxes = (rank: number): number[] => Array.from({ length: rank }, (_, i) => i);

function planOf(n: NodeOf<ReduceOp>, shape: readonly number[]): ReducePlan {
  return planReduce(shape, n.op === 'sumSquares' ? allAxes(shape.length) : (n as NodeOf<'sum'>).attrs.axes);
}

/** A reduction's dispatches; with `ep` (a fused update) its final pass hands each output to the epilogue. */
export function reduce(n: NodeOf<ReduceOp>, c: EmitContext, ep?: MatmulEpilogue): KernelCall[] {
  return reduceInto(n, c, n.outputs[0], undefined, ep);
}

/** `n`'s reduction stored into `out`, plus the scalar `addend` when given (the normSum group: a running sum's add), or handed to `ep`. */
function reduceInto(n: NodeOf<ReduceOp>, c: EmitContext, out: ValueId, addend?: ValueId, ep?: MatmulEpilogue): KernelCall[] {
  floatOnly(n, c);
  const p = planOf(n, c.g.values[n.inputs[0]].shape);
  const mode: ReduceMode = n.op === 'max' ? 'max' : n.op === 'sumSquares' ? 'sumSquares' : 'sum';
  const divisor = n.op === 'mean' ? p.count : 1;
  const input = { value: n.inputs[0] };
  const output = { value: out };
  if (p.splits === 1) return [reducePass(c, p, mode, { input, output, addend }, divisor, ep)];
  // Pass 2 reduces the partials [outputs, splits] over their last axis.
  const partials = { ref: c.scratch(0) };
  return [
    reducePass(c, p, mode, { input, output: partials }, 1),
    reducePass(c, partialsPlan(p.outputs, p.splits, c.target), mode === 'max' ? 'max' : 'sum', { input: partials, output, addend }, divisor, ep),
  ];
}

/** The normSum group (passes/fuse.ts): the squared norm added to the running sum as it is stored. */
export function normSumGroup(ss: NodeOf<'sumSquares'>, add: NodeOf<'add'>, c: EmitContext): KernelCall[] {
  if (add.inputs[1] !== ss.outputs[0]) throw new CompilerBug('codegen: a normSum group whose add does not read its sumSquares');
  return reduceInto(ss, c, add.outputs[0], add.inputs[0]);
}

/**
 * The clip-norm factor min(1, maxNorm / (sqrt(total) + 1e-6)), one thread; with loss scaling,
 * the previous norm or `result: 'norm'`, ClipFactorAttrs's formula (an overflow is found from the
 * bits: WGSL may assume floats are finite, so no comparison with inf or NaN is relied on).
 */
const clipFactor = (n: NodeOf<'clipFactor'>, c: EmitContext): KernelCall[] => {
  floatOnly(n, c);
  const a = n.attrs;
  const b = new Bindings(c);
  const [total, ...more] = n.inputs.map((x) => b.value(x, false));
  const out = b.value(n.outputs[0], true);
  const u = new Uniforms().f32('maxNorm', a.maxNorm ?? 0);
  if (!a.unscale && !a.previous && a.result !== 'norm' && a.maxNorm !== null) {
    const body = `@compute @workgroup_size(1)
fn main(${entryArgs}) {
  ${out}[0] = min(1.0, u.maxNorm / (sqrt(${total}[0]) + ${f32lit(1e-6)}));
}`;
    return [kernel('clipFactor', b, u, body, [1, 1, 1])];
  }
  const scale = a.unscale ? `${more[0]}[0]` : '1.0';
  const previous = a.previous ? `${more[more.length - 1]}[0]` : '0.0';
  const bad = a.unscale ? `(bitcast<u32>(t) & 0x7f800000u) == 0x7f800000u` : 'false';
  const clipped = a.maxNorm === null ? '1.0' : `min(1.0, u.maxNorm / (max(sqrt(t) / s, prev) + ${f32lit(1e-6)}))`;
  const value = a.result === 'norm' ? `select(sqrt(t) / s, prev, bad)` : `select(${clipped} / s, -1.0, bad)`;
  const body = `@compute @workgroup_size(1)
fn main(${entryArgs}) {
  let t = ${total}[0];
  let s = ${scale};
  let prev = ${previous};
  let bad = ${bad};
  ${out}[0] = ${value};
}`;
  const key = `clipFactor${a.maxNorm === null ? '.noclip' : ''}${a.unscale ? '.unscale' : ''}${a.previous ? '.previous' : ''}${a.result === 'norm' ? '.norm' : ''}`;
  return [kernel(key, b, u, body, [1, 1, 1])];
};

export const reduceEmitters = {
  sum: reduce,
  mean: reduce,
  max: reduce,
  sumSquares: reduce,
  clipFactor,
} satisfies { readonly [O in Extract<Op, ReduceOp | 'clipFactor'>]: Emitter<O> };

const scratchRule: ScratchRule<ReduceOp> = (n, g) => reduceScratchBytes(planOf(n, g.values[n.inputs[0]].shape));

/** Scratch for two-pass reductions (exported through emit-rows.ts's rowScratch, which the scratch table reads). */
export const reduceScratch: { readonly [O in ReduceOp]: ScratchRule<O> } = {
  sum: scratchRule,
  mean: scratchRule,
  max: scratchRule,
  sumSquares: scratchRule,
};
