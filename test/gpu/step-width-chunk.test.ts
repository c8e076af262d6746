// Width-chunked FFNs on WebGPU: one whole step of llama tiny with checkpointed blocks and each FFN
// in 3 slices of its width (ffn 40: 13, 13 and 14 columns), under LOMO and AdamW: the window
// updates (each writing a column or row window of its weight, and of AdamW's moments) run on the
// device, the step equals the reference executor running it, and the device holds exactly its plan.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import llama from '../../models/llama.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches, toleranceFor } from './step-compare.ts';

describe('width slices on WebGPU', () => {
  for (const optimizer of ['lomo', 'adamw'] as readonly OptimizerName[])
    it(`llama tiny, ${optimizer}, checkpoint blocks,width=3: equals the reference executor`, async () => {
      const c = compileProgram(llama, { preset: 'tiny', optimizer, checkpoint: { kind: 'blocks', width: 3 }, target: 'cpu' });
      expect(c.step.nodes.filter((n) => n.op === 'optimizerUpdate' && n.attrs.window).length).toBe(2 * 3 * 3);
      const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 5, steps: 2 });
      expect(stepMismatches(run, { rel: toleranceFor(optimizer), steps: 2 })).toEqual([]);
      expect(run.arenaBytes).toBe(c.plan.peak);
    });

  it('llama tiny (4 layers), lomo, checkpoint blocks,levels=3,width=3: three levels of recompute, each slice\'s dm summed in place by its matmul, equals the reference executor', async () => {
    const c = compileProgram(llama, { preset: 'tiny', sets: ['layers=4'], optimizer: 'lomo', checkpoint: { kind: 'blocks', levels: 3, width: 3 }, target: 'cpu' });
    // The narrowing matmul's epilogue adds its product to dm, overwriting the old sum: one storage.
    const { buffers, bufferOf } = c.plan;
    const inPlace = c.step.nodes.filter((n, i) => n.op === 'add' && n.phase === 'backward' && c.fusion.groups.some((g) => g.kind === 'matmulEpilogue' && g.nodes.includes(i) && g.nodes[0] !== i) &&
      n.inputs.some((x) => bufferOf[x] === bufferOf[n.outputs[0]] && buffers[bufferOf[x]] !== undefined));
    expect(inPlace.length).toBeGreaterThan(0);
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 6, steps: 2 });
    expect(stepMismatches(run, { rel: toleranceFor('lomo'), steps: 2 })).toEqual([]);
    expect(run.arenaBytes).toBe(c.plan.peak);
  });

  // Head slices: each recomputed attention over 2 slices of its 2 heads (recompute loop, then the
  // backward loop recomputing q, k, v, o per slice), window updates of Wq, Wk, Wv, Wo on the device.
  it('llama tiny, lomo, checkpoint blocks,runs=2,width=3,heads=2: equals the reference executor', async () => {
    const c = compileProgram(llama, { preset: 'tiny', optimizer: 'lomo', checkpoint: { kind: 'blocks', runs: 2, width: 3, heads: 2 }, target: 'cpu' });
    expect(c.step.nodes.filter((n) => n.op === 'optimizerUpdate' && n.attrs.window).length).toBe(2 * 3 * 3 + 2 * 4 * 2);
    const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 5, steps: 2 });
    expect(stepMismatches(run, { rel: toleranceFor('lomo'), steps: 2 })).toEqual([]);
    expect(run.arenaBytes).toBe(c.plan.peak);
  });
});
