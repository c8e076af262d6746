// f16 storage end to end (the paper's setting): gpt and llama tiny steps with params and
// activations stored as f16 (AdamW with its f32 master copy and moments; LOMO updating the f16
// params in place) on WebGPU against the reference executor's f16 emulation, 3 steps.
//
// Tolerance: both sides round every stored value to f16 and agree before rounding to about f32
// precision (see kernels-f16.test.ts), so a stored value differs by at most one f16 step (2^-10
// relative) where that difference flips a rounding; three steps of forward, backward and update
// carry such flips on. Params and state within 4e-3 of each tensor's largest |value| (four f16
// steps), losses within 2e-3 of max(1, |loss|) (two). Measured worst: see the commit message.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches } from './step-compare.ts';

/**
 * llama's token embedding is the one ill-conditioned tensor: rows start at rms 0.02 and feed an
 * RMSNorm, whose backward multiplies by 1 / rms (about 50), so a row's step-2 gradient moves by
 * percents when step 1 left the other params an f16 step apart. That is f16's own error, not a
 * kernel's. Measured over seeds 1-24, 3 LOMO steps: the GPU is 0.5x to 4.6x as far from the f16
 * reference as that reference is from an f64 run, and about as close to the f64 run as it; against
 * 8e-3 the fused head's worst was 2.2x (seed 7: 1.4x), the unfused head's 5.6x (seed 7 passed by
 * chance); one step from the same params stays within 0.35x. Hence 2.4e-2 for this one tensor.
 */
const embeddingRel = { tok_embeddings: 2.4e-2 };

const models: readonly [string, ModelDef][] = [['gpt', gpt], ['llama', llama]];
const optimizers: readonly OptimizerName[] = ['lomo', 'adamw'];

describe('an f16-storage step on WebGPU equals the reference f16 emulation after 3 steps', () => {
  for (const [name, def] of models)
    for (const optimizer of optimizers)
      it(`${name} tiny, ${optimizer}, dtype f16`, async () => {
        const c = compileProgram(def, { preset: 'tiny', optimizer, dtype: 'f16', target: 'cpu' });
        expect(c.program.features).toContain('shader-f16');
        // AdamW moves each param by ~lr whatever its gradient, so a gradient whose sign the two
        // sides' roundings disagree on moves it 2 lr apart: lr 0.01, and a noise floor (step-compare.ts).
        const lr = optimizer === 'adamw' ? 0.01 : 0.1;
        // After one step AdamW's differences are all such flips; over three they compound past any
        // tolerance that would still catch a bug (measured: up to 5x of 8e-3 at lr 0.01), so one step.
        const steps = optimizer === 'adamw' ? 1 : 3;
        const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 7, lr, steps });
        // The floor: four f16 steps (2^-8) of the tensor's largest gradient (step-compare.ts, noiseRel).
        const noise = optimizer === 'adamw' ? { noiseFloor: 3e-3, noiseRel: 2 ** -8 } : {};
        expect(stepMismatches(run, { rel: 8e-3, relOf: name === 'llama' ? embeddingRel : {}, lossRel: 2e-3, lr, steps, ...noise })).toEqual([]);
        expect(run.arenaBytes).toBe(c.plan.peak);
      });
});
