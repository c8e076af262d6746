// f16 storage, in one place. Emitters write every kernel as if storage were f32 and only declare
// the element type of each storage binding: `array<f16>` (or `array<vec4<f16>>`) for an f16
// value, `array<f32>` otherwise. `f16Storage` then rewrites the finished WGSL so that all
// arithmetic stays f32: each read `x[i]` of an f16 binding becomes `f32(x[i])`, each store
// `x[i] = e` becomes `x[i] = f16(e)` (and `x[i] += e` a load, an f32 add and a store), and
// `enable f16;` goes first. Accumulators, workgroup arrays and scratch stay f32, so matmuls,
// reductions, norms, softmax, cross-entropy and attention accumulate in f32 and round once, on
// the store: the reference executor's f16 emulation (runtime/reference/tensor.ts) does the same.
// Without shader-f16, and for bf16 always, packed-storage.ts stores halves in u32 words first.
import type { DType } from '../../ir/types.ts';
import type { KernelCall } from './emitter.ts';
import { packHalves, packedKey } from './packed-storage.ts';
import { rewriteAccesses } from './storage-access.ts';
import type { HalfStorage } from './target.ts';

/** The storage element of a float value (f16 and bf16 as such): `vec4` for bindings read four elements at a time. */
export function floatStorage(dtype: DType, vec4 = false): string {
  const e = dtype === 'f16' || dtype === 'bf16' ? dtype : 'f32';
  return vec4 ? `vec4<${e}>` : e;
}

/**
 * `call` with its 16-bit storage converted: bf16 always packed (packed-storage.ts), f16 natively or
 * packed as `half` says; its key gains the converted bindings' names, which the text bakes in.
 */
export function withF16Storage(call: KernelCall, half: HalfStorage = 'native'): KernelCall {
  const { code, packed } = packHalves(call.code, half === 'packed');
  const key = packedKey(call, packed);
  const names = [...code.matchAll(declRe)].map((m) => m[1]);
  return names.length ? { ...call, key: `${key}|f16:${names.join(',')}`, code: f16Storage(code) } : { ...call, key, code };
}

const declRe = /var<storage,\s*(?:read|read_write)>\s+(\w+)\s*:\s*array<(f16|vec4<f16>)>/g;

/** `code` with every access to an f16 storage binding converted to and from f32 (see the top). */
export function f16Storage(code: string): string {
  const wide = new Map<string, string>();
  for (const m of code.matchAll(declRe)) wide.set(m[1], m[2] === 'f16' ? 'f32' : 'vec4<f32>');
  if (!wide.size) return code;
  const narrow = (name: string) => (wide.get(name) === 'f32' ? 'f16' : 'vec4<f16>');
  return `enable f16;\n${rewriteAccesses(code, [...wide.keys()], {
    load: (name, index) => `${wide.get(name)}(${name}[${index}])`,
    store: (name, index, value) => `${name}[${index}] = ${narrow(name)}(${value})`,
  })}`;
}
