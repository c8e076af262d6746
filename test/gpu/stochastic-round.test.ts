// Stochastic rounding to bf16 and to f16 on WebGPU (codegen/wgsl/stochastic-round.ts) against the
// host's (contract/stochastic-round.ts): the same (seed, step, param, element) gives the same bits
// on both, and the mean of many draws on the device is the f32 value within 4 standard errors.
import { describe, expect, it } from 'vitest';
import type { StepProgram } from '../../contract/program.ts';
import { bf16StochasticBits, f16StochasticValue, roundingBits } from '../../contract/stochastic-round.ts';
import { fromBf16bits, f32bitsOf } from '../../contract/bf16.ts';
import { stochasticRoundWgsl } from '../../compiler/codegen/wgsl/stochastic-round.ts';
import { createExecutor } from '../../runtime/webgpu/executor.ts';
import { gpu } from './harness.ts';
import { layout } from './programs.ts';

/**
 * bits[i] = f32ToBf16Stochastic(x[i % m], roundingBits(seed, step, param, i)) for n elements, on the
 * device; with `f16`, the f32 bits of f32ToF16Stochastic's value instead.
 */
async function roundOnDevice(x: Float32Array, n: number, seed: number, step: number, param: number, f16 = false): Promise<Int32Array> {
  const l = layout();
  const xs = l.slot('x', [x.length]);
  const out = l.slot('bits', [n], 'i32');
  const code = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> bits: array<u32>;
struct U { n: u32, m: u32, seed: u32, step: u32, param: u32 }
@group(0) @binding(2) var<uniform> u: U;
${stochasticRoundWgsl}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = g.x + g.y * nwg.x * 64u;
  if (i >= u.n) { return; }
  let r = roundingBits(u.seed, u.step, u.param, i);
  bits[i] = ${f16 ? 'bitcast<u32>(f32ToF16Stochastic(x[i % u.m], r))' : 'f32ToBf16Stochastic(x[i % u.m], r)'};
}`;
  const groups = Math.ceil(n / 64);
  const program: StepProgram = {
    version: 1, name: 'stochastic-round', arenas: [l.size()], inputs: [xs, out], params: [], state: [], loss: out,
    shaders: { sr: code },
    dispatches: [{ shader: 'sr', label: 'sr', bindings: [{ ...xs, write: false }, { ...out, write: true }], uniforms: [n, x.length, seed, step, param],
      workgroups: [Math.min(groups, 65535), Math.ceil(groups / 65535), 1] }],
    limits: { maxStorageBuffersPerShaderStage: 4, maxComputeInvocationsPerWorkgroup: 64, maxComputeWorkgroupStorageSize: 0 },
    features: [],
  };
  const ex = await createExecutor((await gpu()).device, program);
  try {
    ex.write(xs, x);
    ex.step();
    return (await ex.read(out)) as Int32Array;
  } finally {
    ex.destroy();
  }
}

describe('bf16 stochastic rounding on WebGPU', () => {
  it('gives the host bits for the same seed, step, param and element', async () => {
    const special = [0, -0, 1, -1.5, 1 + 2 ** -9, -(1 + 2 ** -9), 3.0e38, -3.3e38, 1e-40, -1e-42, 2 ** -126 * 1.3, 65504.7, 0.1, Infinity, -Infinity, NaN];
    const x = Float32Array.from({ length: 512 }, (_, i) => (i < special.length ? special[i] : Math.sin(i * 12.9898) * 10 ** ((i % 60) - 30)));
    for (const [seed, step, param] of [[0, 0, 0], [1234567, 17, 3], [0xffffffff, 0xfffffffe, 41]]) {
      const bits = await roundOnDevice(x, 4096, seed, step, param);
      for (let i = 0; i < bits.length; i++) {
        const want = bf16StochasticBits(x[i % x.length], roundingBits(seed, step, param, i));
        if ((bits[i] >>> 0) !== want) expect.fail(`seed ${seed} step ${step} param ${param} element ${i}: x ${x[i % x.length]} (f32 bits ${f32bitsOf(x[i % x.length]).toString(16)}): host ${want.toString(16)}, device ${(bits[i] >>> 0).toString(16)}`);
      }
    }
  });

  it('is unbiased: the mean of 65536 device draws is the f32 value within 4 standard errors', async () => {
    const draws = 65536;
    for (const v of [1 + 2 ** -10, -3.14159, 1e-3 * 1.37, 12345.678]) {
      const fx = Math.fround(v);
      const lo = fromBf16bits(f32bitsOf(fx) >>> 16);
      const hi = fromBf16bits((f32bitsOf(fx) >>> 16) + 1);
      const bits = await roundOnDevice(Float32Array.of(fx), draws, 99, 5, 1);
      let sum = 0;
      for (const b of bits) sum += fromBf16bits(b) - lo;
      const p = (fx - lo) / (hi - lo);
      const se = Math.abs(hi - lo) * Math.sqrt((p * (1 - p)) / draws);
      expect(Math.abs(sum / draws - (fx - lo)), `${v}`).toBeLessThanOrEqual(4 * se + Math.abs(hi - lo) * 2 ** -16);
      expect(p > 0 && p < 1).toBe(true);
    }
  });
});

describe('f16 stochastic rounding on WebGPU', () => {
  const f32 = new Float32Array(1);
  const bitsOf = (v: number) => ((f32[0] = v), f32bitsOf(f32[0]));
  const valueOf = (b: number) => new Float32Array(Uint32Array.of(b >>> 0).buffer)[0];

  it('gives the host value, bit for bit, for the same seed, step, param and element (normals, subnormals, under 2^-24, past F16_MAX)', async () => {
    const special = [0, -0, 1, -1.5, 1 + 2 ** -12, 65504, 65504.7, -65535.9, 65536, 1e30, 2 ** -14 * 1.3, 3.3e-6, -(2 ** -24), 1.5e-8, 2 ** -40, 1e-40, 0.1, Infinity, -Infinity];
    const x = Float32Array.from({ length: 512 }, (_, i) => (i < special.length ? special[i] : Math.sin(i * 12.9898) * 10 ** ((i % 14) - 9)));
    for (const [seed, step, param] of [[0, 0, 0], [1234567, 17, 3], [0xffffffff, 0xfffffffe, 41]]) {
      const bits = await roundOnDevice(x, 4096, seed, step, param, true);
      for (let i = 0; i < bits.length; i++) {
        const want = bitsOf(f16StochasticValue(x[i % x.length], roundingBits(seed, step, param, i)));
        if ((bits[i] >>> 0) !== want) expect.fail(`seed ${seed} step ${step} param ${param} element ${i}: x ${x[i % x.length]}: host ${valueOf(want)}, device ${valueOf(bits[i])}`);
      }
    }
  });

  it('is unbiased: the mean of 65536 device draws is the f32 value within 4 standard errors', async () => {
    const draws = 65536;
    // lo and hi: the f16 neighbours (steps 2^-10 of the binade, 2^-24 below 2^-14).
    for (const [v, step] of [[1 + 2 ** -12, 2 ** -10], [-3.14159, 2 ** -9], [1e-3 * 1.37, 2 ** -20], [3.3e-6, 2 ** -24], [1.5e-8, 2 ** -24]]) {
      const fx = Math.abs(Math.fround(v));
      const lo = Math.floor(fx / step) * step;
      const bits = await roundOnDevice(Float32Array.of(Math.fround(v)), draws, 99, 5, 1, true);
      let sum = 0;
      for (const b of bits) sum += Math.abs(valueOf(b)) - lo;
      const p = (fx - lo) / step;
      const se = step * Math.sqrt((p * (1 - p)) / draws);
      expect(Math.abs(sum / draws - (fx - lo)), `${v}`).toBeLessThanOrEqual(4 * se + step * 2 ** -24);
      expect(p > 0 && p < 1).toBe(true);
    }
  });
});
