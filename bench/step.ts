// Training-step throughput: models/gpt.ts preset `small` (vocab 256, width 128, 4 layers, 4 heads,
// seq 128, batch 8) compiled by lomoc under LOMO, SGD and AdamW, on the same WebGPU adapter. Each
// trainer warms up first (pipelines compile at first use); then rounds interleave the optimizers,
// one step each, so that load from other processes falls on all of them alike; each row reports
// the median step. `node bin/run-ts.js bench/step.ts [steps]` runs it alone.
//
// The peers, measured in the same run: the same GPT in TensorFlow.js on its WebGPU backend, on
// the same adapter (bench/peer-tfjs-gpt.ts; its own Dawn device, stepped in the same rounds with
// the same batches after one warm-up step), and in PyTorch on the CPU
// (scripts/bench-peers/gpt_torch.py, run once the WebGPU devices are gone, with 1 thread and with
// one per core). The last column is lomoc LOMO's tokens/s over each row's. lomoc compiles for the
// adapter's kernel target (targetForAdapter: cpu on lavapipe, gpu on a real GPU); `otherTarget`
// also times those optimizers compiled for the other target, on the same device, in the same rounds.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { targetForAdapter, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';
import { loadTfjs } from './tfjs.ts';
import { createTfGptTrainer, type GptConfig, type TfGptTrainer } from './peer-tfjs-gpt.ts';

export interface StepRow {
  readonly name: string;
  readonly msPerStep: number;
  readonly tokensPerSecond: number;
  readonly deviceBytes?: number;
  readonly dispatches?: number;
  readonly setupMs?: number;
  readonly finalLoss: number;
  /** Why a peer has no numbers (then the others are NaN). */
  readonly missing?: string;
}

export interface StepPeers {
  readonly tfjs?: boolean;
  readonly torch?: boolean;
}

const missingRow = (name: string, missing: string): StepRow => ({ name, msPerStep: NaN, tokensPerSecond: NaN, finalLoss: NaN, missing });

/** A python3 that imports torch: $PYTHON, then python3 on PATH, then Debian's /usr/bin/python3. */
function pythonWithTorch(): string | undefined {
  for (const py of [process.env.PYTHON, 'python3', '/usr/bin/python3']) {
    if (!py) continue;
    try {
      execFileSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
      return py;
    } catch {
      // next
    }
  }
  return undefined;
}

function torchRows(cfg: GptConfig, steps: number): StepRow[] {
  const py = pythonWithTorch();
  if (!py) return [missingRow('PyTorch CPU', 'not installed: apt-get install python3-torch libopenblas0-pthread')];
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'scripts', 'bench-peers', 'gpt_torch.py');
  const threads = [...new Set([1, availableParallelism()])];
  return threads.map((n): StepRow => {
    const args = [script, '--steps', String(steps), '--warmup', '2', '--threads', String(n), '--lr', '0.01'];
    for (const [k, v] of Object.entries(cfg)) args.push(`--${k}`, String(v));
    try {
      const out = execFileSync(py, args, { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
      const r = JSON.parse(out.trim().split('\n').at(-1)!) as { torch: string; threads: number; msPerStep: number; tokensPerSecond: number; losses: number[] };
      return { name: `PyTorch CPU (torch ${r.torch}, ${r.threads} thread${r.threads > 1 ? 's' : ''})`, msPerStep: r.msPerStep, tokensPerSecond: r.tokensPerSecond, finalLoss: r.losses.at(-1)! };
    } catch (e) {
      return missingRow(`PyTorch CPU (${n} threads)`, `failed: ${(e as Error).message.split('\n')[0]}`);
    }
  });
}

export interface StepBench {
  readonly adapter: string;
  readonly tokensPerStep: number;
  readonly rows: readonly StepRow[];
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchStep(
  steps = 5,
  optimizers: readonly OptimizerName[] = ['lomo', 'sgd', 'adamw'],
  peers: StepPeers = { tfjs: true, torch: true },
  otherTarget: readonly OptimizerName[] = [],
  /** The gpt config (default preset small); scripts/gpu-check.ts shrinks it on lavapipe. */
  shape: { readonly preset?: string; readonly sets?: readonly string[] } = { preset: 'small' },
): Promise<StepBench> {
  const probe = await probeAdapter();
  const target: TargetName = probe ? targetForAdapter(probe.adapter.info) : 'cpu';
  const other: TargetName = target === 'cpu' ? 'gpu' : 'cpu';
  const variants = [...optimizers.map((optimizer) => ({ optimizer, target })), ...otherTarget.map((optimizer) => ({ optimizer, target: other }))];
  const compiled = variants.map(({ optimizer, target: t }) => ({
    optimizer,
    name: t === target ? `lomoc ${optimizer}` : `lomoc ${optimizer} (${t} kernel target)`,
    c: compileProgram(gpt, { preset: shape.preset ?? 'small', sets: shape.sets, optimizer, target: t }),
  }));
  const acq = await acquireDevice(compiled[0].c.program);
  const tokensPerStep = Number(compiled[0].c.config.batch) * Number(compiled[0].c.config.seq);
  const runs: { name: string; t: Trainer; dispatches: number; losses: number[] }[] = [];
  for (const { name, c } of compiled)
    runs.push({ name, t: await createTrainer({ device: acq, program: c.program, seed: 1 }), dispatches: c.program.dispatches.length, losses: [] });
  const data = dataInputs(compiled[0].c.program);
  const vocab = idRanges(compiled[0].c.step);
  const cfg = compiled[0].c.config as unknown as GptConfig;
  let tfjs: TfGptTrainer | undefined;
  let tfMissing = 'not run';
  const tfLosses: number[] = [];
  if (peers.tfjs) {
    try {
      tfjs = await createTfGptTrainer(cfg, 1);
    } catch (e) {
      tfMissing = `failed to start: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  for (let i = 1; i <= steps; i++) {
    const batch = randomBatch(data, vocab, i);
    for (const r of runs) r.losses.push((await r.t.step(batch, { lr: 0.01, weightDecay: 0 }))!);
    if (tfjs) tfLosses.push(await tfjs.step(batch.tokens as Int32Array, batch.targets as Int32Array, 0.01));
  }
  const rows = runs.map(({ name, t, dispatches, losses }): StepRow => {
    const ms = median(t.stepMs);
    return {
      name,
      msPerStep: ms,
      tokensPerSecond: (tokensPerStep * 1000) / ms,
      deviceBytes: t.deviceBytes,
      dispatches,
      setupMs: t.setupMs,
      finalLoss: losses.at(-1)!,
    };
  });
  if (peers.tfjs) {
    if (tfjs) {
      const ms = median(tfjs.stepMs);
      const { tf } = await loadTfjs();
      const mem = tf.memory() as { numBytesAllocatedInGPU?: number };
      rows.push({
        name: `TF.js WebGPU (${tfjs.version}${tfjs.adapter === acq.description ? ', same adapter' : `; ${tfjs.adapter}`})`,
        msPerStep: ms,
        tokensPerSecond: (tokensPerStep * 1000) / ms,
        deviceBytes: mem.numBytesAllocatedInGPU,
        setupMs: tfjs.setupMs,
        finalLoss: tfLosses.at(-1)!,
      });
      tfjs.destroy();
    } else rows.push(missingRow('TF.js WebGPU', tfMissing));
  }
  for (const r of runs) r.t.destroy();
  acq.device.destroy();
  if (peers.torch) rows.push(...torchRows(cfg, steps));
  return { adapter: `${acq.description}; kernel target ${target}`, tokensPerStep, rows };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

export function formatStepTable(b: StepBench): string {
  const lomo = b.rows.find((r) => r.name === 'lomoc lomo');
  const opt = <T,>(x: T | undefined, f: (x: T) => string) => (x === undefined ? '' : f(x));
  const lines = [
    '| step | ms/step | tokens/s | lomoc lomo vs this | final loss | device bytes | dispatches/step | setup s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...b.rows.map((r) =>
      r.missing
        ? `| ${r.name}: not measured (${r.missing}) | | | | | | | |`
        : `| ${r.name} | ${r.msPerStep.toFixed(1)} | ${Math.round(r.tokensPerSecond)} | ${lomo ? `${(lomo.tokensPerSecond / r.tokensPerSecond).toFixed(2)}x` : ''} | ${r.finalLoss.toFixed(4)} | ${opt(r.deviceBytes, mib)} | ${opt(r.dispatches, String)} | ${opt(r.setupMs, (ms) => (ms / 1000).toFixed(1))} |`),
  ];
  const notes =
    'TF.js device bytes: its buffer pool (tf.memory().numBytesAllocatedInGPU); its setup includes one warm-up step. ' +
    'PyTorch runs on the CPU after the WebGPU devices are closed (median of the same number of steps after 2 warm-up steps, its own random batches).';
  return `adapter: ${b.adapter}; ${b.tokensPerStep} tokens per step\n\n${lines.join('\n')}\n\n${notes}`;
}

// Run alone (not when bench/index.ts or a bundle imports it).
if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href.endsWith('/bench/step.ts')) {
  console.log(formatStepTable(await benchStep(Number(process.argv[2] ?? 5))));
  process.exit(0);
}
