// A bundle trains exactly as the in-process program: same losses and params on the same data and seed,
// both loaded by the runtime in this process and through the bundle's own index.js in plain Node.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { writeBundle } from '../../compiler/bundle/write-bundle.ts';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { loadBundleDir } from '../../runtime/bundle/node.ts';
import type { StepProgram } from '../../contract/program.ts';
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
      const c = compileProgram(def, { preset: 'tiny', optimizer: 'lomo', target: 'cpu' });
      const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-'));
      try {
        writeBundle(dir, c.program, { model: name, preset: 'tiny', config: c.config, plan: c.plan,
          step: { optimizer: 'lomo', dtype: 'f32', checkpoint: 'none', clipNorm: null, clipValue: null, target: 'cpu' } }, { entry: false });
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

describe("a bundle's index.js trains in plain Node exactly as the in-process path", () => {
  for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as [string, ModelDef][]) {
    it(`${name} tiny, lomo: lomoc compile, then node on a .mjs that imports the bundle (no tsx, no compiler)`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-entry-'));
      try {
        const bundle = path.join(dir, name);
        const io = { out: () => undefined, err: (t: string) => expect.fail(t) };
        expect(await main(['compile', `models/${name}.ts`, '--preset', 'tiny', '--optimizer', 'lomo', '--out', bundle], io)).toBe(0);
        // lomoc compile's default target is gpu: its kernels must run (and match) on lavapipe too.
        const c = compileProgram(def, { preset: 'tiny', optimizer: 'lomo', target: 'gpu' });
        const vocab = idRanges(c.step);
        const batches = [1, 2, 3].map((i) => randomBatch(dataInputs(c.program), vocab, i));
        const job = path.join(dir, 'batches.json');
        writeFileSync(job, JSON.stringify({ seed: 3, lr: 0.05, weightDecay: 0.01, batches: batches.map((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Array.from(v)]))) }));
        const script = fileURLToPath(new URL('./fixtures/bundle-consumer.mjs', import.meta.url));
        const run = promisify(execFile)(process.execPath, [script, bundle, job], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
        const want = await train(c.program, vocab); // the same batches: randomBatch is seeded by the step
        const got = JSON.parse((await run).stdout);
        const params = Object.fromEntries(Object.entries(want.params).map(([k, v]) => [k, Array.from(v)]));
        for (const way of ['device', 'gpu']) {
          expect(got[way].losses, way).toEqual(want.losses);
          expect(got[way].params, way).toEqual(params);
          expect(got[way].steps, way).toBe(3);
        }
        for (const l of want.losses) expect(Number.isFinite(l) && l > 0, String(l)).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
