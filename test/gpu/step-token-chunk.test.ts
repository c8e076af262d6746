// Token-chunked recomputation on WebGPU: one whole step of gpt tiny and llama tiny, checkpointed
// blocks with their FFNs in 3 token chunks (16 rows: chunks of 5, 5 and 6), under LOMO and AdamW.
// The chunked step equals the reference executor running it, the device holds exactly its plan,
// its loss is the unchunked step's bit for bit (the forward is the same kernels), and its params
// and state equal the unchunked step's on the same device within the step tolerance.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches, toleranceFor } from './step-compare.ts';

const models: readonly [string, ModelDef][] = [['gpt', gpt], ['llama', llama]];
const optimizers: readonly OptimizerName[] = ['lomo', 'adamw'];

describe('token chunks on WebGPU: one step with and without chunking', () => {
  for (const [name, def] of models)
    for (const optimizer of optimizers)
      it(`${name} tiny, ${optimizer}, checkpoint blocks,chunks=3`, async () => {
        const compile = (chunks: number) => compileProgram(def, { preset: 'tiny', optimizer, checkpoint: { kind: 'blocks', chunks }, target: 'cpu' });
        const [plain, chunked] = [compile(1), compile(3)];
        expect(chunked.step.nodes.filter((n) => n.op === 'slice' && n.phase === 'recompute').length).toBeGreaterThan(0);
        const o = { vocab: idRanges(chunked.step), seed: 5, steps: 1 };
        const [a, b] = [await runBoth(await gpu(), chunked, o), await runBoth(await gpu(), plain, o)];
        expect(stepMismatches(a, { rel: toleranceFor(optimizer), steps: 1 })).toEqual([]);
        expect(a.arenaBytes).toBe(chunked.plan.peak);
        expect(a.gpu.losses).toEqual(b.gpu.losses);
        expect(stepMismatches({ ...a, ref: b.gpu }, { rel: toleranceFor(optimizer), steps: 1 })).toEqual([]);
      });

  it('llama tiny, lomo, checkpoint blocks,runs=2,chunks=3 (nested recomputation): equals the reference, 3 steps', async () => {
    const c = compileProgram(llama, { preset: 'tiny', optimizer: 'lomo', checkpoint: { kind: 'blocks', runs: 2, chunks: 3 }, target: 'cpu' });
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 6 });
    expect(stepMismatches(run, { rel: toleranceFor('lomo') })).toEqual([]);
    expect(run.arenaBytes).toBe(c.plan.peak);
  });
});
