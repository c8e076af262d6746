// Whole training steps with tensors split across storage bindings (forced by a tiny binding
// limit) equal the same steps unsplit, bit for bit: splitting changes where elements live and
// how kernels reach them, never the order of any sum. gpt tiny and llama tiny, f32, packed f16
// and bf16, LOMO and AdamW, 2 steps on lavapipe from the same seed and batches.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { gpu } from './harness.ts';
import { runBoth } from './step-compare.ts';

const models = { gpt, llama } as const;
/** Per dtype, a binding limit that splits the embedding, the logits and the LM head's gradient. */
const limitFor = { f32: 2048, f16: 1024, bf16: 1024 } as const;

describe('split tensors: a whole step equals the unsplit step bit for bit', () => {
  for (const model of ['gpt', 'llama'] as const)
    for (const dtype of ['f32', 'f16', 'bf16'] as const)
      for (const optimizer of ['lomo', 'adamw'] as const)
        it(`${model} tiny ${dtype} ${optimizer}: --max-binding ${limitFor[dtype]} B equals no limit`, async () => {
          const acq = await gpu();
          const runOf = async (maxBindingBytes?: number) => {
            const c = compileProgram(models[model], {
              preset: 'tiny', optimizer, dtype, target: { ...kernelTargets.cpu, half: 'packed' },
              ...(maxBindingBytes ? { plan: { maxBindingBytes } } : {}),
            });
            return { c, run: await runBoth(acq, c, { vocab: idRanges(c.step), seed: 5, lr: 0.05, steps: 2 }) };
          };
          const whole = await runOf();
          const split = await runOf(limitFor[dtype]);
          expect(split.c.program.dispatches.filter((d) => d.shader.includes('|split:')).length).toBeGreaterThan(5);
          expect(whole.c.program.dispatches.some((d) => d.shader.includes('|split:'))).toBe(false);
          expect(split.run.gpu.losses).toEqual(whole.run.gpu.losses);
          for (const [name, want] of Object.entries(whole.run.gpu.params)) expect(Array.from(split.run.gpu.params[name]), name).toEqual(Array.from(want));
          for (const [name, want] of Object.entries(whole.run.gpu.state)) expect(Array.from(split.run.gpu.state[name]), name).toEqual(Array.from(want));
        }, 600_000);
});
