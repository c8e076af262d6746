// `lomoc run <model.ts>`: compile the training step to WGSL, train it for N steps on random data
// on WebGPU (or on the reference executor with --device cpu), and print the adapter, the loss of
// each step, ms per step, tokens per second and the bytes allocated on the device.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import type { Config } from '../compiler/dsl/model.ts';
import type { Graph } from '../compiler/ir/types.ts';
import { loadModel } from '../compiler/load-model.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { NoAdapterError } from '../runtime/webgpu/device.ts';
import { DeviceLostError, GpuTimeoutError } from '../runtime/webgpu/guard.ts';
import { initialParams, randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { adapterTarget } from './adapter-target.ts';
import { byShader, profileStep } from '../runtime/webgpu/timing.ts';
import { createTrainer, dataInputs, isHyperInput } from '../runtime/webgpu/trainer.ts';
import { graphSlots, referenceAdapter, referenceTrainer, type StepRunner } from './reference-trainer.ts';
import { checkpointText } from './step-options.ts';
import { writeCheckpoint } from './train-checkpoint.ts';
import { tuneCompiled } from './tune.ts';
import { parseCommandArgs, resolveTarget } from './args.ts';
import { formatHeader, formatSummary, runJson, type RunResult } from './run-report.ts';
import { runRequest, runSpec, type RunRequest } from './run-request.ts';
import { printWarnings, type Io } from './report.ts';

export { runRequest, runSpec, type RunRequest } from './run-request.ts';
export { formatHeader, formatSummary, runJson, type RunResult } from './run-report.ts';

/** Tokens in one step: batch x seq (x K micro-batches under --accumulate K), or batch alone for models without a sequence. */
function tokensPerStep(config: Config, step: Graph, accumulate = 1): number {
  const first = step.inputs.find((d) => !isHyperInput(d.name));
  const batch = typeof config.batch === 'number' ? config.batch * accumulate : (first ? step.values[first.value].shape[0] : 1) ?? 1;
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
  /** A warning for stderr: the tuning cache's. */
  readonly onWarning?: (message: string) => void;
  /** The shapes tuning gave another tile, a line each (the adapter line has the summary). */
  readonly onTuning?: (lines: readonly string[]) => void;
}

async function onWebGpu(req: RunRequest, hooks: RunHooks) {
  const def = await loadModel(req.file);
  const { target, kernel, describe } = await adapterTarget('run', req.target, req.step.dtype, req.subgroups);
  const c = compileProgram(def, { ...req.step, target: kernel, roundingSeed: req.seed });
  const how = describe(c.program.features);
  let acquired;
  try {
    acquired = await acquireDevice(c.program);
  } catch (e) {
    if (e instanceof NoAdapterError || e instanceof GpuTimeoutError) throw new LomocError(`lomoc run: ${e.message}`);
    throw e;
  }
  const vocab = vocabOf(c.step, c.config);
  const tuned = await tuneCompiled(acquired, c, target, req.tune, (m) => hooks.onWarning?.(m));
  const trainer = await createTrainer({ device: acquired, program: tuned.program, seed: req.seed, ...(typeof req.step.lossScale === 'object' ? { lossScale: req.step.lossScale } : {}) });
  const adapter = `${acquired.description}; kernel target ${target} (${how}); ${tuned.line}`;
  hooks.onTuning?.(tuned.details);
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
  if (req.save) await save(req, trainer, tuned.program, c.checkpointDetail);
  const out = {
    def,
    c,
    adapter,
    losses,
    stepMs: [...trainer.stepMs],
    deviceBytes: trainer.deviceBytes,
    arenaBytes: trainer.arenaBytes,
    planBytes: trainer.planBytes,
    dispatches: tuned.program.dispatches.length,
    shaders: trainer.executor.shaderCount,
    setupMs: trainer.setupMs,
    profile: profile && byShader(profile),
    profileSource: profile?.source,
  };
  if (!acquired.watch.hung) {
    // After a deadline the GPU may still run the kernel: destroying would block (runtime/webgpu/guard.ts).
    if (!acquired.watch.hung) {
      trainer.destroy();
      acquired.device.destroy();
    }
  }
  return out;
}

async function onCpu(req: RunRequest, hooks: RunHooks) {
  const def = await loadModel(req.file);
  // No adapter: the reference executor runs the graph; the target shapes only the plan's scratch.
  const { target } = resolveTarget(req.target, 'the reference executor asks no adapter');
  const c = compileStep(def, { ...req.step, target, roundingSeed: req.seed }); // --seed seeds stochastic rounding too
  const g = c.step;
  const vocab = vocabOf(g, c.config);
  const trainer = referenceTrainer(g, req.seed, c.plan.peak, typeof req.step.lossScale === 'object' ? req.step.lossScale : undefined);
  const data = graphSlots(g).inputs;
  const adapter = referenceAdapter;
  hooks.onReady?.({ adapter, model: def.name, preset: req.step.preset ?? def.defaultPreset, config: c.config });
  const losses: number[] = [];
  for (let i = 1; i <= req.steps; i++) {
    const loss = (await trainer.step(randomBatch(data, vocab, req.seed * 1_000_003 + i), { lr: req.lr, weightDecay: req.weightDecay, step: i }))!;
    losses.push(loss);
    hooks.onStep?.(i, loss, trainer.stepMs[i - 1]);
  }
  if (req.save) await save(req, trainer, graphSlots(g), c.checkpointDetail);
  return {
    def,
    c,
    adapter,
    losses,
    stepMs: [...trainer.stepMs],
    deviceBytes: null,
    arenaBytes: null,
    planBytes: c.plan.peak,
    dispatches: null,
    shaders: null,
    setupMs: trainer.setupMs,
    profile: undefined,
    profileSource: undefined,
  };
}

/** --save: the params and optimizer state after the last step, as a checkpoint that --init (of run's sibling train) reads. */
async function save(req: RunRequest, trainer: Pick<StepRunner, 'readParams' | 'readState'>, decls: Parameters<typeof writeCheckpoint>[2], detail: string) {
  mkdirSync(req.save!, { recursive: true });
  await writeCheckpoint(join(req.save!, 'checkpoint.safetensors'), trainer, decls, {
    step: String(req.steps), seed: String(req.seed), device: req.device,
    compile: JSON.stringify({ ...req.step, checkpoint: checkpointText(req.step.checkpoint ?? { kind: 'none' }), checkpointDetail: detail }),
  });
}

/** The pipeline behind `lomoc run`, without printing: `hooks` see the device and each step as they come. */
export async function runSteps(req: RunRequest, hooks: RunHooks = {}): Promise<RunResult & { warnings: ReturnType<typeof compileStep>['warnings'] }> {
  let r;
  try {
    r = req.device === 'cpu' ? await onCpu(req, hooks) : await onWebGpu(req, hooks);
  } catch (e) {
    if (e instanceof DeviceLostError || e instanceof GpuTimeoutError) throw new LomocError(`lomoc run: ${e.message}`);
    throw e;
  }
  const { def, c, ...rest } = r;
  const msPerStep = mean(r.stepMs);
  const tokens = tokensPerStep(c.config, c.step, req.step.accumulate);
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

export async function runRun(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(runSpec, argv);
  const req = runRequest(positionals, values);
  const onWarning = (m: string) => io.err(`warning: ${m}`);
  let tuning: readonly string[] = [];
  const hooks: RunHooks = req.json ? { onWarning } : {
    onWarning,
    onTuning: (lines) => (tuning = lines),
    onReady: (r) => io.out(`${[formatHeader(r, req), ...tuning].join('\n')}\n${'step'.padStart(6)}  ${'loss'.padStart(10)}  ${'ms'.padStart(9)}`),
    onStep: (i, loss, ms) =>
      io.out(`${String(i).padStart(6)}  ${loss === undefined ? '-'.padStart(10) : loss.toFixed(5).padStart(10)}  ${ms.toFixed(2).padStart(9)}`),
  };
  const result = await runSteps(req, hooks);
  printWarnings(io, result.warnings);
  if (req.json) io.out(JSON.stringify(runJson(result)));
  else io.out(`\n${formatSummary(result)}`);
  return 0;
}
