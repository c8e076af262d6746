// bf16 LOMO with stochastic rounding, end to end: gpt tiny, 3 steps on WebGPU against the reference
// executor. Both sides pick each stored bf16 param by roundingBits(seed, step, param, element) from
// the f32 result, so they agree bit for bit wherever their f32 results agree; where f32 math
// differs (GPU reductions in another order) the same random bits may pick the neighbouring bf16
// value. Over 3 whole steps the activations, stored in bf16, already diverge (as with nearest:
// step-bf16.test.ts's bounds), so this test holds the run to step-bf16's tolerance; the update
// kernels alone are held bit for bit in update-stochastic.test.ts. The same for f16, stored
// natively and packed, at step-f16.test.ts's tolerance (plus the stochastic pick: one f16 step).
import { describe, expect, it } from 'vitest';
import { bf16bits } from '../../contract/bf16.ts';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import gpt from '../../models/gpt.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches } from './step-compare.ts';

/** The signed distance in bf16 steps between two bf16 values of the same sign. */
const ordered = (x: number) => {
  const b = bf16bits(x);
  return b & 0x8000 ? -(b & 0x7fff) : b;
};
const ulps = (a: number, b: number) => Math.abs(ordered(a) - ordered(b));

describe('bf16 LOMO with stochastic rounding: WebGPU equals the reference', () => {
  it('gpt tiny, 3 steps, seed 5: within the bf16 step tolerance, the update kernels rounding stochastically', async () => {
    const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', dtype: 'bf16', rounding: 'stochastic', roundingSeed: 5, target: { ...kernelTargets.cpu, half: 'packed' } });
    const code = Object.values(c.program.shaders).join('\n');
    // Both the unfused update kernel and the matmul + update epilogue round stochastically.
    expect(Object.keys(c.program.shaders).filter((k) => k.startsWith('update.sgd') && k.includes('.sr')).length).toBeGreaterThan(0);
    expect(Object.entries(c.program.shaders).filter(([k, s]) => !k.startsWith('update.') && s.includes('roundingBits(u.rseed')).length).toBeGreaterThan(0);
    expect(code).toContain('f32ToBf16Stochastic');
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 7, lr: 0.1, steps: 3 });
    expect(stepMismatches(run, { rel: 6.4e-2, lossRel: 1.6e-2, lr: 0.1, steps: 3 })).toEqual([]);
    let [total, differ, worst] = [0, 0, 0];
    for (const [name, want] of Object.entries(run.ref.params)) {
      const got = run.gpu.params[name];
      for (let i = 0; i < want.length; i++) {
        total++;
        if (Object.is(got[i], want[i])) continue;
        differ++;
        worst = Math.max(worst, ulps(got[i], want[i]));
      }
    }
    console.log(`stochastic bf16 gpt tiny: ${differ} of ${total} param elements differ, at most ${worst} bf16 ulp`);
  }, 600_000);
});

describe('f16 LOMO with stochastic rounding: WebGPU equals the reference', () => {
  for (const half of ['native', 'packed'] as const)
    it(`gpt tiny, 3 steps, seed 5, f16 ${half}: within the f16 step tolerance, the update kernels rounding stochastically`, async () => {
      const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', dtype: 'f16', rounding: 'stochastic', roundingSeed: 5, target: { ...kernelTargets.cpu, half } });
      expect(Object.keys(c.program.shaders).filter((k) => k.startsWith('update.sgd') && k.includes('.sr16')).length).toBeGreaterThan(0);
      expect(Object.values(c.program.shaders).join('\n')).toContain('f32ToF16Stochastic(w2');
      const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 7, lr: 0.1, steps: 3 });
      expect(stepMismatches(run, { rel: 8e-3 + 2 ** -10, lossRel: 2e-3, lr: 0.1, steps: 3 })).toEqual([]);
    }, 600_000);
});
