// Autotuning's gain and cost: models/gpt.ts preset `small` under LOMO, compiled for the adapter's
// kernel target, tuned (cli/tune.ts) into a fresh cache folder so the tuning time is the
// first-use cost, then the untuned and the tuned program stepped in interleaved rounds on the same
// device (load from other processes falls on both alike); each reports its median step.
// `node bin/run-ts.js bench/tune.ts [rounds] [budget-seconds]`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileProgram, idRanges, lowerCompiled } from '../compiler/compile-program.ts';
import { kernelTargets, targetForAdapter } from '../compiler/codegen/wgsl/target.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs } from '../runtime/webgpu/trainer.ts';
import { describeTuning, matmulShapes, tuneMatmuls } from '../cli/tune.ts';

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchTune(rounds = 10, budgetMs = 120_000): Promise<string[]> {
  const acq = await acquireDevice();
  const name = targetForAdapter(acq.adapter.info);
  const c = compileProgram(gpt, { preset: 'small', optimizer: 'lomo', target: kernelTargets[name] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lomoc-bench-tune-'));
  const warnings: string[] = [];
  try {
    const { target, report } = await tuneMatmuls(acq, c.target, name, matmulShapes([c.step]), { budgetMs, cacheDir: dir, warn: (m) => warnings.push(m) });
    const programs = { untuned: c.program, tuned: lowerCompiled({ ...c, target }).program };
    const trainers = await Promise.all(Object.values(programs).map((program) => createTrainer({ device: acq, program, seed: 1 })));
    const data = dataInputs(c.program);
    const vocab = idRanges(c.step);
    const ms: number[][] = trainers.map(() => []);
    const losses: number[][] = trainers.map(() => []);
    for (let r = 0; r <= rounds; r++)
      for (const [i, t] of trainers.entries()) {
        const t0 = performance.now();
        losses[i].push((await t.step(randomBatch(data, vocab, r + 1), { lr: 0.01, weightDecay: 0 }))!);
        if (r > 0) ms[i].push(performance.now() - t0); // round 0 warms up (pipelines compile at first use)
      }
    trainers.forEach((t) => t.destroy());
    const same = losses[0].every((l, i) => Math.abs(l - losses[1][i]) <= 1e-5 * Math.abs(l));
    return [
      `adapter ${acq.description}; kernel target ${name}`,
      ...describeTuning(report, c.target),
      ...warnings.map((w) => `warning: ${w}`),
      `gpt small, lomo, median of ${rounds} interleaved steps: untuned ${median(ms[0]).toFixed(1)} ms/step, tuned ${median(ms[1]).toFixed(1)} ms/step`,
      `losses ${same ? 'agree' : 'DIFFER'} within 1e-5 relative over ${rounds + 1} steps`,
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    acq.device.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [rounds, budget] = process.argv.slice(2).map(Number);
  for (const line of await benchTune(rounds || 10, (budget || 120) * 1000)) console.log(line);
}
