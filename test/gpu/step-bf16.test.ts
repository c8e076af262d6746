// 16-bit storage without shader-f16, end to end: gpt tiny LOMO steps with params and activations
// stored as bf16 (always packed in u32 words) and as packed f16, on WebGPU against the reference
// executor's emulation, 3 steps; the bytes allocated are the plan's (2 per 16-bit element).
//
// Tolerance: as step-f16.test.ts, a stored value may differ by one rounding step where the two
// sides' f32 and double arithmetic straddle a tie; bf16's step is 8x f16's (2^-7 relative against
// 2^-10), so bf16 allows 8x the f16 test's bounds. Packed f16 keeps the f16 bounds.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import gpt from '../../models/gpt.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches } from './step-compare.ts';

describe('a 16-bit step without shader-f16 equals the reference emulation after 3 steps', () => {
  for (const [dtype, rel, lossRel] of [['bf16', 6.4e-2, 1.6e-2], ['f16', 8e-3, 2e-3]] as const)
    it(`gpt tiny, lomo, dtype ${dtype}, packed`, async () => {
      const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', dtype, target: { ...kernelTargets.cpu, half: 'packed' } });
      expect(c.program.features).toEqual([]);
      // Each param's planned buffer holds 2 bytes an element (plus alignment padding only).
      for (const p of c.program.params) expect(p.bytes).toBe(2 * p.shape.reduce((x, y) => x * y, 1));
      const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 7, lr: 0.1, steps: 3 });
      expect(stepMismatches(run, { rel, lossRel, lr: 0.1, steps: 3 })).toEqual([]);
      expect(run.arenaBytes).toBe(c.plan.peak);
    }, 600_000);
});
