// --accumulate on WebGPU (lavapipe): the accumulated step's kernels equal the reference executor
// running the same compiled step, inside exactly the plan's bytes; and on the device, K
// micro-batches of b equal one batch of K x b (same rows, same initial params) within f32
// summation order, under LOMO, SGD and AdamW, with checkpointing and clip-norm.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import gpt from '../../models/gpt.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches, toleranceFor } from './step-compare.ts';

const cases = [
  { optimizer: 'lomo', checkpoint: { kind: 'blocks' }, clipNorm: 0.5 },
  { optimizer: 'sgd', checkpoint: { kind: 'none' }, clipNorm: undefined },
  { optimizer: 'adamw', checkpoint: { kind: 'blocks' }, clipNorm: 0.5 },
] as const;

describe('gpt tiny, 2 micro-batches of 2, on WebGPU', () => {
  for (const { optimizer, checkpoint, clipNorm } of cases) {
    const what = `${optimizer}, checkpoint ${checkpoint.kind}${clipNorm ? `, clip-norm ${clipNorm}` : ''}`;
    it(`${what}: equals the reference executor after 3 steps, in the plan's bytes; equals one batch of 4`, async () => {
      const acc = compileProgram(gpt, { preset: 'tiny', optimizer, checkpoint, clipNorm, accumulate: 2, target: 'cpu' });
      const big = compileProgram(gpt, { preset: 'tiny', optimizer, checkpoint, clipNorm, batch: 4, target: 'cpu' });
      const vocab = idRanges(acc.step);
      const a = await runBoth(await gpu(), acc, { vocab, seed: 7 });
      expect(stepMismatches(a, { rel: toleranceFor(optimizer) })).toEqual([]);
      expect(a.arenaBytes).toBe(acc.plan.peak);
      // The same rows (the batch is drawn from the inputs' shapes, [4, 8] on both) and the same init.
      const b = await runBoth(await gpu(), big, { vocab, seed: 7 });
      expect(stepMismatches({ ...a, ref: b.gpu }, { rel: toleranceFor(optimizer) })).toEqual([]);
    });
  }
});
