// A bundle trains exactly as the in-process program: same losses and params on the same data and seed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeBundle } from '../../compiler/bundle/write-bundle.ts';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { loadBundleDir } from '../../runtime/bundle/node.ts';
import type { StepProgram } from '../../runtime/program.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { acquireDevice } from '../../runtime/webgpu/node.ts';
import { createTrainer, dataInputs } from '../../runtime/webgpu/trainer.ts';

async function train(program: StepProgram, vocab: Record<string, number>) {
  const acq = await acquireDevice(program);
  const t = await createTrainer({ device: acq, program, seed: 3 });
  const losses: number[] = [];
  for (let i = 1; i <= 3; i++) losses.push((await t.step(randomBatch(dataInputs(program), vocab, i), { lr: 0.05, weightDecay: 0.01 }))!);
  const params = await t.readParams();
  t.destroy();
  acq.device.destroy();
  return { losses, params };
}

describe('a bundle trains identically to the in-process path', () => {
  for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as [string, ModelDef][]) {
    it(`${name} tiny, lomo`, async () => {
      const c = compileProgram(def, { preset: 'tiny', optimizer: 'lomo' });
      const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-'));
      try {
        writeBundle(dir, c.program, { model: name, preset: 'tiny', config: c.config, plan: c.plan,
          step: { optimizer: 'lomo', dtype: 'f32', checkpoint: 'none', clipNorm: null, clipValue: null } });
        const loaded = await loadBundleDir(dir);
        const vocab = idRanges(c.step);
        const [a, b] = [await train(c.program, vocab), await train(loaded.program, vocab)];
        expect(b.losses).toEqual(a.losses);
        expect(b.params).toEqual(a.params);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
