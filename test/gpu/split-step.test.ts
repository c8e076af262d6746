// Whole training steps with tensors split across storage bindings (forced by a tiny binding
// limit) equal the same steps unsplit, bit for bit: splitting changes where elements live and
// how kernels reach them, never the order of any sum. gpt tiny and llama tiny, f32, packed f16
// and bf16, LOMO and AdamW, 2 steps on lavapipe from the same seed and batches; the split plan
// also spans several arenas (device buffers), and the device allocates exactly its peak.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import type { StepProgram } from '../../contract/program.ts';
import type { Acquired } from '../../runtime/webgpu/device.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { createTrainer, dataInputs } from '../../runtime/webgpu/trainer.ts';
import { gpu } from './harness.ts';

/** `steps` steps on the GPU from seed `seed`'s params and batches: losses, params, state, and the arena bytes against the plan. */
async function gpuSteps(acq: Acquired, program: StepProgram, vocab: Record<string, number>, steps: number, seed: number) {
  const t = await createTrainer({ device: acq, program, seed });
  try {
    const losses: number[] = [];
    for (let k = 1; k <= steps; k++) losses.push((await t.step(randomBatch(dataInputs(program), vocab, seed * 1000 + k), { lr: 0.05, weightDecay: 0.01 }))!);
    return { losses, params: await t.readParams(), state: await t.readState(), arenaBytes: t.arenaBytes, planBytes: t.planBytes };
  } finally {
    t.destroy();
  }
}

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
              // The fused loss's vocabulary chunk follows the binding limit by default, and the order of
              // its sums with it: both runs take the same chunk, so only the split differs.
              lossChunk: { chunk: 4 },
              // Arenas of at most 32 KiB too: the split step's plan spans several device buffers.
              ...(maxBindingBytes ? { plan: { maxBindingBytes, maxBufferBytes: 32 * 1024 } } : {}),
            });
            return { c, run: await gpuSteps(acq, c.program, idRanges(c.step), 2, 5) };
          };
          const whole = await runOf();
          const split = await runOf(limitFor[dtype]);
          expect(split.c.program.dispatches.filter((d) => d.shader.includes('|split:')).length).toBeGreaterThan(5);
          expect(whole.c.program.dispatches.some((d) => d.shader.includes('|split:'))).toBe(false);
          expect(split.c.program.arenas.length).toBeGreaterThan(1);
          expect(Math.max(...split.c.program.arenas)).toBeLessThanOrEqual(32 * 1024);
          expect(split.run.arenaBytes).toBe(split.run.planBytes);
          expect(split.run.losses.every(Number.isFinite)).toBe(true);
          expect(split.run.losses).toEqual(whole.run.losses);
          for (const [name, want] of Object.entries(whole.run.params)) expect(Array.from(split.run.params[name]), name).toEqual(Array.from(want));
          for (const [name, want] of Object.entries(whole.run.state)) expect(Array.from(split.run.state[name]), name).toEqual(Array.from(want));
        }, 600_000);

  it('bf16 AdamW with stochastic rounding and no master copy: the update runs per element range and draws by the tensor\'s element index', async () => {
    const acq = await gpu();
    const runOf = async (maxBindingBytes?: number) => {
      const c = compileProgram(gpt, {
        preset: 'tiny', optimizer: 'adamw', dtype: 'bf16', master: false, rounding: 'stochastic', target: { ...kernelTargets.cpu, half: 'packed' },
        ...(maxBindingBytes ? { plan: { maxBindingBytes } } : {}),
      });
      return { c, run: await gpuSteps(acq, c.program, idRanges(c.step), 2, 9) };
    };
    const whole = await runOf();
    const split = await runOf(1024);
    expect(split.c.program.dispatches.filter((d) => d.shader.includes('.sr.based')).length).toBeGreaterThan(1);
    expect(split.run.losses).toEqual(whole.run.losses);
    for (const [name, want] of Object.entries(whole.run.params)) expect(Array.from(split.run.params[name]), name).toEqual(Array.from(want));
  }, 600_000);
});
