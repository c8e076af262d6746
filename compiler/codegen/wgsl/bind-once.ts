// Storage operands bound once each. WebGPU forbids overlapping bindings when any is writable,
// and the runtime binds all storage writable, so an input in the same storage as an earlier one
// (q = k = v in self-attention tests, a tensor fed twice) reads the earlier binding instead.
import type { BufferRef } from '../../../contract/program.ts';

/** A kernel's storage operand: WGSL name, value or buffer, written. */
export type Operand = readonly [name: string, ref: BufferRef, write: boolean];

/**
 * The operands to bind, in order, and `code` with every `name[` of a dropped read-only operand
 * renamed to the binding it shares; `alias` lists the renames ("k=q") for the shader's key.
 */
export function bindOnce(operands: readonly Operand[], code: string): { bound: Operand[]; alias: string[]; code: string } {
  const bound: Operand[] = [];
  const alias: string[] = [];
  for (const [name, ref, write] of operands) {
    const same = bound.find(([, r]) => r.arena === ref.arena && r.offset === ref.offset);
    if (same && !write && !same[2]) {
      alias.push(`${name}=${same[0]}`);
      code = code.replace(new RegExp(`\\b${name}\\[`, 'g'), `${same[0]}[`);
    } else bound.push([name, ref, write]);
  }
  return { bound, alias, code };
}
