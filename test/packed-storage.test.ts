// The packed 16-bit rewrite's text (codegen/wgsl/packed-storage.ts), without a device: which
// bindings become u32 words, that writable ones are atomic (no two invocations race on a word),
// that keys name what was packed, and which f16 form an adapter gets.
import { describe, expect, it } from 'vitest';
import { withF16Storage } from '../compiler/codegen/wgsl/f16-storage.ts';
import { halfForAdapter } from '../compiler/codegen/wgsl/target.ts';

const call = (decls: string) => ({
  key: 'k',
  code: `${decls}\nfn main() { let i = 3u; y[i] += x[i + 1u] * 2.0; }\n`,
  bindings: [],
  uniforms: [],
  workgroups: [1, 1, 1] as const,
});
const decls = (e: string) => `@group(0) @binding(0) var<storage, read> x: array<${e}>;\n@group(0) @binding(1) var<storage, read_write> y: array<${e}>;`;

describe('packed 16-bit storage', () => {
  it('packs bf16 always and f16 only when asked, reads and writes through helpers', () => {
    const bf = withF16Storage(call(decls('bf16')), 'native');
    expect(bf.code).toContain('var<storage, read> x: array<u32>;');
    expect(bf.code).toContain('var<storage, read_write> y: array<atomic<u32>>;');
    expect(bf.code).toContain('st_y(u32(i), f32(ld_y(u32(i)) + (ld_x(u32(i + 1u)) * 2.0)));');
    expect(bf.code).not.toContain('enable f16');
    expect(bf.key).toBe('k|packed:x=bf16,y=bf16');

    const native = withF16Storage(call(decls('f16')), 'native');
    expect(native.code.startsWith('enable f16;\n')).toBe(true);
    expect(native.code).toContain('y[i] = f16(f32(y[i]) + (f32(x[i + 1u]) * 2.0));');
    expect(native.key).toBe('k|f16:x,y');

    const packed = withF16Storage(call(decls('f16')), 'packed');
    expect(packed.code).not.toMatch(/enable f16|array<f16>/);
    expect(packed.code).toContain('atomicAnd(&y[i >> 1u], ~(0xffffu << s));');
    expect(packed.key).toBe('k|packed:x=f16,y=f16');
  });

  it('a vec4 covers two whole words', () => {
    const v = withF16Storage(call(decls('vec4<bf16>')), 'packed');
    expect(v.code).toContain('atomicStore(&y[2u * i], f32ToBf16(v.x) | (f32ToBf16(v.y) << 16u));');
    expect(v.code).toContain('st_y(u32(i), vec4<f32>(');
  });

  it('f32 kernels are left alone', () => {
    const c = call(decls('f32'));
    expect(withF16Storage(c, 'packed')).toEqual(c);
  });

  it('adapters without shader-f16 get packed f16', () => {
    expect(halfForAdapter({ features: new Set(['shader-f16', 'subgroups']) })).toBe('native');
    expect(halfForAdapter({ features: new Set(['timestamp-query']) })).toBe('packed');
  });
});
