// The WGSL math of the elementwise ops, from their table (ir/elementwise-ops.ts), where each op's
// WGSL formula sits beside its reference formula: the single-op kernels (emit-elementwise.ts) and
// the fused chains (fused.ts) both write their expressions here, so a fix to a formula (such as
// relu's NaN) reaches both.
import { elementwiseDef, wgslHelpers, type ElementwiseOp } from '../../ir/elementwise-ops.ts';
import type { Uniforms } from './wgsl-kernel.ts';

/** The uniform field each numeric attr of `op` (scale's c) is read from: `<prefix><name><suffix>`. */
const constField = (name: string, prefix: string, suffix: string): string => `${prefix}${name}${suffix}`;

/** Declares `op`'s numeric attrs as f32 uniforms (before any uniform the kernel adds after them). */
export function declareConsts(op: ElementwiseOp, attrs: object, u: Uniforms, prefix = '', suffix = ''): void {
  for (const name of elementwiseDef(op).consts ?? [])
    u.f32(constField(name, prefix, suffix), (attrs as Readonly<Record<string, number>>)[name]);
}

/** `op`'s WGSL expression over its operands' WGSL `args`, reading the uniforms declareConsts declared. */
export function formulaWgsl(op: ElementwiseOp, args: readonly string[], prefix = '', suffix = ''): string {
  const def = elementwiseDef(op);
  const k = Object.fromEntries((def.consts ?? []).map((name) => [name, `u.${constField(name, prefix, suffix)}`]));
  return def.wgsl(args[0], args[1] ?? '', k);
}

/** The WGSL of the helpers `ops` call, each once, callees first (undefined when none). */
export function helperCode(ops: Iterable<ElementwiseOp>): string | undefined {
  const names = [...new Set([...ops].flatMap((op) => elementwiseDef(op).needs ?? []))];
  return names.length ? names.map((h) => wgslHelpers[h]).join('\n') : undefined;
}
