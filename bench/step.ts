// Training-step throughput: models/gpt.ts preset `small` (vocab 256, width 128, 4 layers, 4 heads,
// seq 128, batch 8) compiled by lomoc under LOMO, SGD and AdamW, on the same WebGPU adapter. Each
// trainer warms up first (pipelines compile at first use); then rounds interleave the optimizers,
// one step each, so that load from other processes falls on all of them alike; each row reports
// the median step. `node bin/run-ts.js bench/step.ts [steps]` runs it alone.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';

export interface StepRow {
  readonly name: string;
  readonly msPerStep: number;
  readonly tokensPerSecond: number;
  readonly deviceBytes: number;
  readonly dispatches: number;
  readonly setupMs: number;
  readonly finalLoss: number;
}

export interface StepBench {
  readonly adapter: string;
  readonly tokensPerStep: number;
  readonly rows: readonly StepRow[];
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchStep(steps = 5, optimizers: readonly OptimizerName[] = ['lomo', 'sgd', 'adamw']): Promise<StepBench> {
  const compiled = optimizers.map((optimizer) => ({ optimizer, c: compileProgram(gpt, { preset: 'small', optimizer }) }));
  const acq = await acquireDevice(compiled[0].c.program);
  const tokensPerStep = Number(compiled[0].c.config.batch) * Number(compiled[0].c.config.seq);
  const runs: { optimizer: OptimizerName; t: Trainer; dispatches: number; losses: number[] }[] = [];
  for (const { optimizer, c } of compiled)
    runs.push({ optimizer, t: await createTrainer({ device: acq, program: c.program, seed: 1 }), dispatches: c.program.dispatches.length, losses: [] });
  const data = dataInputs(compiled[0].c.program);
  const vocab = idRanges(compiled[0].c.step);
  for (let i = 1; i <= steps; i++) {
    const batch = randomBatch(data, vocab, i);
    for (const r of runs) r.losses.push((await r.t.step(batch, { lr: 0.01, weightDecay: 0 }))!);
  }
  const rows = runs.map(({ optimizer, t, dispatches, losses }): StepRow => {
    const ms = median(t.stepMs);
    return {
      name: `lomoc ${optimizer}`,
      msPerStep: ms,
      tokensPerSecond: (tokensPerStep * 1000) / ms,
      deviceBytes: t.deviceBytes,
      dispatches,
      setupMs: t.setupMs,
      finalLoss: losses.at(-1)!,
    };
  });
  for (const r of runs) r.t.destroy();
  acq.device.destroy();
  return { adapter: acq.description, tokensPerStep, rows };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

export function formatStepTable(b: StepBench): string {
  const lines = [
    '| step | ms/step | tokens/s | device bytes | dispatches/step | setup s |',
    '|---|---:|---:|---:|---:|---:|',
    ...b.rows.map((r) =>
      `| ${r.name} | ${r.msPerStep.toFixed(1)} | ${Math.round(r.tokensPerSecond)} | ${mib(r.deviceBytes)} | ${r.dispatches} | ${(r.setupMs / 1000).toFixed(1)} |`),
    '| TODO(peers): TF.js WebGPU, same model, same adapter | | | | | |',
    '| TODO(peers): PyTorch CPU (python3-torch, OpenBLAS) | | | | | |',
  ];
  return `adapter: ${b.adapter}; ${b.tokensPerStep} tokens per step\n\n${lines.join('\n')}`;
}

// Run alone (not when bench/index.ts or a bundle imports it).
if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href.endsWith('/bench/step.ts')) {
  console.log(formatStepTable(await benchStep(Number(process.argv[2] ?? 5))));
  process.exit(0);
}
