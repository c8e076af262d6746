// Tensors split across storage bindings, on the compiler's side (no device): the WGSL rewrite of
// split-storage.ts, the element ranges of split-ranges.ts, the smallest workable binding size, the
// bad-input messages, and that unsplit kernels are untouched. The GPU proofs are in
// test/gpu/split-kernels.test.ts (every kernel family) and test/gpu/split-step.test.ts (whole steps).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileProgram } from '../compiler/compile-program.ts';
import type { KernelCall } from '../compiler/codegen/wgsl/emitter.ts';
import { smallestBinding } from '../compiler/codegen/wgsl/lower.ts';
import { splitBindings, splitRef } from '../compiler/codegen/wgsl/split-storage.ts';
import { kernelTargets } from '../compiler/codegen/wgsl/target.ts';
import { optionChecks } from '../cli/option-checks.ts';
import gpt from '../models/gpt.ts';

const code = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
struct U { n: u32 }
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  atomicOr(&y[i >> 1u], u32(x[i + 1u]));
  z[i] += x[x2(i)];
}`;
const call: KernelCall = {
  key: 'k',
  code,
  bindings: [
    { ...splitRef(3, 2000), write: false },
    { arena: 0, offset: 256, bytes: 512, write: true },
    { ...splitRef(5, 700), write: true },
  ],
  uniforms: [1],
  workgroups: [1, 1, 1],
};
const pieces = (buffer: number, bytes: number, pieceBytes: number) =>
  Array.from({ length: Math.ceil(bytes / pieceBytes) }, (_, j) => ({ arena: 1, offset: 10000 * buffer + 512 * j, bytes: Math.min(pieceBytes, bytes - j * pieceBytes) }));

describe('split storage (compiler side)', () => {
  it('a kernel with no split tensor is returned as it is', () => {
    const plain = { ...call, bindings: [{ arena: 0, offset: 0, bytes: 4, write: false }] };
    expect(splitBindings(plain, () => { throw new Error('not called'); })).toBe(plain);
  });

  it('a split tensor becomes one binding per piece, later bindings are renumbered, accesses go through the piece accessor', () => {
    const out = splitBindings(call, (r) => ({ pieces: pieces(-1 - r.arena, r.bytes, 512), pieceBytes: 512 }));
    expect(out.bindings).toEqual([
      ...pieces(3, 2000, 512).map((p) => ({ ...p, write: false })),
      { arena: 0, offset: 256, bytes: 512, write: true },
      ...pieces(5, 700, 512).map((p) => ({ ...p, write: true })),
    ]);
    expect(out.key).toBe('k|split:x=4x128,z=2x128');
    expect(out.code).toContain('@group(0) @binding(3) var<storage, read> x_p3: array<f32>;');
    expect(out.code).toContain('@group(0) @binding(4) var<storage, read_write> y: array<atomic<u32>>;');
    expect(out.code).toContain('@group(0) @binding(6) var<storage, read_write> z_p1: array<f32>;');
    expect(out.code).toContain('@group(0) @binding(7) var<uniform> u: U;');
    expect(out.code).toContain('atomicOr(&y[i >> 1u], u32(sp_ld_x(u32(i + 1u))));');
    expect(out.code).toContain('sp_st_z(u32(i), sp_ld_z(u32(i)) + (sp_ld_x(u32(x2(i)))));');
    expect(out.code).toContain(`fn sp_ld_x(i: u32) -> f32 {
  if (i < 128u) { return x_p0[i]; }
  if (i < 256u) { return x_p1[i - 128u]; }
  if (i < 384u) { return x_p2[i - 256u]; }
  return x_p3[i - 384u];
}`);
    expect(out.code).toContain(`fn sp_st_z(i: u32, v: f32) {
  if (i < 128u) { z_p0[i] = v; return; }
  z_p1[i - 128u] = v; return;
}`);
  });

  it("a packed writable tensor's atomics go through per-piece atomic helpers", () => {
    const packedCode = `@group(0) @binding(0) var<storage, read_write> h: array<atomic<u32>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  atomicAnd(&h[g.x >> 1u], ~(0xffffu << 16u));
  let w = atomicLoad(&h[g.x]);
}`;
    const out = splitBindings({ ...call, code: packedCode, bindings: [{ ...splitRef(2, 1000), write: true }] }, () => ({ pieces: pieces(2, 1000, 512), pieceBytes: 512 }));
    expect(out.code).toContain('sp_atomicAnd_h(u32(g.x >> 1u), ~(0xffffu << 16u));');
    expect(out.code).toContain('let w = sp_atomicLoad_h(u32(g.x));');
    expect(out.code).toContain(`fn sp_atomicAnd_h(i: u32, v: u32) -> u32 {
  if (i < 128u) { return atomicAnd(&h_p0[i], v); }
  return atomicAnd(&h_p1[i - 128u], v);
}`);
    expect(out.code).not.toContain('fn sp_ld_h');
  });

  it('smallestBinding: the returned size fits the kernel in its bindings and one alignment less does not', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 1 << 20 }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 6, max: 8 }), (bytes, most) => {
      const fits = (m: number) => bytes.reduce((n, b) => n + Math.ceil(b / m), 0) <= most;
      const least = smallestBinding(bytes, most, 256);
      if (bytes.length > most) return expect(least).toBeUndefined();
      expect(least! % 256).toBe(0);
      expect(fits(least!)).toBe(true);
      if (least! > 256) expect(fits(least! - 256)).toBe(false);
    }), { numRuns: 300 });
  });

  it('too small a binding names the kernel at its line and the smallest size it works with', () => {
    expect(() => compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: kernelTargets.cpu, maxBinding: 512 })).toThrow(
      'models/gpt.ts:41:26: error: attention: with storage bindings of at most 512 B (--max-binding) this kernel\'s split tensors take 9 bindings, more than 8; the smallest --max-binding it works with is 1024 (1.00 KiB)',
    );
  });

  it('--max-binding takes sizes like 64KiB, multiples of 256 bytes', () => {
    const check = optionChecks('run');
    expect(check.bindingSize('64KiB', 'max-binding')).toBe(65536);
    expect(check.bindingSize('1MiB', 'max-binding')).toBe(2 ** 20);
    expect(check.bindingSize('768', 'max-binding')).toBe(768);
    expect(() => check.bindingSize('1000', 'max-binding')).toThrow("lomoc run: option '--max-binding' expects a multiple of 256 bytes, at least 256, got '1000'");
    expect(() => check.bindingSize('1.5MiB', 'max-binding')).toThrow("lomoc run: option '--max-binding' expects a size like 64KiB, 1MiB or 1048576, got '1.5MiB'");
    expect(() => check.bindingSize('0', 'max-binding')).toThrow("lomoc run: option '--max-binding' expects a multiple of 256 bytes, at least 256, got '0'");
  });

  it('unsplit programs are unchanged by the knob when nothing is split; split ones bind at most 8 and every piece stays under the limit', () => {
    const base = compileProgram(gpt, { preset: 'tiny', optimizer: 'adamw', target: kernelTargets.cpu });
    const roomy = compileProgram(gpt, { preset: 'tiny', optimizer: 'adamw', target: kernelTargets.cpu, maxBinding: 1 << 20 });
    expect(roomy.program).toEqual(base.program);
    const split = compileProgram(gpt, { preset: 'tiny', optimizer: 'adamw', target: kernelTargets.cpu, maxBinding: 2048 });
    expect(split.program.dispatches.some((d) => d.shader.includes('|split:'))).toBe(true);
    for (const d of split.program.dispatches) {
      expect(d.bindings.length).toBeLessThanOrEqual(8);
      for (const b of d.bindings) expect(b.bytes).toBeLessThanOrEqual(2048);
    }
    // The MLP's [16, 64] weights (4096 bytes) are split in two; every split slot's pieces hold exactly its bytes.
    const splitParams = split.program.params.filter((p) => p.pieces);
    expect(splitParams.map((p) => p.shape)).toContainEqual([16, 64]);
    for (const p of splitParams) expect(p.pieces!.reduce((n, r) => n + r.bytes, 0)).toBe(p.bytes);
  });
});
