// The compiled step `lomoc train` trains, and the trainer that runs it: compiled from a model file
// now (for WebGPU, or for the reference executor with --device cpu) or loaded from a bundle folder
// that `lomoc compile` wrote, whose manifest fixes the step's options.
import { statSync } from 'node:fs';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { defaultRounding } from '../compiler/passes/optimizer-step.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import { loadModel } from '../compiler/load-model.ts';
import { compileStep, type StepConfig } from '../compiler/pipeline.ts';
import type { Manifest } from '../contract/manifest.ts';
import type { StepProgram } from '../contract/program.ts';
import { parseCheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';
import { BundleError } from '../runtime/bundle/load-bundle.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { NoAdapterError, type Acquired } from '../runtime/webgpu/device.ts';
import { tuneCompiled } from './tune.ts';
import { DeviceLostError, GpuError, GpuTimeoutError } from '../runtime/webgpu/guard.ts';
import { ProgramError } from '../runtime/webgpu/validate.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { adapterTarget } from './adapter-target.ts';
import { createTrainer, dataInputs } from '../runtime/webgpu/trainer.ts';
import type { LossScaleSpec } from '../contract/loss-scale.ts';
import { resolveTarget } from './args.ts';
import { optimizerDescriptor, resolveHyper } from '../compiler/optimizers/table.ts';
import { withHfPreset } from './hf-init.ts';
import { graphSlots, referenceAdapter, referenceTrainer, type StepRunner } from './reference-trainer.ts';
import { printWarnings, type Io } from './report.ts';
import { checkpointText } from './step-options.ts';
import type { bundleFixed, TrainRequest } from './train-request.ts';

/** The compiled step to train, with what the checkpoint and the printed lines need of it. */
export interface Source {
  readonly name: string;
  readonly preset: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly params: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly state: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly inputs: readonly { readonly name: string; readonly shape: readonly number[]; readonly dtype: string }[];
  readonly checkpointDetail: string;
  /** The smallest id range of tokens and targets, where the compiler knows it. */
  readonly idRange: number;
  /** The step options in the checkpoint's identity and metadata. */
  readonly step: StepConfig;
  /** The checkpointing policy's canonical text (checkpointText): the same from a model file or a bundle. */
  readonly checkpointText: string;
  readonly bundle?: string;
  /** The kernel target and why, for the adapter line: "gpu (auto: hardware adapter)". */
  readonly target: string;
  /** Starts a trainer for the step on its device; `adapter` says which. */
  readonly start: (seed: number) => Promise<{ readonly runner: StepRunner; readonly adapter: string; readonly release: () => void }>;
}

/** What the bundle fixed an option to, for the error. */
function bundleValue(m: Manifest, option: (typeof bundleFixed)[number]): string {
  const cfg = (k: string) => (k in m.config ? String(m.config[k]) : '(none)');
  switch (option) {
    case 'optimizer': return `optimizer ${m.step.optimizer}`;
    case 'opt': return Object.entries(m.step.hyper ?? {}).map(([k, v]) => `--opt ${k}=${v}`).join(' ') || 'the default hyper-parameters';
    case 'checkpoint': return `checkpoint ${m.step.checkpoint}`;
    case 'clip-norm': return `clip-norm ${m.step.clipNorm ?? '(none)'}`;
    case 'clip-value': return `clip-value ${m.step.clipValue ?? '(none)'}`;
    case 'clip-mode': return `clip-mode ${m.step.clipMode ?? 'exact'}`;
    case 'loss-scale': case 'loss-scale-interval': {
      const s = m.step.lossScale;
      return !s ? 'no loss scaling' : s.kind === 'static' ? `loss-scale ${s.scale}` : `loss-scale dynamic, loss-scale-interval ${s.interval}`;
    }
    case 'dtype': return `dtype ${m.step.dtype}`;
    case 'batch': return `batch ${cfg('batch')}`;
    case 'seq': return `seq ${cfg('seq')}`;
    case 'set': return `config ${Object.entries(m.config).map(([k, v]) => `${k}=${v}`).join(' ')}`;
    case 'preset': return `preset ${m.preset}`;
    case 'target': return `target ${m.step.target}`;
    case 'accumulate': return `accumulate ${m.step.accumulate ?? 1}`;
    case 'rounding': return `rounding ${m.step.rounding ?? defaultRounding(m.step.dtype, m.step.optimizer, undefined)}`;
    case 'tune': return m.step.tuned ? `matmul tiles tuned on ${m.step.tuned.adapter.device || m.step.tuned.adapter.description}` : 'untuned kernels';
    case 'fuse-loss': return 'the --fuse-loss given to lomoc compile';
    case 'subgroups': return m.step.subgroups ? 'subgroup reductions (compile --subgroups)' : 'no subgroup reductions (compile without --subgroups)';
    case 'max-binding': return `storage bindings of at most ${m.program.dispatches.reduce((a, d) => d.bindings.reduce((b, r) => Math.max(b, r.bytes), a), 0)} bytes`;
  }
}

/** The host's loss scaling spec of a step config (`true` alone: GradScaler's defaults). */
const lossScaleSpec = (s: StepConfig): LossScaleSpec | undefined => (typeof s.lossScale === 'object' ? s.lossScale : undefined);

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/** A WebGPU trainer for `program`; NoAdapterError becomes the command's error. */
/**
 * The runtime's errors that are not lomoc's fault, as user errors: a lost or hung device, and
 * anything WebGPU refuses in a bundle's program (the bundle is untrusted input; a program lomoc
 * compiled just now that WebGPU refuses stays an internal error).
 */
export function runtimeFault(e: unknown, bundle: string | undefined): unknown {
  if (e instanceof DeviceLostError || e instanceof GpuTimeoutError) return new LomocError(`lomoc train: ${e.message}`);
  if (bundle && (e instanceof ProgramError || e instanceof GpuError)) return new LomocError(`lomoc train: the bundle ${bundle} cannot run: ${e.message}`);
  return e;
}

/** `--tune` on the acquired device (cli/tune.ts): the program to run and a line saying what tuning did. */
type Tune = (acq: Acquired) => Promise<{ readonly program: StepProgram; readonly line: string }>;

function onWebGpu(untuned: StepProgram, target: string, bundle?: string, tune?: Tune, lossScale?: LossScaleSpec) {
  return async (seed: number) => {
    let acquired;
    try {
      acquired = await acquireDevice(untuned);
    } catch (e) {
      if (e instanceof NoAdapterError || e instanceof GpuTimeoutError) throw new LomocError(`lomoc train: ${e.message}`);
      throw e;
    }
    let trainer;
    let tuning = '';
    try {
      const tuned = tune ? await tune(acquired) : { program: untuned, line: '' };
      tuning = tuned.line && `; ${tuned.line}`;
      trainer = await createTrainer({ device: acquired, program: tuned.program, seed, ...(lossScale ? { lossScale } : {}) });
    } catch (e) {
      if (!acquired.watch.hung) acquired.device.destroy();
      throw runtimeFault(e, bundle);
    }
    const t = trainer;
    // After a deadline the GPU may still run the kernel: destroying would block (runtime/webgpu/guard.ts).
    const release = () => {
      if (acquired.watch.hung) return;
      t.destroy();
      acquired.device.destroy();
    };
    return { runner: trainer, adapter: `${acquired.description}; kernel target ${target}${tuning}`, release };
  };
}

async function fromModel(req: TrainRequest, io: Io): Promise<Source> {
  const def = withHfPreset(await loadModel(req.file), req.init, req.step.preset);
  const common = { name: def.name, preset: req.step.preset ?? def.defaultPreset, step: req.step, checkpointText: checkpointText(req.step.checkpoint ?? { kind: 'none' }) };
  const idRange = (g: Parameters<typeof idRanges>[0]) => {
    const ranges = idRanges(g);
    return Math.min(ranges.tokens ?? Infinity, ranges.targets ?? Infinity);
  };
  if (req.device === 'cpu') {
    // No adapter: the reference executor runs the graph; the target shapes only the plan's scratch.
    const { target, how } = resolveTarget(req.target, 'the reference executor asks no adapter');
    const c = compileStep(def, { ...req.step, target, roundingSeed: req.seed }); // --seed seeds stochastic rounding too
    printWarnings(io, c.warnings);
    const slots = graphSlots(c.step);
    return {
      ...common, ...slots, config: c.config, checkpointDetail: c.checkpointDetail, idRange: idRange(c.step), target: `${target} (${how})`,
      start: async (seed) => ({ runner: referenceTrainer(c.step, seed, c.plan.peak, lossScaleSpec(req.step)), adapter: referenceAdapter, release: () => {} }),
    };
  }
  const { target, kernel, describe } = await adapterTarget('train', req.target, req.step.dtype, req.subgroups);
  const c = compileProgram(def, { ...req.step, target: kernel, roundingSeed: req.seed });
  const how = describe(c.program.features);
  printWarnings(io, c.warnings);
  return {
    ...common, params: c.program.params, state: c.program.state, inputs: dataInputs(c.program), config: c.config, checkpointDetail: c.checkpointDetail,
    idRange: idRange(c.step), target: `${target} (${how})`,
    start: onWebGpu(c.program, `${target} (${how})`, undefined, async (acq) => {
      const tuned = await tuneCompiled(acq, c, target, req.tune, (m) => io.err(`warning: ${m}`));
      // What won where, beside the adapter line's summary; --json's stdout is one object only.
      if (!req.json) for (const d of tuned.details) io.out(d);
      return tuned;
    }, lossScaleSpec(req.step)),
  };
}

async function fromBundle(req: TrainRequest): Promise<Source> {
  if (req.device === 'cpu')
    throw new LomocError(`lomoc train: option '--device cpu' cannot be given with a bundle: the reference executor runs the compiler's graph, which a bundle does not hold; give the model file`);
  let b;
  try {
    b = await loadBundleDir(req.file);
  } catch (e) {
    if (e instanceof BundleError) throw new LomocError(`lomoc train: ${e.message}`);
    throw e;
  }
  const m = b.manifest;
  // The manifest (contract/) holds any non-empty name: the optimizer table checks it.
  resolveHyper(optimizerDescriptor(m.step.optimizer, `lomoc train: ${req.file}: step.optimizer`), m.step.hyper, `lomoc train: ${req.file}: step.hyper`);
  const given = req.stepOptions ?? [];
  if (given.length) {
    const o = given[0] as (typeof bundleFixed)[number];
    throw new LomocError(`lomoc train: option '--${o}' cannot be given with a bundle: the bundle ${req.file} fixes it (compiled with ${bundleValue(m, o)}); compile another bundle to change it`);
  }
  // Bundles written before checkpointDetail existed hold the detail in `checkpoint`, which is no policy.
  let checkpoint: StepConfig['checkpoint'];
  try {
    checkpoint = parseCheckpointPolicy(m.step.checkpoint);
  } catch {
    checkpoint = undefined;
  }
  const target = `${m.step.target} (the bundle's)`;
  return {
    name: m.model, preset: m.preset, config: m.config, params: b.program.params, state: b.program.state, inputs: dataInputs(b.program),
    checkpointDetail: m.step.checkpointDetail ?? m.step.checkpoint, idRange: Infinity,
    step: { preset: m.preset, sets: [], optimizer: m.step.optimizer, hyper: m.step.hyper, checkpoint, clipNorm: m.step.clipNorm ?? undefined, clipValue: m.step.clipValue ?? undefined, dtype: m.step.dtype, ...(m.step.rounding ? { rounding: m.step.rounding } : {}), ...(m.step.accumulate ? { accumulate: m.step.accumulate } : {}),
      ...(m.step.clipMode ? { clipMode: m.step.clipMode } : {}), ...(m.step.lossScale ? { lossScale: m.step.lossScale } : {}) },
    checkpointText: m.step.checkpoint, bundle: req.file, target, start: onWebGpu(b.program, target, req.file, undefined, m.step.lossScale),
  };
}

export function trainSource(req: TrainRequest, io: Io): Promise<Source> {
  return isDir(req.file) ? fromBundle(req) : fromModel(req, io);
}
