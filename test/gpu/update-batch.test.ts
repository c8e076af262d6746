// Fewer update dispatches against the per-param update kernels: the multi-tensor update kernel
// (emit-update-batch.ts) and LOMO's sum + update kernel (a bias's gradient never stored). The
// same step compiled with and without them, run from the same params on the same batches, must
// leave every param, every optimizer state and every loss bit for bit equal, since each element's
// update is the same f32 code on the same gradient. Random models, optimizers, clipping, steps.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileForward } from '../../compiler/pipeline.ts';
import { lowerCompiled } from '../../compiler/compile-program.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import { idRanges } from '../../compiler/compile-program.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { createTrainer, dataInputs } from '../../runtime/webgpu/trainer.ts';
import { modelRecipe, traceRecipe } from '../support/arbitrary-model.ts';
import { gpu } from './harness.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { stepConfig } from '../../compiler/pipeline.ts';
import { traceModel } from '../../compiler/dsl/model.ts';
import gpt from '../../models/gpt.ts';

interface Case {
  readonly optimizer: OptimizerName;
  readonly clip: 'none' | 'norm' | 'value';
  readonly steps: number;
  readonly seed: number;
}

/** Losses, params and state after `steps` steps, as raw f32 bits. */
async function run(forward: Graph, k: Case, batched: boolean) {
  const c = compileForward(forward, {
    optimizer: k.optimizer,
    clipNorm: k.clip === 'norm' ? 0.5 : undefined,
    clipValue: k.clip === 'value' ? 0.05 : undefined,
    target: kernelTargets.cpu,
    fusion: batched ? {} : { updateBatch: false, reduceUpdate: false },
  });
  const { program } = lowerCompiled(c);
  const t = await createTrainer({ device: await gpu(), program, seed: k.seed });
  try {
    const losses: number[] = [];
    for (let s = 1; s <= k.steps; s++)
      losses.push((await t.step(randomBatch(dataInputs(program), idRanges(c.step), k.seed * 100 + s), { lr: 0.05, weightDecay: 0.01 }))!);
    const bits = (rec: Record<string, ArrayLike<number>>) =>
      Object.fromEntries(Object.entries(rec).map(([name, v]) => [name, Array.from(new Uint32Array(Float32Array.from(v).buffer))]));
    const batches = c.fusion.groups.filter((g) => g.kind === 'updateBatch').length;
    const reduces = c.fusion.groups.filter((g) => g.kind === 'reduceUpdate').length;
    return { losses, params: bits(await t.readParams()), state: bits(await t.readState()), batches, reduces, dispatches: program.dispatches.length };
  } finally {
    t.destroy();
  }
}

describe('update batches', () => {
  it('a step with update batches and sum + update kernels equals the per-param step bit for bit (random models, optimizers, clipping)', async () => {
    let batchedRuns = 0;
    await fc.assert(
      fc.asyncProperty(
        modelRecipe,
        fc.record({
          optimizer: fc.constantFrom<OptimizerName>('sgd', 'adamw', 'lomo'),
          clip: fc.constantFrom('none' as const, 'norm' as const, 'value' as const),
          steps: fc.integer({ min: 1, max: 2 }),
          seed: fc.integer({ min: 1, max: 1000 }),
        }),
        async (recipe, k) => {
          const forward = traceRecipe(recipe);
          const [one, each] = [await run(forward, k, true), await run(forward, k, false)];
          if (one.batches > 0) batchedRuns++;
          expect(one.dispatches).toBeLessThanOrEqual(each.dispatches);
          expect(one.losses).toEqual(each.losses);
          expect(one.params).toEqual(each.params);
          expect(one.state).toEqual(each.state);
        },
      ),
      { numRuns: 10 },
    );
    // Not vacuous: SGD and AdamW batch every model's updates (all at the end of the step).
    expect(batchedRuns).toBeGreaterThan(0);
  }, 240_000);

  // 128 rows per bias gradient: the sum runs in two passes, the update in the second (random models have a few rows).
  for (const optimizer of ['lomo', 'adamw'] as const)
    it(`gpt tiny at batch 16, ${optimizer}: the same bits with and without (two-pass sums)`, async () => {
      const { graph } = traceModel(gpt, stepConfig(gpt, { preset: 'tiny', optimizer, batch: 16 }));
      const k: Case = { optimizer, clip: 'none', steps: 2, seed: 5 };
      const [one, each] = [await run(graph, k, true), await run(graph, k, false)];
      expect(optimizer === 'lomo' ? one.reduces : one.batches).toBeGreaterThan(0);
      expect(one.dispatches).toBeLessThan(each.dispatches);
      expect(one.losses).toEqual(each.losses);
      expect(one.params).toEqual(each.params);
      expect(one.state).toEqual(each.state);
    }, 120_000);
});
