// Clipping under LOMO, measured: models/gpt.ts preset `small` trained on Moby Dick (bytes
// tokenizer) with one seed and one lr schedule by SGD and AdamW (clip-norm), LOMO with exact clipping (the
// two-pass backward), LOMO with one-pass clipping (--clip-mode previous, approximate), and any
// optimizer named on the command line (clip-norm too), through `lomoc train` itself. Printed: the
// validation loss at fixed steps, each run's device bytes, and the step time relative to plain SGD
// (no clipping), timed apart from the training runs in interleaved rounds (one step of each
// config per round, the median step of each) so that load from other processes falls on all
// alike. Writes an SVG of the validation curves.
//
// `node bin/run-ts.js bench/clip-moby.ts [steps] [optimizer...]` (default 150 steps; not in
// `npm run bench`'s default list: it trains four models). Environment: CLIP_MOBY_OUT (the SVG,
// default out/clip-moby.svg), CLIP_MOBY_TIMING (timed rounds, default 12).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { main } from '../cli/main.ts';
import type { Io } from '../cli/report.ts';
import { lossChartSvg } from '../cli/loss-svg.ts';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { targetForAdapter, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { StepConfig } from '../compiler/pipeline.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';

interface Config {
  readonly name: string;
  /** `lomoc train` options besides the shared ones. */
  readonly args: readonly string[];
  /** The same step for the timing rounds. */
  readonly step: Omit<StepConfig, 'preset'>;
}

const clipNorm = 1;
const shared = (steps: number) => ['models/gpt.ts', '--preset', 'small', '--data', 'moby-dick', '--tokenizer', 'bytes', '--seed', '1',
  '--lr', '0.01', '--lr-schedule', 'cosine', '--warmup', String(Math.min(10, Math.floor(steps / 10))), '--steps', String(steps),
  '--eval-every', String(Math.max(1, Math.floor(steps / 10))), '--json'];

export function clipConfigs(extra: readonly string[]): Config[] {
  const clip = ['--clip-norm', String(clipNorm)];
  return [
    { name: 'sgd, clip-norm (the plain step LOMO must equal)', args: ['--optimizer', 'sgd', ...clip], step: { optimizer: 'sgd', clipNorm } },
    { name: 'adamw, clip-norm', args: ['--optimizer', 'adamw', '--lr', '0.001', ...clip], step: { optimizer: 'adamw', clipNorm } },
    { name: 'lomo, exact clip (two-pass)', args: ['--optimizer', 'lomo', ...clip], step: { optimizer: 'lomo', clipNorm } },
    { name: 'lomo, one-pass clip (previous, approximate)', args: ['--optimizer', 'lomo', ...clip, '--clip-mode', 'previous'], step: { optimizer: 'lomo', clipNorm, clipMode: 'previous' } },
    ...extra.map((o) => ({ name: `${o}, clip-norm`, args: ['--optimizer', o, ...clip], step: { optimizer: o, clipNorm } })),
  ];
}

interface TrainResult {
  readonly losses: readonly { step: number; loss: number }[];
  readonly val: readonly { step: number; loss: number }[];
  readonly deviceBytes: number;
}

async function train(c: Config, steps: number): Promise<TrainResult> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t) };
  // A config's own --lr (AdamW's) replaces the shared one: an option given twice is an error.
  const base = shared(steps);
  const args = c.args.includes('--lr') ? base.filter((a, i) => a !== '--lr' && base[i - 1] !== '--lr') : base;
  const code = await main(['train', ...args, ...c.args], io);
  if (code !== 0) throw new Error(`${c.name}: lomoc train failed: ${err.join('\n')}`);
  const r = JSON.parse(out.join('\n')) as TrainResult;
  return { losses: r.losses, val: r.val, deviceBytes: r.deviceBytes };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median ms per step of each step config (and of plain SGD, first), interleaved in rounds. */
async function timeSteps(steps: readonly Omit<StepConfig, 'preset'>[], rounds: number): Promise<{ sgdMs: number; ms: number[]; sgdBytes: number }> {
  const probe = await probeAdapter();
  const target: TargetName = probe ? targetForAdapter(probe.adapter.info) : 'cpu';
  const all = [{ optimizer: 'sgd' }, ...steps].map((s) => compileProgram(gpt, { preset: 'small', ...s, target }));
  const acq = await acquireDevice(all[0].program);
  const trainers: Trainer[] = [];
  for (const c of all) trainers.push(await createTrainer({ device: acq, program: c.program, seed: 1 }));
  const data = dataInputs(all[0].program);
  const vocab = idRanges(all[0].step);
  for (let i = 1; i <= rounds; i++) {
    const batch = randomBatch(data, vocab, i);
    for (const t of trainers) await t.step(batch, { lr: 0.01, weightDecay: 0 });
  }
  // The first step of each holds the lazy pipeline work the warm-up missed: dropped.
  const ms = trainers.map((t) => median(t.stepMs.slice(1)));
  const sgdBytes = trainers[0].deviceBytes;
  for (const t of trainers) t.destroy();
  acq.device.destroy();
  return { sgdMs: ms[0], ms: ms.slice(1), sgdBytes };
}

export async function benchClipMoby(steps: number, extra: readonly string[], rounds = 12) {
  const configs = clipConfigs(extra);
  const results: TrainResult[] = [];
  for (const c of configs) {
    console.error(`training ${c.name} for ${steps} steps`);
    results.push(await train(c, steps));
  }
  const timing = await timeSteps(configs.map((c) => c.step), rounds);
  return { configs, results, timing };
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('clip-moby.ts')) {
  const steps = Number(process.argv[2] ?? 150);
  const extra = process.argv.slice(3);
  const rounds = Number(process.env.CLIP_MOBY_TIMING ?? 12);
  const { configs, results, timing } = await benchClipMoby(steps, extra, rounds);
  const at = [...new Set(results.flatMap((r) => r.val.map((p) => p.step)))].sort((a, b) => a - b);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  console.log(`gpt small on Moby Dick (bytes), seed 1, cosine lr, ${steps} steps, clip-norm ${clipNorm}; plain SGD: ${timing.sgdMs.toFixed(1)} ms/step, ${mib(timing.sgdBytes)}`);
  console.log(`| run | ${at.map((s) => `val@${s}`).join(' | ')} | device bytes | step time vs plain SGD |`);
  console.log(`|---|${at.map(() => '---|').join('')}---|---|`);
  configs.forEach((c, i) => {
    const v = new Map(results[i].val.map((p) => [p.step, p.loss]));
    console.log(`| ${c.name} | ${at.map((s) => (v.has(s) ? v.get(s)!.toFixed(4) : '')).join(' | ')} | ${mib(results[i].deviceBytes)} | ${(timing.ms[i] / timing.sgdMs).toFixed(2)}x |`);
  });
  const file = process.env.CLIP_MOBY_OUT ?? join('out', 'clip-moby.svg');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, lossChartSvg(configs.map((c, i) => ({ label: c.name, train: results[i].losses, val: results[i].val })), { title: `gpt small, Moby Dick: validation loss, ${steps} steps` }));
  console.log(`wrote ${file}`);
}
