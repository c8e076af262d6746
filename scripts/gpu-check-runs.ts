// The timed runs of scripts/gpu-check.ts: a compiled step trained for a few steps on the device,
// its bytes on the device checked against the plan, and the params of a step too large for the
// host's f64 init (LLaMA-7B: 54 GB of doubles) drawn from a tiled block of normals instead.
import { compileProgram, idRanges, type CompiledProgram } from '../compiler/compile-program.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import { f16bits } from '../contract/f16.ts';
import type { StepProgram } from '../contract/program.ts';
import { deriveSeed, normals } from '../contract/random.ts';
import { numel } from '../compiler/ir/shape.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import type { Acquired } from '../runtime/webgpu/device.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';

export interface StepRun {
  readonly label: string;
  readonly compileMs: number;
  readonly setupMs: number;
  readonly initMs?: number;
  /** Median of the steps after the first. */
  readonly msPerStep: number;
  readonly stepMs: readonly number[];
  readonly tokensPerSecond: number;
  readonly dispatches: number;
  /** What the plan says the device must hold, what the trainer allocated, and whether they agree. */
  readonly planPeak: number;
  readonly arenaBytes: number;
  readonly deviceBytes: number;
  readonly bytesMatchPlan: boolean;
  readonly losses: readonly number[];
  readonly finite: boolean;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Each param drawn from a block of 2^20 normals, tiled, scaled by its init's std: cheap at any size. */
async function writeRandomParams(t: Trainer, program: StepProgram, acq: Acquired, seed: number): Promise<void> {
  const block = 1 << 20;
  const z = normals(deriveSeed(seed, 'gpu-check'));
  const base = Float64Array.from({ length: block }, () => z());
  const cache = new Map<string, Int32Array | Float32Array>();
  const tile = (p: StepProgram['params'][number], std: number, ones: boolean): Int32Array | Float32Array => {
    const key = `${p.dtype}:${ones ? 'ones' : std}`;
    let b = cache.get(key);
    if (!b) {
      const values = ones ? new Float64Array(block).fill(1) : base.map((x) => x * std);
      if (p.dtype === 'f32') b = Float32Array.from(values);
      else {
        const words = new Int32Array(block / 2);
        for (let i = 0; i < block; i += 2) words[i / 2] = f16bits(values[i]) | (f16bits(values[i + 1]) << 16);
        b = words;
      }
      cache.set(key, b);
    }
    return b;
  };
  let pending = 0;
  for (const p of program.params) {
    if (p.init.kind === 'zeros') continue;
    if (p.dtype !== 'f32' && p.dtype !== 'f16') throw new Error(`gpu-check: random init of a ${p.dtype} param (${p.name}) is not written`);
    const n = numel(p.shape);
    const std = p.init.kind === 'normal' ? p.init.std : p.init.kind === 'fanIn' ? p.init.gain / Math.sqrt(numel(p.shape.slice(0, -1))) : 1;
    const b = tile(p, std, p.init.kind === 'ones');
    const words = p.dtype === 'f32' ? n : Math.ceil(n / 2);
    const data = b instanceof Float32Array ? new Float32Array(words) : new Int32Array(words);
    for (let at = 0; at < words; at += b.length) data.set(b.subarray(0, Math.min(b.length, words - at)), at);
    // Raw words: an f16 pair goes up as one i32, so no float conversion touches its bits.
    t.executor.write({ ...p, dtype: b instanceof Float32Array ? 'f32' : 'i32' }, data);
    pending += words * 4;
    if (pending > 2 ** 30) {
      await acq.device.queue.onSubmittedWorkDone(); // let Dawn drop its staging copies
      pending = 0;
    }
  }
  await acq.device.queue.onSubmittedWorkDone();
}

/** compileProgram, timed. */
export function compileTimed(def: ModelDef, options: Parameters<typeof compileProgram>[1]): { c: CompiledProgram; compileMs: number } {
  const t0 = performance.now();
  const c = compileProgram(def, options);
  return { c, compileMs: performance.now() - t0 };
}

/**
 * Trains compiled step `c` for `steps` steps on random batches and reports the timing and the
 * bytes on the device against the plan. `hostInit` false draws the params as above.
 */
export async function timedRun(label: string, { c, compileMs }: { c: CompiledProgram; compileMs: number }, steps: number, hostInit = true): Promise<StepRun> {
  const acq = await acquireDevice(c.program);
  try {
    const t = await createTrainer({ device: acq, program: c.program, seed: 1, initParams: hostInit });
    try {
      const i0 = performance.now();
      if (!hostInit) await writeRandomParams(t, c.program, acq, 1);
      const initMs = hostInit ? undefined : performance.now() - i0;
      const data = dataInputs(c.program);
      const losses: number[] = [];
      for (let i = 1; i <= steps; i++) losses.push((await t.step(randomBatch(data, idRanges(c.step), i), { lr: 1e-3, weightDecay: 0 }))!);
      const ms = median(t.stepMs.length > 1 ? t.stepMs.slice(1) : t.stepMs);
      const tokens = Number(c.config.batch) * Number(c.config.seq);
      return {
        label, compileMs, setupMs: t.setupMs, ...(initMs === undefined ? {} : { initMs }), msPerStep: ms, stepMs: [...t.stepMs],
        tokensPerSecond: (tokens * 1000) / ms, dispatches: c.program.dispatches.length,
        planPeak: c.plan.peak, arenaBytes: t.arenaBytes, deviceBytes: t.deviceBytes, bytesMatchPlan: t.arenaBytes === c.plan.peak && t.planBytes === c.plan.peak,
        losses, finite: losses.every(Number.isFinite),
      };
    } finally {
      t.destroy();
    }
  } finally {
    acq.device.destroy();
  }
}
