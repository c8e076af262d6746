// What every elementwise, reduction and row kernel shares: storage bindings declared in order
// (a value that shares storage with one already bound is bound once, read_write), a uniform
// struct of u32/f32 scalars, the flat workgroup index over a grid folded into 2D, and the
// element types kernels can address (f32 or f16 floats, and i32 for ops that only move token
// ids). An f16 value is declared array<f16>; lower.ts's f16Storage converts its loads and stores.
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import { fmtShape } from '../../ir/shape.ts';
import type { Op } from '../../ir/ops.ts';
import type { DType, NodeOf, ValueId } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { type EmitContext, f32bits, type KernelCall } from './emitter.ts';

export type Elem = 'f32' | 'f16' | 'bf16' | 'i32';
/** What a storage binding may hold: an Elem, or floats read four at a time (the matmul's B). */
export type StorageElem = Elem | 'vec4<f32>' | 'vec4<f16>' | 'vec4<bf16>';

/**
 * The WGSL storage element type of value `v` (a float kernel takes f32 and f16 storage alike:
 * its arithmetic is f32 either way), or a LomocError naming the op.
 */
export function elemOf(n: NodeOf<Op>, c: EmitContext, v: ValueId, allowed: readonly Elem[] = ['f32']): Elem {
  const value = c.g.values[v];
  const d: DType = value.dtype;
  if ((allowed as readonly string[]).includes(d) || ((d === 'f16' || d === 'bf16') && allowed.includes('f32'))) return d as Elem;
  const what = `${n.op}: a ${d}${fmtShape(value.shape)} operand`;
  throw new LomocError(`${what}: the ${n.op} kernel takes ${allowed.join(' or ')}, got ${d}`, n.loc);
}

/** The type a kernel computes an element of storage type `e` in: f32 for any float. */
export const wide = (e: Elem): Elem => (e === 'f16' || e === 'bf16' ? 'f32' : e);

/** Checks that every operand of `n` (inputs and outputs) is a float (f32 or f16 storage). */
export function floatOnly(n: NodeOf<Op>, c: EmitContext): void {
  for (const v of [...n.inputs, ...n.outputs]) elemOf(n, c, v);
}

const elemTag: Record<StorageElem, string> = { f32: '', f16: 'h', bf16: 'b', i32: 'i32', 'vec4<f32>': 'v4', 'vec4<f16>': 'v4h', 'vec4<bf16>': 'v4b' };

interface Bound {
  readonly ref: BufferRef;
  write: boolean;
  readonly elem: StorageElem;
  readonly values: ValueId[];
}

/**
 * Storage bindings 0..n-1 of one kernel. `value` returns the WGSL name to index; two values in
 * the same storage (an in-place gradient sum, a view) get one binding, read_write if either is
 * written, since WebGPU forbids a writable binding aliasing another one in the same dispatch.
 */
export class Bindings {
  private readonly bound: Bound[] = [];
  /** The binding each call returned: which operand is which is baked into the code. */
  private readonly calls: number[] = [];
  constructor(private readonly c: EmitContext) {}

  /** `elem` 'f32' means "a float": an f16 (bf16) value is declared array<f16> (array<bf16>). */
  value(v: ValueId, write: boolean, elem: Elem = 'f32'): string {
    const k = this.bound.findIndex((b) => b.values.length > 0 && b.values.some((w) => w === v || this.c.sameStorage(w, v)));
    if (k >= 0) {
      this.bound[k].write ||= write;
      this.bound[k].values.push(v);
      this.calls.push(k);
      return `b${k}`;
    }
    const d = this.c.g.values[v].dtype;
    const stored = elem === 'f32' && (d === 'f16' || d === 'bf16') ? d : elem;
    return this.add(this.c.slot(v).ref, write, stored, [v]);
  }

  /** A scratch buffer (or any range not owned by a value). */
  buffer(ref: BufferRef, write: boolean, elem: StorageElem = 'f32'): string {
    return this.add(ref, write, elem, []);
  }

  private add(ref: BufferRef, write: boolean, elem: StorageElem, values: ValueId[]): string {
    this.bound.push({ ref, write, elem, values });
    this.calls.push(this.bound.length - 1);
    return `b${this.bound.length - 1}`;
  }

  get count(): number {
    return this.bound.length;
  }

  /** Every value bound so far (an epilogue probed on a throwaway Bindings says what it reads and writes). */
  values(): ValueId[] {
    return this.bound.flatMap((b) => b.values);
  }

  /** What the declarations bake in: element types, access modes, and which operand is which. */
  signature(): string {
    const modes = this.bound.map((b) => `${b.write ? 'w' : 'r'}${elemTag[b.elem]}`).join('');
    const aliased = this.calls.some((k, i) => k !== i);
    return aliased ? `${modes}:${this.calls.join('')}` : modes;
  }

  wgsl(): string {
    return this.bound
      .map((b, k) => `@group(0) @binding(${k}) var<storage, ${b.write ? 'read_write' : 'read'}> b${k}: array<${b.elem}>;`)
      .join('\n');
  }

  refs(): (BufferRef & { readonly write: boolean })[] {
    return this.bound.map((b) => ({ ...b.ref, write: b.write }));
  }
}

/** The uniform struct `u`: scalar fields in the order they are added, fed as u32 words. */
export class Uniforms {
  private readonly fields: string[] = [];
  readonly words: number[] = [];

  u32(name: string, x: number): this {
    if (!(Number.isInteger(x) && x >= 0 && x < 2 ** 32)) throw new CompilerBug(`codegen: uniform ${name} = ${x} is not a u32`);
    this.fields.push(`${name}: u32`);
    this.words.push(x);
    return this;
  }
  i32(name: string, x: number): this {
    this.fields.push(`${name}: i32`);
    this.words.push(x >>> 0);
    return this;
  }
  f32(name: string, x: number): this {
    this.fields.push(`${name}: f32`);
    this.words.push(f32bits(x));
    return this;
  }

  wgsl(binding: number): string {
    if (!this.fields.length) return '';
    return `struct U {\n${this.fields.map((f) => `  ${f},`).join('\n')}\n}\n@group(0) @binding(${binding}) var<uniform> u: U;`;
  }
}

/**
 * One dispatch. `body` is the kernel's WGSL after the declarations; `key` must name everything
 * the caller baked into `body` (the bindings' signature is added here).
 */
export function kernel(key: string, b: Bindings, u: Uniforms, body: string, workgroups: readonly [number, number, number]): KernelCall {
  if (workgroups.some((w) => !(w >= 1 && w <= 65535)))
    throw new CompilerBug(`codegen: kernel ${key} dispatches ${fmtShape(workgroups)} workgroups, outside 1..65535`);
  const code = [b.wgsl(), u.wgsl(b.count), wgslHelpers, body].filter((s) => s).join('\n\n') + '\n';
  return { key: `${key}|${b.signature()}`, code, bindings: b.refs(), uniforms: [...u.words], workgroups };
}

/** The entry point's builtins, and `wg`, the flat workgroup index of a grid folded into 2D. */
export const entryArgs =
  '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';
export const flatGroup = 'let wg = wid.y * nwg.x + wid.x;';

/**
 * Helpers every kernel may use. WGSL rejects non-finite constant expressions, so NaN and -inf
 * come from a `var`; `isNan` tests the bits, because float comparisons may assume no NaNs.
 */
const wgslHelpers = `fn nanF32() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn negInfF32() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }`;

/** Smallest power of two >= x (and >= 1). */
export const pow2At = (x: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/** A WGSL f32 literal of a finite number (exact: the shortest round trip of its f32 value). */
export function f32lit(x: number): string {
  const f = Math.fround(x);
  if (!Number.isFinite(f)) throw new CompilerBug(`codegen: ${x} is not a finite f32 literal`);
  const s = String(f);
  return /[.e]/.test(s) ? `${s}f` : `${s}.0f`;
}
