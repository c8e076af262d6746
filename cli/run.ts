// `lomoc run <model.ts>`: compile the training step to WGSL, train it for N steps on random data
// on WebGPU (or on the reference executor with --device cpu), and print the adapter, the loss of
// each step, ms per step, tokens per second and the bytes allocated on the device.
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import type { Config } from '../compiler/dsl/model.ts';
import type { Graph } from '../compiler/ir/types.ts';
import { loadModel } from '../compiler/load-model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import { compileStep, type StepConfig } from '../compiler/pipeline.ts';
import { execute } from '../compiler/reference/execute.ts';
import type { HostTensor } from '../compiler/reference/tensor.ts';
import { NoAdapterError } from '../runtime/webgpu/device.ts';
import { DeviceLostError } from '../runtime/webgpu/guard.ts';
import { initialParams, randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { byShader, profileStep } from '../runtime/webgpu/timing.ts';
import { createTrainer, dataInputs, isHyperInput } from '../runtime/webgpu/trainer.ts';
import { optimizerSpec, optionChecks, parseCommandArgs, resolveTarget, stepConfigFrom, stepOptionSpecs, targetChoice, type CommandSpec, type OptionValue, type TargetChoice } from './args.ts';
import { fmtBytes } from './graph.ts';
import { printWarnings, type Io } from './report.ts';

export const runSpec: CommandSpec = {
  name: 'run',
  summary: 'Compile the training step to WebGPU and train it on random data, timing each step.',
  positionals: [{ name: 'model.ts', help: 'a model file whose default export is model(...)' }],
  options: {
    ...stepOptionSpecs,
    optimizer: optimizerSpec,
    lr: { type: 'string', value: 'X', help: 'learning rate (default 0.01)' },
    'weight-decay': { type: 'string', value: 'X', help: 'weight decay (default 0)' },
    steps: { type: 'string', value: 'N', help: 'training steps to run (required)' },
    seed: { type: 'string', value: 'N', help: 'seed of the param init and the random batches (default 0)' },
    device: { type: 'string', value: 'NAME', help: 'webgpu (default) or cpu: the reference executor, for comparison' },
    profile: { type: 'boolean', help: 'after training, time every dispatch once and print the slowest shaders' },
    json: { type: 'boolean', help: 'print one JSON object on stdout instead of the table' },
  },
  examples: [
    'lomoc run models/gpt.ts --preset small --optimizer lomo --steps 10',
    'lomoc run models/llama.ts --preset tiny --optimizer adamw --checkpoint blocks --clip-norm 1 --steps 5 --json',
    'lomoc run models/mlp.ts --steps 20 --lr 0.1 --device cpu',
  ],
};

export interface RunRequest {
  readonly file: string;
  readonly step: StepConfig;
  /** Kernel shapes: auto picks from the adapter acquired (targetForAdapter). */
  readonly target: TargetChoice;
  readonly lr: number;
  readonly weightDecay: number;
  readonly steps: number;
  readonly seed: number;
  readonly device: 'webgpu' | 'cpu';
  readonly profile: boolean;
  readonly json: boolean;
}

const { integer, number, oneOf } = optionChecks('run');

/** Checks every option before anything is compiled. */
export function runRequest(positionals: readonly string[], values: Readonly<Record<string, OptionValue>>): RunRequest {
  const str = (k: string) => values[k] as string | undefined;
  if (str('steps') === undefined) throw new LomocError("lomoc run: option '--steps N' is required");
  return {
    file: positionals[0],
    step: stepConfigFrom('run', values),
    target: targetChoice('run', str('target')),
    lr: str('lr') === undefined ? 0.01 : number(str('lr')!, 'lr'),
    weightDecay: str('weight-decay') === undefined ? 0 : number(str('weight-decay')!, 'weight-decay', true),
    steps: integer(str('steps')!, 'steps', 1),
    seed: str('seed') === undefined ? 0 : integer(str('seed')!, 'seed', 0),
    device: oneOf(['webgpu', 'cpu'] as const, str('device') ?? 'webgpu', 'device'),
    profile: values.profile === true,
    json: values.json === true,
  };
}

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

/** Tokens in one step: batch x seq, or batch alone for models without a sequence. */
function tokensPerStep(config: Config, step: Graph): number {
  const first = step.inputs.find((d) => !isHyperInput(d.name));
  const batch = typeof config.batch === 'number' ? config.batch : (first ? step.values[first.value].shape[0] : 1) ?? 1;
  return batch * (typeof config.seq === 'number' ? config.seq : 1);
}

/** The id range of each i32 input: from the ops that read it, else the config's vocab or classes. */
function vocabOf(step: Graph, config: Config): Record<string, number> {
  const ranges = idRanges(step);
  const fallback = Number(config.vocab ?? config.classes);
  for (const d of step.inputs) {
    if (step.values[d.value].dtype !== 'i32' || d.name in ranges) continue;
    if (!(fallback >= 1)) throw new LomocError(`lomoc run: cannot tell the id range of the i32 input '${d.name}' (no embedding or cross-entropy reads it, and the config has no vocab or classes)`);
    ranges[d.name] = fallback;
  }
  return ranges;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export interface RunHooks {
  /** The device is ready and training starts. */
  readonly onReady?: (r: Pick<RunResult, 'adapter' | 'model' | 'preset' | 'config'>) => void;
  readonly onStep?: (i: number, loss: number | undefined, ms: number) => void;
}

async function onWebGpu(req: RunRequest, hooks: RunHooks) {
  const def = await loadModel(req.file);
  // The adapter first: the kernel shapes depend on it.
  const { target, how } = resolveTarget(req.target, req.target === 'auto' ? (await probeAdapter())?.adapter : undefined);
  const c = compileProgram(def, { ...req.step, target });
  let acquired;
  try {
    acquired = await acquireDevice(c.program);
  } catch (e) {
    if (e instanceof NoAdapterError) throw new LomocError(`lomoc run: ${e.message}`);
    throw e;
  }
  const vocab = vocabOf(c.step, c.config);
  const trainer = await createTrainer({ device: acquired, program: c.program, seed: req.seed });
  const adapter = `${acquired.description}; kernel target ${target} (${how})`;
  hooks.onReady?.({ adapter, model: def.name, preset: req.step.preset ?? def.defaultPreset, config: c.config });
  const data = dataInputs(c.program);
  const losses: number[] = [];
  for (let i = 1; i <= req.steps; i++) {
    const batch = randomBatch(data, vocab, req.seed * 1_000_003 + i);
    const loss = await trainer.step(batch, { lr: req.lr, weightDecay: req.weightDecay });
    losses.push(loss!);
    hooks.onStep?.(i, loss, trainer.stepMs[i - 1]);
  }
  const profile = req.profile ? await profileStep(trainer.executor) : undefined;
  const out = {
    def,
    c,
    adapter,
    losses,
    stepMs: [...trainer.stepMs],
    deviceBytes: trainer.deviceBytes,
    arenaBytes: trainer.arenaBytes,
    planBytes: trainer.planBytes,
    dispatches: c.program.dispatches.length,
    shaders: trainer.executor.shaderCount,
    setupMs: trainer.setupMs,
    profile: profile && byShader(profile),
    profileSource: profile?.source,
  };
  trainer.destroy();
  acquired.device.destroy();
  return out;
}

async function onCpu(req: RunRequest, hooks: RunHooks) {
  const def = await loadModel(req.file);
  const c = compileStep(def, req.step);
  const g = c.step;
  const t0 = performance.now();
  const vocab = vocabOf(g, c.config);
  const decls = g.params.map((p) => ({ name: p.name, shape: g.values[p.value].shape, init: p.init }));
  const init = initialParams({ params: decls }, req.seed);
  const tensor = (shape: readonly number[], data: ArrayLike<number>): HostTensor => ({ shape, data: Float32Array.from(data) });
  let params: Record<string, HostTensor> = Object.fromEntries(decls.map((p) => [p.name, tensor(p.shape, init[p.name])]));
  let state: Record<string, HostTensor> = Object.fromEntries((g.state ?? []).map((s) => {
    const shape = g.values[s.value].shape;
    return [s.name, s.name.startsWith('master.') ? params[s.param] : tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)))];
  }));
  const data = g.inputs
    .filter((d) => !isHyperInput(d.name))
    .map((d) => ({ name: d.name, shape: g.values[d.value].shape, dtype: g.values[d.value].dtype }));
  const setupMs = performance.now() - t0;
  const adapter = 'cpu: reference executor (f32, one node at a time)';
  hooks.onReady?.({ adapter, model: def.name, preset: req.step.preset ?? def.defaultPreset, config: c.config });
  const losses: number[] = [];
  const stepMs: number[] = [];
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });
  for (let i = 1; i <= req.steps; i++) {
    const batch = randomBatch(data, vocab, req.seed * 1_000_003 + i);
    const s0 = performance.now();
    const inputs: Record<string, HostTensor> = { lr: scalar(req.lr), weightDecay: scalar(req.weightDecay), step: scalar(i) };
    for (const d of data) inputs[d.name] = { shape: d.shape, data: batch[d.name] };
    const run = execute(g, { inputs, params, state }, 'f32');
    params = Object.fromEntries(Object.entries(g.updates!).map(([name, v]) => [name, run.values[v]!]));
    state = Object.fromEntries((g.state ?? []).map((s) => [s.name, run.values[s.next]!]));
    stepMs.push(performance.now() - s0);
    losses.push(run.loss);
    hooks.onStep?.(i, run.loss, stepMs[i - 1]);
  }
  return {
    def,
    c,
    adapter,
    losses,
    stepMs,
    deviceBytes: null,
    arenaBytes: null,
    planBytes: c.plan.peak,
    dispatches: null,
    shaders: null,
    setupMs,
    profile: undefined,
    profileSource: undefined,
  };
}

/** The pipeline behind `lomoc run`, without printing: `hooks` see the device and each step as they come. */
export async function runSteps(req: RunRequest, hooks: RunHooks = {}): Promise<RunResult & { warnings: ReturnType<typeof compileStep>['warnings'] }> {
  let r;
  try {
    r = req.device === 'cpu' ? await onCpu(req, hooks) : await onWebGpu(req, hooks);
  } catch (e) {
    if (e instanceof DeviceLostError) throw new LomocError(`lomoc run: ${e.message}`);
    throw e;
  }
  const { def, c, ...rest } = r;
  const msPerStep = mean(r.stepMs);
  const tokens = tokensPerStep(c.config, c.step);
  return {
    ...rest,
    model: def.name,
    preset: req.step.preset ?? def.defaultPreset,
    config: c.config,
    optimizer: req.step.optimizer,
    checkpoint: c.checkpointDetail,
    msPerStep,
    tokensPerStep: tokens,
    tokensPerSecond: (tokens * 1000) / msPerStep,
    warnings: c.warnings,
  };
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

export async function runRun(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(runSpec, argv);
  const req = runRequest(positionals, values);
  const hooks: RunHooks = req.json ? {} : {
    onReady: (r) => io.out(`${formatHeader(r, req)}\n${'step'.padStart(6)}  ${'loss'.padStart(10)}  ${'ms'.padStart(9)}`),
    onStep: (i, loss, ms) =>
      io.out(`${String(i).padStart(6)}  ${loss === undefined ? '-'.padStart(10) : loss.toFixed(5).padStart(10)}  ${ms.toFixed(2).padStart(9)}`),
  };
  const result = await runSteps(req, hooks);
  printWarnings(io, result.warnings);
  if (req.json) io.out(JSON.stringify(runJson(result)));
  else io.out(`\n${formatSummary(result)}`);
  return 0;
}
