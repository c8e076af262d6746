// What `lomoc run` prints: the header before the steps, the summary after them, or one JSON object.
import type { Config } from '../compiler/dsl/model.ts';
import { fmtBytes } from '../contract/units.ts';
import type { byShader } from '../runtime/webgpu/timing.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import type { RunRequest } from './run-request.ts';

export interface RunResult {
  readonly model: string;
  readonly preset: string;
  readonly config: Config;
  readonly adapter: string;
  readonly optimizer: OptimizerName;
  readonly checkpoint: string;
  readonly losses: readonly number[];
  readonly stepMs: readonly number[];
  /** Mean over all steps (the warm-up run before step 1 is not counted). */
  readonly msPerStep: number;
  readonly tokensPerStep: number;
  readonly tokensPerSecond: number;
  /** Bytes on the device: arenas plus uniforms and the loss readback (null on the cpu). */
  readonly deviceBytes: number | null;
  readonly arenaBytes: number | null;
  /** The peak of the memory plan the step runs in (on webgpu: planned with kernel fusion). */
  readonly planBytes: number;
  readonly dispatches: number | null;
  readonly shaders: number | null;
  readonly setupMs: number;
  readonly profile?: ReturnType<typeof byShader>;
  readonly profileSource?: string;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function runJson(r: RunResult) {
  return {
    adapter: r.adapter,
    model: r.model,
    preset: r.preset,
    config: r.config,
    optimizer: r.optimizer,
    checkpoint: r.checkpoint,
    losses: r.losses,
    msPerStep: round(r.msPerStep, 3),
    tokensPerSecond: round(r.tokensPerSecond, 1),
    deviceBytes: r.deviceBytes,
    planBytes: r.planBytes,
    arenaBytes: r.arenaBytes,
    dispatches: r.dispatches,
    shaders: r.shaders,
    setupMs: round(r.setupMs, 1),
    stepMs: r.stepMs.map((x) => round(x, 3)),
    ...(r.profile ? { profile: r.profile.map((p) => ({ ...p, ms: round(p.ms, 4) })), profileSource: r.profileSource } : {}),
  };
}

const fmtCount = (n: number) => Math.round(n).toLocaleString('en-US');

export function formatHeader(r: Pick<RunResult, 'adapter' | 'model' | 'preset' | 'config'>, req: RunRequest): string {
  const config = Object.entries(r.config).map(([k, v]) => `${k}=${v}`).join(' ');
  const opts = [req.step.optimizer, `lr ${req.lr}`, req.weightDecay ? `weight decay ${req.weightDecay}` : '',
    req.step.clipNorm ? `clip-norm ${req.step.clipNorm}` : '', req.step.clipValue ? `clip-value ${req.step.clipValue}` : '', req.step.dtype && req.step.dtype !== 'f32' ? `${req.step.dtype} storage` : ''].filter((x) => x);
  return [`adapter     ${r.adapter}`, `model       ${r.model}, preset ${r.preset} (${config})`, `step        ${opts.join(', ')}`, ''].join('\n');
}

export function formatSummary(r: RunResult): string {
  const lines: string[] = [];
  lines.push(`checkpoint  ${r.checkpoint}`);
  if (r.deviceBytes !== null)
    lines.push(`device      ${fmtBytes(r.deviceBytes)} allocated: ${fmtBytes(r.arenaBytes!)} of arenas (the plan's peak, ${fmtCount(r.planBytes)} B) + ${fmtBytes(r.deviceBytes - r.arenaBytes!)} uniforms and readback`);
  else lines.push(`plan        ${fmtBytes(r.planBytes)} peak (not allocated: the reference executor keeps every value)`);
  if (r.dispatches !== null) lines.push(`kernels     ${r.dispatches} dispatches per step, ${r.shaders} shaders; setup ${(r.setupMs / 1000).toFixed(1)} s (compile and warm-up run)`);
  lines.push(`speed       ${r.msPerStep.toFixed(2)} ms/step, ${fmtCount(r.tokensPerSecond)} tokens/s (${r.tokensPerStep} tokens per step, mean of ${r.stepMs.length} steps)`);
  if (r.profile) {
    lines.push('', `slowest shaders (${r.profileSource}):`, '      ms  calls  shader (first use)');
    for (const p of r.profile.slice(0, 12)) lines.push(`${p.ms.toFixed(3).padStart(8)}  ${String(p.count).padStart(5)}  ${p.shader} (${p.label})`);
  }
  return lines.join('\n');
}
