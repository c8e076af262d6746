// `--optimizer adalomo` on WebGPU: whole training steps (3, so r, c and b_t evolve) agree with the
// reference executor, the device holds exactly the plan's peak, and AdaLomo fused into backward
// agrees with the same rule run after backward (test/passes/adalomo.test.ts proves them bit-equal
// on the reference executor; here both run as compiled kernels).
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import { adalomo } from '../../compiler/optimizers/adalomo.ts';
import { optimizerNames, registerOptimizer } from '../../compiler/optimizers/table.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches } from './step-compare.ts';

if (!optimizerNames().includes('adalomoAfter'))
  registerOptimizer({ ...adalomo, name: 'adalomoAfter', inBackward: false, clipNorm: 'afterBackward' });

/** Largest |a - b| of any param or state element, relative to its tensor's largest |b|. */
function largestDiff(a: Readonly<Record<string, ArrayLike<number>>>, b: Readonly<Record<string, ArrayLike<number>>>): number {
  let worst = 0;
  for (const [name, want] of Object.entries(b)) {
    const got = a[name];
    const scale = Math.max(...Array.from(want, Math.abs));
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (scale || 1));
  }
  return worst;
}

/**
 * The attention key bias's true gradient is zero (it adds the same q.b to every score of a query's
 * row, and softmax ignores that), so both sides' gradients are rounding noise, which AdaLomo (like
 * Adam) divides by its own RMS into steps of lr * eps2 (1e-4 here) of either sign. Those params
 * are checked for that size instead; every other param and state as stepMismatches states.
 */
const keyBias = /attn\.k\.b\b/;
function mismatches(run: Awaited<ReturnType<typeof runBoth>>): string[] {
  for (const side of [run.gpu, run.ref])
    for (const [name, w] of Object.entries(side.params)) if (keyBias.test(name)) expect(Math.max(...Array.from(w, Math.abs))).toBeLessThan(2e-3);
  return stepMismatches(run, { rel: 1e-4 }).filter((m) => !keyBias.test(m));
}

describe('AdaLomo training steps on WebGPU', () => {
  it('gpt tiny: 3 steps equal the reference executor; the device holds the plan\'s peak', async () => {
    const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'adalomo', target: 'cpu' });
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 5 });
    expect(Object.keys(run.gpu.state).sort()).toEqual(c.step.params.flatMap((p) => [`col.${p.name}`, `row.${p.name}`]).sort());
    expect(mismatches(run)).toEqual([]);
    expect(run.arenaBytes).toBe(c.plan.peak);
  });

  it('llama tiny with clip-norm 0.5 (two passes) and a clip value', async () => {
    const c = compileProgram(llama, { preset: 'tiny', optimizer: 'adalomo', clipNorm: 0.5, clipValue: 0.02, target: 'cpu' });
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 6 });
    expect(mismatches(run)).toEqual([]);
    expect(run.arenaBytes).toBe(c.plan.peak);
  });

  it('llama tiny, f16 storage (updated in place, no master copy), against the reference f16 emulation', async () => {
    const c = compileProgram(llama, { preset: 'tiny', optimizer: 'adalomo', dtype: 'f16', target: 'cpu' });
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 8 });
    // step-f16.test.ts's tolerance: four f16 steps of each tensor's largest value, two of the loss;
    // twice that for the states, averages of g^2, whose relative error is twice the gradient's.
    expect(stepMismatches(run, { rel: 8e-3, lossRel: 2e-3 }).filter((m) => !m.startsWith('state '))).toEqual([]);
    expect(stepMismatches(run, { rel: 1.6e-2, lossRel: 2e-3 })).toEqual([]);
    expect(run.arenaBytes).toBe(c.plan.peak);
  });

  it('fused into backward and after backward agree, with clip-norm', async () => {
    const runs = [];
    for (const optimizer of ['adalomo', 'adalomoAfter']) {
      const c = compileProgram(gpt, { preset: 'tiny', optimizer, clipNorm: 0.5, target: 'cpu' });
      runs.push(await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 7 }));
    }
    const [fused, after] = runs;
    fused.gpu.losses.forEach((l, i) => expect(Math.abs(l - after.gpu.losses[i])).toBeLessThan(1e-6));
    expect(largestDiff(fused.gpu.params, after.gpu.params)).toBeLessThan(1e-6);
    expect(largestDiff(fused.gpu.state, after.gpu.state)).toBeLessThan(1e-6);
  });
});
