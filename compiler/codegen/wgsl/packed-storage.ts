// 16-bit storage without `shader-f16`: f16 (where the adapter lacks the feature, e.g. Dawn's Vulkan
// adapter on NVIDIA) and bf16 (always) live as pairs in u32 words, element i in the low half of
// word i/2 when i is even, the high half when odd. Emitters declare `array<f16>`/`array<bf16>`
// (or their vec4) as for native f16; this rewrite turns every read into a helper call that
// unpacks to f32 and every store into one that packs from f32, so all math stays f32.
// Two invocations storing the two halves of one word must not race: a writable binding is
// `array<atomic<u32>>` and a half is stored by atomicAnd (clear it) then atomicOr (set it), which
// never touches the other half; a vec4 covers two whole words, stored with atomicStore.
// Conversions: f16 by pack2x16float/unpack2x16float (core WGSL), bf16 by bits (the top half of an
// f32, round to nearest even on the store, NaN to 0x7fc0: contract/bf16.ts does the same).
import type { KernelCall } from './emitter.ts';
import { rewriteAccesses } from './storage-access.ts';

export type HalfFormat = 'f16' | 'bf16';

const declRe = /var<storage,\s*(read|read_write)>\s+(\w+)\s*:\s*array<(f16|bf16|vec4<f16>|vec4<bf16>)>/g;

/** Half -> f32 and f32 -> half (in the low 16 bits of a u32), per format. */
const convert = `fn f16ToF32(h: u32) -> f32 { return unpack2x16float(h).x; }
fn f32ToF16(v: f32) -> u32 { return pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu; }
fn bf16ToF32(h: u32) -> f32 { return bitcast<f32>(h << 16u); }
fn f32ToBf16(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0u; }
  return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u;
}`;

interface Packed {
  readonly name: string;
  readonly write: boolean;
  readonly format: HalfFormat;
  readonly vec4: boolean;
}

/** The load and store helpers of one packed binding. */
function helpers(b: Packed): string {
  const word = (i: string) => (b.write ? `atomicLoad(&${b.name}[${i}])` : `${b.name}[${i}]`);
  const [toF32, fromF32] = b.format === 'f16' ? ['f16ToF32', 'f32ToF16'] : ['bf16ToF32', 'f32ToBf16'];
  if (b.vec4) {
    const ld = `fn ld_${b.name}(i: u32) -> vec4<f32> {
  let lo = ${word('2u * i')};
  let hi = ${word('2u * i + 1u')};
  return vec4<f32>(${toF32}(lo & 0xffffu), ${toF32}(lo >> 16u), ${toF32}(hi & 0xffffu), ${toF32}(hi >> 16u));
}`;
    const st = `fn st_${b.name}(i: u32, v: vec4<f32>) {
  atomicStore(&${b.name}[2u * i], ${fromF32}(v.x) | (${fromF32}(v.y) << 16u));
  atomicStore(&${b.name}[2u * i + 1u], ${fromF32}(v.z) | (${fromF32}(v.w) << 16u));
}`;
    return b.write ? `${ld}\n${st}` : ld;
  }
  const ld = `fn ld_${b.name}(i: u32) -> f32 { return ${toF32}((${word('i >> 1u')} >> ((i & 1u) * 16u)) & 0xffffu); }`;
  const st = `fn st_${b.name}(i: u32, v: f32) {
  let s = (i & 1u) * 16u;
  atomicAnd(&${b.name}[i >> 1u], ~(0xffffu << s));
  atomicOr(&${b.name}[i >> 1u], ${fromF32}(v) << s);
}`;
  return b.write ? `${ld}\n${st}` : ld;
}

/**
 * `code` with its f16 and bf16 storage bindings packed in u32 words (see the top); `packF16`
 * false leaves f16 bindings for the native rewrite (f16-storage.ts). Returns the bindings it packed.
 */
export function packHalves(code: string, packF16: boolean): { code: string; packed: readonly Packed[] } {
  const packed: Packed[] = [];
  for (const m of code.matchAll(declRe)) {
    const format: HalfFormat = m[3].includes('bf16') ? 'bf16' : 'f16';
    if (format === 'f16' && !packF16) continue;
    packed.push({ name: m[2], write: m[1] === 'read_write', format, vec4: m[3].startsWith('vec4') });
  }
  if (!packed.length) return { code, packed };
  const byName = new Map(packed.map((b) => [b.name, b]));
  const declared = code.replace(declRe, (all, mode: string, name: string) =>
    byName.has(name) ? `var<storage, ${mode}> ${name}: array<${mode === 'read_write' ? 'atomic<u32>' : 'u32'}>` : all);
  const rewritten = rewriteAccesses(declared, [...byName.keys()], {
    load: (name, index) => `ld_${name}(u32(${index}))`,
    store: (name, index, value) => `st_${name}(u32(${index}), ${byName.get(name)!.vec4 ? 'vec4<f32>' : 'f32'}(${value}))`,
  });
  return { code: `${rewritten}\n${convert}\n${packed.map(helpers).join('\n')}\n`, packed };
}

/** The key suffix naming what packHalves baked in: each packed binding and its format. */
export function packedKey(call: KernelCall, packed: readonly Packed[]): KernelCall['key'] {
  return packed.length ? `${call.key}|packed:${packed.map((b) => `${b.name}=${b.format}`).join(',')}` : call.key;
}
