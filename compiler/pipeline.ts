// The compiler, stage by stage. Each line is one pure pass; `stages` records how long each took.
import { differentiate } from './autodiff/index.ts';
import { LomocError, type Diagnostic } from './diagnostics.ts';
import { resolveConfig, traceModel, type Config, type ModelDef } from './dsl/model.ts';
import type { Fusion } from './ir/fusion.ts';
import type { MemoryPlan } from './ir/memory-plan.ts';
import { sameShape } from './ir/shape.ts';
import type { Graph } from './ir/types.ts';
import { verify } from './ir/verify.ts';
import { applyCheckpointing, reapplyCheckpointing, type CheckpointChoice, type CheckpointPolicy } from './passes/checkpoint-policy.ts';
import { chooseNormShare, shareCuts, type NormShare } from './passes/norm-share.ts';
import { groupScratch } from './codegen/wgsl/emitters.ts';
import { kernelTarget, type KernelTarget, type TargetName } from './codegen/wgsl/target.ts';
import { fuse, type FuseOptions } from './passes/fuse.ts';
import { fuseLinearCrossEntropy, type FuseLossOptions } from './passes/fuse-loss.ts';
import { optimizerDescriptor } from './optimizers/table.ts';
import { appendOptimizer, defaultRounding, shareableGradients, type ClipMode, type OptimizerName } from './passes/optimizer-step.ts';
import { planMemory, type PlanOptions } from './passes/plan-memory.ts';
import { withStorage } from './passes/precision.ts';
import type { Rounding } from '../contract/stochastic-round.ts';
import { gradFactorOutput } from '../contract/program.ts';
import type { LossScaleSpec } from '../contract/loss-scale.ts';
import { schedule } from './passes/schedule.ts';
import { accumulateMicroBatches } from './passes/accumulate.ts';

export interface StepConfig {
  readonly preset?: string;
  readonly sets?: readonly string[];
  readonly batch?: number;
  readonly seq?: number;
  readonly dtype?: 'f32' | 'f16' | 'bf16';
  /** A registered optimizer (compiler/optimizers/table.ts). */
  readonly optimizer: OptimizerName;
  /** Its hyper-parameters by name (e.g. beta1), checked against its descriptor; defaults for the rest. */
  readonly hyper?: Readonly<Record<string, number>>;
  readonly clipNorm?: number;
  /** How --clip-norm finds its factor (optimizer-step.ts): exact (default) or previous (one pass, approximate). */
  readonly clipMode?: ClipMode;
  /**
   * Loss scaling: the step reads the loss scale as an input, unscales the gradients and skips
   * itself on an overflow. The spec (dynamic or fixed) is the host's (contract/loss-scale.ts);
   * the compiled step is the same for both, and for `true`.
   */
  readonly lossScale?: boolean | LossScaleSpec;
  readonly clipValue?: number;
  readonly checkpoint?: CheckpointPolicy;
  /**
   * K micro-batches of the config's batch per update (default 1): the step's inputs hold K x batch
   * rows, its loss is the mean of the K micro-batch losses (passes/accumulate.ts).
   */
  readonly accumulate?: number;
  /** An f32 master copy of f16 weights where the descriptor allows one (default: with f16, as the paper's baselines). */
  readonly master?: boolean;
  /** How updates store bf16 params (default: defaultRounding, stochastic for bf16 LOMO). */
  readonly rounding?: Rounding;
  /** The stochastic rounding seed (default 0). */
  readonly roundingSeed?: number;
  readonly plan?: PlanOptions;
  /** Bytes of one storage binding at most (`--max-binding`); overrides plan.maxBindingBytes. Tensors past it are split. */
  readonly maxBinding?: number;
  /**
   * The kernel shapes the plan's scratch is reserved for (codegen/wgsl/target.ts). Default 'cpu'
   * only for plans no device runs; compileProgram requires it: pass targetForAdapter of the device.
   */
  readonly target?: TargetName | KernelTarget;
  /**
   * The LM head and the loss as one op that never stores the logits (passes/fuse-loss.ts; default
   * true); false keeps matmul + crossEntropy, for comparisons.
   */
  readonly fuseLoss?: boolean;
  /** The fused loss's vocabulary chunk and workspace budget (tests force small chunks). */
  readonly lossChunk?: Omit<FuseLossOptions, 'maxBindingBytes'>;
  /**
   * A two-pass norm (LOMO's exact clip or loss scaling) shares the top of the backward with pass 2
   * where the plan's peak allows (passes/norm-share.ts; default true); false clones the whole
   * backward, as before, for comparisons; a number shares that many gradients whatever the peak (tests).
   */
  readonly shareNormPass?: boolean | number;
  /** Run the IR verifier after every pass (tests do; it costs a little time on big graphs). */
  readonly verifyEach?: boolean;
}

/** Whether `d` can update a window of a weight (width slices): only when every state is shaped like the weight. */
export const updatesWindows = (d: { readonly rule: { readonly states: readonly { shape(p: readonly number[]): readonly number[] }[] } }): boolean =>
  d.rule.states.every((st) => sameShape(st.shape([2, 3]), [2, 3]));

/** Which kernel groups to form (default: matmul + update under LOMO, elementwise chains, matmul epilogues, matmul + squared norm, update batches). */
export interface FuseConfig {
  readonly fusion?: Partial<FuseOptions>;
}

export interface CompiledStep {
  readonly config: Config;
  readonly forward: Graph;
  /** The scheduled training step: forward, backward, norm pass and updates in one order. */
  readonly step: Graph;
  /** Kernel groups of `step`; `plan` gives their internal values no storage. */
  readonly fusion: Fusion;
  readonly plan: MemoryPlan;
  /** The kernel target `plan` was made for; lowering must use the same. */
  readonly target: KernelTarget;
  /** Recomputed FLOPs as a fraction of one forward pass (0 without checkpointing). */
  readonly recomputeRatio: number;
  readonly checkpointDetail: string;
  /** A two-pass norm's shared top of the backward (absent: no two-pass norm). */
  readonly normShare?: NormShare;
  readonly warnings: readonly Diagnostic[];
  /** Milliseconds per stage, in pipeline order. */
  readonly stages: Readonly<Record<string, number>>;
}

/** `--batch` and `--seq` are shorthands for the config keys of those names. */
export function stepConfig(def: ModelDef, cfg: StepConfig): Config {
  const sets = [...(cfg.sets ?? [])];
  for (const key of ['batch', 'seq'] as const) {
    const v = cfg[key];
    if (v === undefined) continue;
    const preset = def.presets[cfg.preset ?? def.defaultPreset];
    if (preset && !(key in preset)) throw new LomocError(`--${key}: model '${def.name}' has no config key '${key}'`, def.loc);
    sets.push(`${key}=${v}`);
  }
  return resolveConfig(def, cfg.preset, sets);
}

export function compileStep(def: ModelDef, cfg: StepConfig & FuseConfig): CompiledStep {
  const t0 = performance.now();
  const config = stepConfig(def, cfg);
  const { graph: micro, warnings } = traceModel(def, config); // DSL -> forward graph, a source location on every node
  const forward = accumulated(def, config, micro, cfg.accumulate ?? 1); // K micro-batches, one loss
  if (cfg.verifyEach) verify(forward, 'trace');
  const traced = performance.now() - t0;
  const step = compileForward(forward, cfg);
  return { ...step, config, warnings, stages: { trace: traced, ...step.stages } };
}

/** The K-copy forward of --accumulate K; the model traced at K x batch gives the inputs' shapes. */
function accumulated(def: ModelDef, config: Config, micro: Graph, k: number): Graph {
  if (k === 1) return micro;
  const batch = config.batch;
  if (typeof batch !== 'number')
    throw new LomocError(`--accumulate ${k}: model '${def.name}' has no numeric config key 'batch' (the micro-batch size)`, def.loc);
  const { graph: full } = traceModel(def, { ...config, batch: k * batch });
  return accumulateMicroBatches(micro, full, k, batch);
}

export type CompiledForward = Omit<CompiledStep, 'config' | 'warnings'>;

/** Everything after tracing: from a forward graph to a scheduled, planned training step. */
export function compileForward(forward: Graph, cfg: Omit<StepConfig, 'preset' | 'sets' | 'batch' | 'seq'> & FuseConfig): CompiledForward {
  const stages: Record<string, number> = {};
  const run = <T extends Graph | Fusion | MemoryPlan>(name: string, f: () => T): T => {
    const t0 = performance.now();
    const out = f();
    stages[name] = performance.now() - t0;
    if (cfg.verifyEach && 'nodes' in out) verify(out, name);
    return out;
  };
  const narrowed = run('precision', () => withStorage(forward, cfg.dtype ?? 'f32')); // f16 storage, f32 math
  const fusedLoss = run('fuse-loss', () => // LM head + loss as one op: the logits are never stored
    cfg.fuseLoss === false ? narrowed : fuseLinearCrossEntropy(narrowed, { ...cfg.lossChunk, maxBindingBytes: cfg.plan?.maxBindingBytes }));
  const grads = run('differentiate', () => differentiate(fusedLoss)); // reverse mode: a gradient per param
  const optimizer = optimizerDescriptor(cfg.optimizer); // every optimizer fact below comes from it
  const stepWith = (share: number) =>
    appendOptimizer(grads, { // updates as nodes; the norm pass when clipping by norm
      share,
      optimizer: cfg.optimizer,
      hyper: cfg.hyper,
      clipNorm: cfg.clipNorm,
      clipMode: cfg.clipMode,
      lossScale: cfg.lossScale !== undefined && cfg.lossScale !== false,
      clipValue: cfg.clipValue,
      master: cfg.master ?? (cfg.dtype === 'f16' || cfg.dtype === 'bf16'),
      rounding: cfg.rounding ?? defaultRounding(cfg.dtype, cfg.optimizer, cfg.master),
      seed: cfg.roundingSeed,
    });
  const withStep = run('optimizer', () => stepWith(0));
  const order = optimizer.inBackward ? 'lomo' : 'textbook';
  const fusing = {
    matmulUpdate: optimizer.fuseMatmulUpdate, reduceUpdate: optimizer.fuseMatmulUpdate, elementwise: true, matmulEpilogue: true, matmulNorm: true, updateBatch: true,
    maxBindingBytes: cfg.maxBinding ?? cfg.plan?.maxBindingBytes, maxBufferBytes: cfg.plan?.maxBufferBytes, ...cfg.fusion,
  };
  // The plan the device allocates: fused kernels' internal values take no bytes, and each kernel's
  // scratch (codegen's choice) is reserved while it runs. `lomoc plan` and `lomoc run` share it.
  const target = kernelTarget(cfg.target ?? 'cpu');
  const planOf = (g: Graph, fusion: Fusion) => {
    const factor = g.outputs?.[gradFactorOutput]; // read back after the step (loss scaling)
    return planMemory(g, { ...cfg.plan, ...(cfg.maxBinding === undefined ? {} : { maxBindingBytes: cfg.maxBinding }), fusion, scratch: groupScratch(g, fusion, target), ...(factor === undefined ? {} : { keep: [...(cfg.plan?.keep ?? []), factor] }) });
  };
  const peakOf = (g: Graph) => planOf(g, fuse(g, fusing)).peak;
  // width slices update windows of a weight: only rules whose states are shaped like it
  const checkpointOpts = { inBackward: optimizer.inBackward, optimizer: cfg.optimizer, windows: updatesWindows(optimizer) };
  let choice: CheckpointChoice | undefined;
  const chosen = run('checkpoint', () => {
    // recompute segments in backward instead of keeping them; `budget` plans each candidate
    choice = applyCheckpointing(withStep, cfg.checkpoint ?? { kind: 'none' }, (g) => peakOf(schedule(g, order)), `the ${cfg.optimizer} step`, checkpointOpts);
    return choice.graph;
  });
  let normShare: NormShare | undefined;
  const checkpointed = run('norm-share', () => { // the top of the backward once, for both passes, where the peak allows
    if (!twoPassNorm(cfg, optimizer.clipNorm)) return chosen;
    const c = choice!;
    const of = shareableGradients(grads);
    // FFNs split over tokens or width, attention over heads: pass 1 runs its nodes unsplit, so a
    // shared block would hold its whole temporaries (and sum its weight gradients in another
    // order): none shared.
    if (cfg.shareNormPass === false || c.chunks > 1 || c.width > 1 || c.heads > 1) {
      normShare = { shared: 0, of, tried: 0 };
      return chosen;
    }
    // Each candidate keeps the checkpoint choice made without sharing (its segments are forward nodes).
    const candidates = new Map<number, CheckpointChoice>([[0, c]]);
    const at = (k: number) => candidates.get(k) ?? candidates.set(k, reapplyCheckpointing(stepWith(k), c, checkpointOpts)).get(k)!;
    const forced = cfg.shareNormPass;
    normShare = typeof forced === 'number'
      ? { shared: forced, of, tried: 0 }
      : chooseNormShare(shareCuts(grads), of, (k) => peakOf(schedule(at(k).graph, order)));
    choice = at(normShare.shared);
    return choice.graph;
  });
  const step = run('schedule', () => schedule(checkpointed, order)); // LOMO: update as soon as the gradient is complete
  const fusion = run('fuse', () => fuse(step, fusing)); // one kernel per group; LOMO gradients never stored
  const plan = run('plan', () => planOf(step, fusion)); // offsets and lifetimes of every byte
  return { forward, step, fusion, plan, target, recomputeRatio: choice!.recomputeRatio, checkpointDetail: choice!.detail, ...(normShare ? { normShare } : {}), stages };
}

/** Whether appendOptimizer builds a two-pass norm (exact clip-norm or loss scaling, and a 'twoPass' optimizer). */
function twoPassNorm(cfg: Pick<StepConfig, 'clipNorm' | 'clipMode' | 'lossScale'>, clip: string): boolean {
  const lossScale = cfg.lossScale !== undefined && cfg.lossScale !== false;
  return clip === 'twoPass' && ((cfg.clipNorm !== undefined && cfg.clipMode !== 'previous') || lossScale);
}
