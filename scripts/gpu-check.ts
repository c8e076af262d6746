// A short check for a machine with a real GPU (run where one is lent; CI has none): the adapter,
// matmul GFLOP/s, every model's tiny step against the reference executor for 3 steps under each
// optimizer, and the training-step throughput of gpt `small` (and a GPT-2-sized step), all with the
// adapter's kernel target (targetForAdapter); gpt small under LOMO is also timed with the other target.
// Bundled with esbuild so it needs only node and the `webgpu` package where it runs:
//   npx esbuild scripts/gpu-check.ts --bundle --platform=node --format=esm --external:webgpu --outfile=.gpu-kit/check.mjs
// Usage: node check.mjs [OUT_DIR]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { benchMatmul, formatMatmulBench } from '../bench/matmul.ts';
import { benchStep, formatStepTable } from '../bench/step.ts';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { targetForAdapter, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import gpt from '../models/gpt.ts';
import llama from '../models/llama.ts';
import mlp from '../models/mlp.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { describeAdapter } from '../runtime/webgpu/device.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { createTrainer } from '../runtime/webgpu/trainer.ts';
import { runBoth, stepMismatches } from '../test/gpu/step-compare.ts';

const out = process.argv[2];
const report: Record<string, unknown> = {};
const log = (s: string) => console.log(s);

async function main(): Promise<void> {
  const probe = await probeAdapter();
  const target: TargetName = probe ? targetForAdapter(probe.adapter.info) : 'cpu';
  report.target = target;
  log(`kernel target ${target}${probe ? ` (${describeAdapter(probe.backend, probe.adapter)})` : ' (no adapter)'}`);
  if (!process.env.GPU_CHECK_SKIP_MATMUL) {
    const matmul = await benchMatmul([256, 512, 1024, 2048], 2, { tfjs: false });
    report.matmul = matmul;
    log(formatMatmulBench(matmul));
  }

  const checks: { model: string; optimizer: string; checkpoint: string; losses: number[]; ref: number[]; mismatches: string[] }[] = [];
  for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as [string, ModelDef][]) {
    for (const optimizer of ['lomo', 'sgd', 'adamw'] as OptimizerName[]) {
      for (const checkpoint of (name === 'llama' ? ['none', 'blocks'] : ['none']) as ('none' | 'blocks')[]) {
        const c = compileProgram(def, { preset: 'tiny', optimizer, checkpoint: { kind: checkpoint }, clipNorm: optimizer === 'lomo' ? 1 : undefined, target });
        const acq = await acquireDevice(c.program);
        const r = await runBoth(acq, c, { vocab: idRanges(c.step) });
        const mismatches = stepMismatches(r);
        checks.push({ model: name, optimizer, checkpoint, losses: r.gpu.losses, ref: r.ref.losses, mismatches });
        log(`${name} tiny ${optimizer}${optimizer === 'lomo' ? ' clip-norm 1' : ''} checkpoint ${checkpoint}: gpu ${r.gpu.losses.map((x) => x.toFixed(5)).join(' ')} | ref ${r.ref.losses.map((x) => x.toFixed(5)).join(' ')} | ${mismatches.length ? 'MISMATCH ' + mismatches.slice(0, 3).join('; ') : 'ok'}`);
        acq.device.destroy();
      }
    }
  }
  report.checks = checks;

  const step = await benchStep(8, ['lomo', 'sgd', 'adamw'], { tfjs: false, torch: false }, ['lomo']);
  report.step = step;
  log(formatStepTable(step));

  // f16 storage (the paper's setting) against the reference's f16 emulation, with the tolerances
  // of test/gpu/step-f16.test.ts.
  const f16: { model: string; optimizer: string; losses: number[]; ref: number[]; mismatches: string[] }[] = [];
  const hasF16 = probe?.adapter.features.has('shader-f16') ?? false;
  if (!hasF16) log('f16: this adapter lacks the shader-f16 feature; f16 checks and runs skipped');
  for (const [name, def] of hasF16 ? ([['gpt', gpt], ['llama', llama]] as [string, ModelDef][]) : []) {
    for (const optimizer of ['lomo', 'adamw'] as OptimizerName[]) {
      const c = compileProgram(def, { preset: 'tiny', optimizer, dtype: 'f16', target });
      const acq = await acquireDevice(c.program);
      const [lr, steps] = optimizer === 'adamw' ? [0.01, 1] : [0.1, 3];
      const r = await runBoth(acq, c, { vocab: idRanges(c.step), seed: 7, lr, steps });
      const noise = optimizer === 'adamw' ? { noiseFloor: 3e-3, noiseRel: 2 ** -8 } : {};
      const mismatches = stepMismatches(r, { rel: 8e-3, lossRel: 2e-3, lr, steps, ...noise });
      f16.push({ model: name, optimizer, losses: r.gpu.losses, ref: r.ref.losses, mismatches });
      log(`${name} tiny ${optimizer} f16: gpu ${r.gpu.losses.map((x) => x.toFixed(4)).join(' ')} | ref ${r.ref.losses.map((x) => x.toFixed(4)).join(' ')} | ${mismatches.length ? 'MISMATCH ' + mismatches.slice(0, 3).join('; ') : 'ok'}`);
      acq.device.destroy();
    }
  }
  report.f16 = f16;

  // Larger steps, timed: gpt small in f16; a GPT-2-shaped step (width 768, 12 layers, seq 256,
  // batch 8) under LOMO and SGD with vocabulary 8192, so the f32 logits fit one 128 MiB storage
  // binding (split bindings are not implemented yet), and in f16; and GPT-2 itself (vocabulary
  // 50257) in f16 at batch 4, whose logits then fit.
  const big: Record<string, unknown>[] = [];
  const runs: [string, Parameters<typeof compileProgram>[1], number][] = [
    ['gpt small, f16, lomo', { preset: 'small', optimizer: 'lomo', dtype: 'f16', target }, 8 * 128],
    ...(['lomo', 'sgd'] as OptimizerName[]).map((optimizer): [string, Parameters<typeof compileProgram>[1], number] =>
      [`gpt2-shaped, vocab 8192, seq 256, batch 8, ${optimizer}`, { preset: 'gpt2', optimizer, seq: 256, batch: 8, sets: ['vocab=8192'], target }, 8 * 256]),
    ['gpt2-shaped, vocab 8192, seq 256, batch 8, f16, lomo', { preset: 'gpt2', optimizer: 'lomo', seq: 256, batch: 8, sets: ['vocab=8192'], dtype: 'f16', target }, 8 * 256],
    ['gpt2 (vocab 50257), seq 256, batch 4, f16, lomo', { preset: 'gpt2', optimizer: 'lomo', seq: 256, batch: 4, dtype: 'f16', target }, 4 * 256],
  ];
  for (const [label, options, tokens] of runs) {
    const optimizer = options.optimizer;
    if (options.dtype === 'f16' && !hasF16) continue;
    try {
      const t0 = performance.now();
      const c = compileProgram(gpt, options);
      const compileMs = performance.now() - t0;
      const acq = await acquireDevice(c.program);
      const t = await createTrainer({ device: acq, program: c.program, seed: 1 });
      const data = c.program.inputs.filter((s) => !['lr', 'weightDecay', 'step'].includes(s.name));
      const losses: number[] = [];
      for (let i = 1; i <= 6; i++) losses.push((await t.step(randomBatch(data, idRanges(c.step), i), { lr: 1e-3, weightDecay: 0 }))!);
      const ms = [...t.stepMs].slice(1).sort((a, b) => a - b)[Math.floor((t.stepMs.length - 1) / 2)];
      const row = { label, optimizer, target, compileMs, setupMs: t.setupMs, msPerStep: ms, tokensPerSecond: (tokens * 1000) / ms, deviceBytes: t.deviceBytes, planBytes: t.planBytes, dispatches: c.program.dispatches.length, losses };
      big.push(row);
      log(`${label}: ${ms.toFixed(1)} ms/step, ${row.tokensPerSecond.toFixed(0)} tokens/s, ${(t.deviceBytes / 2 ** 20).toFixed(0)} MiB on device, ${row.dispatches} dispatches, losses ${losses.map((x) => x.toFixed(3)).join(' ')}`);
      t.destroy();
      acq.device.destroy();
    } catch (e) {
      big.push({ label, optimizer, error: String(e) });
      log(`${label}: ${String(e).slice(0, 400)}`);
    }
  }
  report.gpt2 = big;
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
