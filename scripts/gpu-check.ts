// The prepared check for a machine with a real GPU (run where one is lent; CI has none), in one
// command of about 5 minutes (scripts/gpu-check.sh): the adapter; the matmul sweep; every model's
// tiny step against the reference executor for 3 steps under each optimizer (and in f16, packed
// where the adapter lacks shader-f16); the step bench of gpt `small` (LOMO, SGD, AdamW, and LOMO
// on the other kernel target); the dispatches per step and which kernels they are; GPT-2-shaped
// steps; the largest GPT of a ladder whose plan fits the adapter's memory; and a LLaMA-7B-shaped
// LOMO step (packed f16, checkpoint blocks,runs=6,chunks=16, random init) whose allocated bytes
// are checked against the plan. All with the adapter's kernel target (targetForAdapter).
// The memory budget is GPU_CHECK_MEMORY (bytes; gpu-check.sh sets it from nvidia-smi); where it
// is unknown or too small, those runs are skipped with the reason. GPU_CHECK_SMALL=1 shrinks every
// shape (scripts/gpu-check-sizes.ts) so the whole script runs on lavapipe: test/gpu-check.test.ts.
// Each section that fails records its error and the rest still run; the exit code is 1 then.
// Bundled with esbuild so it needs only node and the `webgpu` package where it runs:
//   npx esbuild scripts/gpu-check.ts --bundle --platform=node --format=esm --external:webgpu --outfile=.gpu-kit/check.mjs
// Usage: node check.mjs [OUT_DIR]   (else $OUT; the report is OUT_DIR/gpu-check.json)
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { benchMatmul, formatMatmulBench } from '../bench/matmul.ts';
import { benchStep, formatStepTable } from '../bench/step.ts';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { halfForAdapter, kernelTargets, targetForAdapter, type KernelTarget, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import { fmtBytes } from '../contract/units.ts';
import gpt from '../models/gpt.ts';
import llama from '../models/llama.ts';
import mlp from '../models/mlp.ts';
import { describeAdapter } from '../runtime/webgpu/device.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { runBoth, stepMismatches } from '../test/gpu/step-compare.ts';
import { checkSizes, type Shape } from './gpu-check-sizes.ts';
import { compileTimed, timedRun } from './gpu-check-runs.ts';

const out = process.argv[2] ?? process.env.OUT;
const sizes = checkSizes();
const report: Record<string, unknown> = { small: sizes.small };
const log = (s: string) => console.log(s);
const fmtLosses = (xs: readonly number[], digits = 5) => xs.map((x) => x.toFixed(digits)).join(' ');

/** Runs one section into report[name]; a failure is recorded there and the run goes on. */
async function section(name: string, f: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  try {
    report[name] = await f();
  } catch (e) {
    report[name] = { error: String((e as Error)?.stack ?? e) };
    log(`${name}: FAILED ${String(e).slice(0, 400)}`);
    process.exitCode = 1;
  }
  log(`-- ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** The ops behind a program's dispatches, most first (a label is `op+op @ file:line:col`). */
function dispatchKinds(labels: readonly string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l.split(' @ ')[0], (counts.get(l.split(' @ ')[0]) ?? 0) + 1);
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
}

async function main(): Promise<void> {
  const probe = await probeAdapter();
  const targetName: TargetName = probe ? targetForAdapter(probe.adapter.info) : 'cpu';
  const target = kernelTargets[targetName];
  // f16 steps store halves natively where the adapter offers shader-f16, else packed in u32 words.
  const half: KernelTarget = { ...target, half: probe ? halfForAdapter(probe.adapter) : 'packed' };
  const packed: KernelTarget = { ...target, half: 'packed' };
  const memory = Number(process.env.GPU_CHECK_MEMORY) || (sizes.small ? 64 * 2 ** 20 : undefined);
  report.target = targetName;
  report.adapter = probe ? describeAdapter(probe.backend, probe.adapter) : null;
  report.memoryBytes = memory ?? null;
  log(`kernel target ${targetName}${probe ? ` (${report.adapter})` : ' (no adapter)'}; f16 storage ${half.half}; memory ${memory === undefined ? 'unknown' : fmtBytes(memory)}${sizes.small ? '; small switch: every shape shrunk' : ''}`);

  if (!process.env.GPU_CHECK_SKIP_MATMUL)
    await section('matmul', async () => {
      const m = await benchMatmul(sizes.matmul, sizes.matmulRounds, { tfjs: false, winnerOnly: sizes.matmulWinnerOnly });
      log(formatMatmulBench(m));
      return m;
    });

  await section('checks', async () => {
    const checks: Record<string, unknown>[] = [];
    for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as [string, ModelDef][])
      for (const optimizer of ['lomo', 'sgd', 'adamw'] as OptimizerName[])
        for (const checkpoint of (name === 'llama' ? ['none', 'blocks'] : ['none']) as ('none' | 'blocks')[]) {
          const c = compileProgram(def, { preset: 'tiny', optimizer, checkpoint: { kind: checkpoint }, clipNorm: optimizer === 'lomo' ? 1 : undefined, target });
          const acq = await acquireDevice(c.program);
          try {
            const r = await runBoth(acq, c, { vocab: idRanges(c.step) });
            const mismatches = stepMismatches(r);
            checks.push({ model: name, optimizer, checkpoint, losses: r.gpu.losses, ref: r.ref.losses, mismatches });
            log(`${name} tiny ${optimizer}${optimizer === 'lomo' ? ' clip-norm 1' : ''} checkpoint ${checkpoint}: gpu ${fmtLosses(r.gpu.losses)} | ref ${fmtLosses(r.ref.losses)} | ${mismatches.length ? 'MISMATCH ' + mismatches.slice(0, 3).join('; ') : 'ok'}`);
          } finally {
            acq.device.destroy();
          }
        }
    return checks;
  });

  // f16 storage (the paper's setting) against the reference's f16 emulation, with the tolerances of test/gpu/step-f16.test.ts.
  await section('f16', async () => {
    const f16: Record<string, unknown>[] = [];
    for (const [name, def] of [['gpt', gpt], ['llama', llama]] as [string, ModelDef][])
      for (const optimizer of ['lomo', 'adamw'] as OptimizerName[]) {
        const c = compileProgram(def, { preset: 'tiny', optimizer, dtype: 'f16', target: half });
        const acq = await acquireDevice(c.program);
        try {
          const [lr, steps] = optimizer === 'adamw' ? [0.01, 1] : [0.1, 3];
          const r = await runBoth(acq, c, { vocab: idRanges(c.step), seed: 7, lr, steps });
          const noise = optimizer === 'adamw' ? { noiseFloor: 3e-3, noiseRel: 2 ** -8 } : {};
          const mismatches = stepMismatches(r, { rel: 8e-3, lossRel: 2e-3, lr, steps, ...noise });
          f16.push({ model: name, optimizer, half: half.half, losses: r.gpu.losses, ref: r.ref.losses, mismatches });
          log(`${name} tiny ${optimizer} f16 (${half.half}): gpu ${fmtLosses(r.gpu.losses, 4)} | ref ${fmtLosses(r.ref.losses, 4)} | ${mismatches.length ? 'MISMATCH ' + mismatches.slice(0, 3).join('; ') : 'ok'}`);
        } finally {
          acq.device.destroy();
        }
      }
    return f16;
  });

  await section('step', async () => {
    const step = await benchStep(sizes.stepSteps, ['lomo', 'sgd', 'adamw'], { tfjs: false, torch: false }, ['lomo'], sizes.step);
    log(formatStepTable(step));
    return step;
  });

  // Compiled only: how many dispatches a step records, and which kernels they are.
  await section('dispatches', async () => {
    const rows: Record<string, unknown>[] = [];
    const cases: [string, Shape, OptimizerName][] = [
      ...(['lomo', 'sgd', 'adamw'] as OptimizerName[]).map((o): [string, Shape, OptimizerName] => [`gpt ${sizes.step.preset}`, sizes.step, o]),
      ...(['lomo', 'adamw'] as OptimizerName[]).map((o): [string, Shape, OptimizerName] => ['gpt tiny', { preset: 'tiny', sets: [] }, o]),
      [sizes.gpt2[0][0], sizes.gpt2[0][1], 'lomo'],
    ];
    for (const [label, shape, optimizer] of cases) {
      const c = compileProgram(gpt, { preset: shape.preset, sets: shape.sets, optimizer, target });
      const labels = c.program.dispatches.map((d) => d.label);
      rows.push({ model: label, optimizer, dispatches: labels.length, kinds: dispatchKinds(labels) });
      log(`${label} ${optimizer}: ${labels.length} dispatches per step`);
    }
    return rows;
  });

  await section('gpt2', async () => {
    const rows: unknown[] = [];
    for (const [label, shape, f16] of sizes.gpt2) {
      const r = await timedRun(label, compileTimed(gpt, { preset: shape.preset, sets: shape.sets, optimizer: 'lomo', ...(f16 ? { dtype: 'f16' } : {}), target: f16 ? half : target }), sizes.timedSteps + 1);
      rows.push(r);
      log(`${label}: ${r.msPerStep.toFixed(1)} ms/step, ${r.tokensPerSecond.toFixed(0)} tokens/s, ${fmtBytes(r.deviceBytes)} on device (plan ${fmtBytes(r.planPeak)}), ${r.dispatches} dispatches, losses ${fmtLosses(r.losses, 3)}`);
    }
    return rows;
  });

  // The largest GPT of the ladder whose plan fits 85% of the memory (the rest: Dawn, the driver, staging).
  await section('largest', async () => {
    if (memory === undefined) return { skipped: "the adapter's memory is unknown: set GPU_CHECK_MEMORY (bytes); gpu-check.sh sets it from nvidia-smi" };
    const tried: { label: string; planPeak: number }[] = [];
    for (const [label, shape] of sizes.ladder) {
      const compiled = compileTimed(gpt, { preset: shape.preset, sets: shape.sets, optimizer: 'lomo', dtype: 'f16', target: half });
      tried.push({ label, planPeak: compiled.c.plan.peak });
      if (compiled.c.plan.peak > 0.85 * memory) continue;
      const r = await timedRun(label, compiled, sizes.timedSteps + 1);
      log(`largest that fits ${fmtBytes(memory)}: ${label}: ${r.msPerStep.toFixed(1)} ms/step, ${r.tokensPerSecond.toFixed(0)} tokens/s, ${fmtBytes(r.arenaBytes)} allocated = plan ${r.bytesMatchPlan ? 'yes' : 'NO'}, losses ${fmtLosses(r.losses, 3)}`);
      return { tried, run: r };
    }
    return { tried, skipped: `no model of the ladder fits 85% of ${fmtBytes(memory)}` };
  });

  await section('llama7b', async () => {
    const options = { preset: sizes.llama.preset, sets: sizes.llama.sets, optimizer: 'lomo' as const, dtype: 'f16' as const, checkpoint: sizes.llamaPolicy, target: packed };
    const compiled = compileTimed(llama, options);
    const { c, compileMs } = compiled;
    const planned = { planPeak: c.plan.peak, dispatches: c.program.dispatches.length, checkpoint: c.checkpointDetail, compileMs };
    log(`llama 7B-shaped${sizes.small ? ' (small switch)' : ''} LOMO, packed f16, checkpoint ${c.checkpointDetail}: plan ${fmtBytes(c.plan.peak)}, ${c.program.dispatches.length} dispatches`);
    if (memory === undefined) return { ...planned, skipped: "the adapter's memory is unknown: set GPU_CHECK_MEMORY (bytes); gpu-check.sh sets it from nvidia-smi" };
    if (c.plan.peak > 0.9 * memory) return { ...planned, skipped: `the plan needs ${fmtBytes(c.plan.peak)}, more than 90% of the adapter's ${fmtBytes(memory)}` };
    const r = await timedRun('llama 7B-shaped LOMO', compiled, sizes.llamaSteps, false);
    log(`llama 7B-shaped: ${r.stepMs.map((x) => x.toFixed(0)).join(', ')} ms per step, ${fmtBytes(r.arenaBytes)} allocated, plan ${fmtBytes(r.planPeak)}: ${r.bytesMatchPlan ? 'equal' : 'DIFFERENT'}; losses ${fmtLosses(r.losses, 3)}`);
    if (!r.bytesMatchPlan) process.exitCode = 1;
    if (!r.finite) process.exitCode = 1;
    return { ...planned, run: r };
  });
}

main()
  .catch((e) => {
    report.error = String(e?.stack ?? e);
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    if (out) writeFileSync(path.join(out, 'gpu-check.json'), JSON.stringify(report, null, 1));
    setTimeout(() => process.exit(process.exitCode ?? 0), 100);
  });
