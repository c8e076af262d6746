// What exact clipping costs LOMO: models/gpt.ts (presets small and tiny) stepped by plain SGD,
// LOMO without clipping, LOMO with exact clipping (the norm pass: a second backward whose weight
// gradients are summed into the norm inside their matmul kernels and never stored, sharing the top
// of the backward with pass 2 where the plan's peak allows: passes/norm-share.ts), the same sharing
// none (the whole backward cloned, as before), and before that (each weight gradient stored, then
// reduced: fusion.matmulNorm off), LOMO with one-pass clipping (--clip-mode previous) and AdaLomo,
// on one WebGPU adapter. `--checkpoint blocks` after the rounds runs every config with it.
// Rounds interleave the configs, one step each with the same batch (each round starting at the
// next config), so load from other processes falls on all alike; each row reports the median step (the first dropped: lazy pipeline work)
// and its ratio to plain SGD's. Bytes: the plan's peak (what the device allocates), and the most
// bytes live at one moment of the norm pass (its own peak, beside SGD's whole-step peak).
// `node bin/run-ts.js bench/clip-step.ts [rounds] [preset...] [--checkpoint blocks]` (default 8 rounds, small and tiny).
// Measured on lavapipe, 2 cores at load 2-3 (Dec 2026): gpt small (8 rounds; 12) exact clip 1.04x
// SGD (1.02x) sharing all 68 gradients (the backward once; 38.45 MiB on the device, as SGD, from
// 40.93 MiB), 1.67x (1.61x) sharing none (before), 1.72x (1.60x) with the norm pass storing each
// gradient; tiny (30 rounds) 1.18x sharing all 36 (SGD with clip-norm 1.18x), 1.76x before. small
// with --checkpoint blocks (8 rounds): shares 2 of 68 (each block shared adds its 0.75 MiB of
// gradients less its 0.5 MiB input to pass 1's peak), 1.60x, 1.62x before. Earlier, at load 12-20: tiny (40 rounds) the stored-gradient norm pass
// 1.33x SGD, the fused one 1.15x; there each small matmul is ~11 ms of arithmetic, and the norm
// epilogue costs the weight-gradient matmul nothing measurable ([128, 1024] x [1024, 512]: 11.6 ms
// plain, 11.4 with the norm epilogue and no store).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileProgram, idRanges, type CompiledProgram } from '../compiler/compile-program.ts';
import { targetForAdapter, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { FuseConfig, StepConfig } from '../compiler/pipeline.ts';
import { memoryReport } from '../compiler/report/memory-report.ts';
import { categories } from '../compiler/ir/memory-plan.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';

type Step = Omit<StepConfig, 'preset'> & FuseConfig;

const clipNorm = 1;
export const clipStepConfigs: readonly { readonly name: string; readonly step: Step }[] = [
  { name: 'sgd', step: { optimizer: 'sgd' } },
  { name: 'sgd, clip-norm', step: { optimizer: 'sgd', clipNorm } },
  { name: 'lomo', step: { optimizer: 'lomo' } },
  { name: 'lomo, exact clip (norm pass stores each gradient, shares none)', step: { optimizer: 'lomo', clipNorm, fusion: { matmulNorm: false }, shareNormPass: false } },
  { name: 'lomo, exact clip (before: the whole backward cloned, shares none)', step: { optimizer: 'lomo', clipNorm, shareNormPass: false } },
  { name: 'lomo, exact clip', step: { optimizer: 'lomo', clipNorm } },
  { name: 'lomo, clip-mode previous', step: { optimizer: 'lomo', clipNorm, clipMode: 'previous' } },
  { name: 'adalomo', step: { optimizer: 'adalomo' } },
];

export interface ClipStepRow {
  readonly name: string;
  readonly ms: number;
  readonly vsSgd: number;
  readonly peak: number;
  /** The most bytes live at one position of the norm pass (undefined: no norm pass). */
  readonly normPeak?: number;
  readonly dispatches: number;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The most bytes live at a position whose node is in the norm pass (phase 'norm', not the norm chain's scalars alone). */
function normPassPeak(c: CompiledProgram): number | undefined {
  const { timeline } = memoryReport(c.plan);
  let most: number | undefined;
  c.step.nodes.forEach((n, i) => {
    if (n.phase !== 'norm' || n.op === 'sumSquares' || n.op === 'add' || n.op === 'clipFactor') return;
    const live = categories.reduce((s, k) => s + timeline[i][k], 0);
    most = Math.max(most ?? 0, live);
  });
  return most;
}

export async function benchClipStep(preset: string, rounds: number, extra: Partial<Step> = {}): Promise<{ adapter: string; rows: ClipStepRow[] }> {
  const probe = await probeAdapter();
  const target: TargetName = probe ? targetForAdapter(probe.adapter.info) : 'cpu';
  const compiled = clipStepConfigs.map((c) => compileProgram(gpt, { preset, ...c.step, ...extra, target }));
  const acq = await acquireDevice(compiled[0].program);
  const trainers: Trainer[] = [];
  // Polling, not sleeping first: on a loaded machine a late timer lands in the step (gpt tiny,
  // 60 rounds: exact clip 1.49x SGD polled; the sleeping rounds put it anywhere from 1.3x to 1.7x).
  for (const c of compiled) trainers.push(await createTrainer({ device: acq, program: c.program, seed: 1, hostWait: 'poll' }));
  const data = dataInputs(compiled[0].program);
  const vocab = idRanges(compiled[0].step);
  for (let i = 1; i <= rounds + 1; i++) {
    const batch = randomBatch(data, vocab, i);
    // Each round starts at another config, so none always runs first after the host's pause.
    for (let k = 0; k < trainers.length; k++) await trainers[(k + i) % trainers.length].step(batch, { lr: 0.01, weightDecay: 0 });
  }
  const ms = trainers.map((t) => median(t.stepMs.slice(1)));
  const rows = clipStepConfigs.map((c, k): ClipStepRow => ({
    name: `${c.name}${c.step.shareNormPass === undefined && compiled[k].normShare ? ` (${shareText(compiled[k].normShare!)})` : ''}`,
    ms: ms[k],
    vsSgd: ms[k] / ms[0],
    peak: trainers[k].deviceBytes,
    normPeak: normPassPeak(compiled[k]),
    dispatches: compiled[k].program.dispatches.length,
  }));
  for (const t of trainers) t.destroy();
  acq.device.destroy();
  return { adapter: `${acq.description}; kernel target ${target}`, rows };
}

const shareText = (s: { shared: number; of: number }) => `shares ${s.shared} of ${s.of} gradients`;

const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

export function formatClipStepTable(preset: string, b: { adapter: string; rows: readonly ClipStepRow[] }, rounds: number): string {
  const lines = [
    `gpt ${preset}, ${b.adapter}; median of ${rounds} interleaved rounds`,
    '',
    '| step | ms/step | vs plain SGD | peak (device bytes) | norm pass live peak | dispatches/step |',
    '|---|---:|---:|---:|---:|---:|',
    ...b.rows.map((r) => `| ${r.name} | ${r.ms.toFixed(1)} | ${r.vsSgd.toFixed(2)}x | ${mib(r.peak)} | ${r.normPeak === undefined ? '' : mib(r.normPeak)} | ${r.dispatches} |`),
  ];
  return lines.join('\n');
}

// Run alone (not when bench/index.ts imports it).
if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href.endsWith('/bench/clip-step.ts')) {
  const args = process.argv.slice(2);
  const blocks = args.includes('--checkpoint') && args[args.indexOf('--checkpoint') + 1] === 'blocks';
  const rest = args.filter((a, i) => a !== '--checkpoint' && args[i - 1] !== '--checkpoint');
  const rounds = Number(rest[0] ?? 8);
  const presets = rest.length > 1 ? rest.slice(1) : ['small', 'tiny'];
  const extra: Partial<Step> = blocks ? { checkpoint: { kind: 'blocks' } } : {};
  for (const preset of presets) console.log(`${formatClipStepTable(`${preset}${blocks ? ', checkpoint blocks' : ''}`, await benchClipStep(preset, rounds, extra), rounds)}\n`);
  process.exit(0);
}
