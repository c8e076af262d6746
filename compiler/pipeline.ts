// The compiler, stage by stage. Each line is one pure pass; `stages` records how long each took.
import { differentiate } from './autodiff/index.ts';
import { LomocError, type Diagnostic } from './diagnostics.ts';
import { resolveConfig, traceModel, type Config, type ModelDef } from './dsl/model.ts';
import type { MemoryPlan } from './ir/memory-plan.ts';
import type { Graph } from './ir/types.ts';
import { verify } from './ir/verify.ts';
import { appendOptimizer, type OptimizerName } from './passes/optimizer-step.ts';
import { planMemory, type PlanOptions } from './passes/plan-memory.ts';
import { withStorage } from './passes/precision.ts';
import { schedule } from './passes/schedule.ts';

export interface StepConfig {
  readonly preset?: string;
  readonly sets?: readonly string[];
  readonly batch?: number;
  readonly seq?: number;
  readonly dtype?: 'f32' | 'f16';
  readonly optimizer: OptimizerName;
  readonly clipNorm?: number;
  readonly clipValue?: number;
  readonly plan?: PlanOptions;
  /** Run the IR verifier after every pass (tests do; it costs a little time on big graphs). */
  readonly verifyEach?: boolean;
}

export interface CompiledStep {
  readonly config: Config;
  readonly forward: Graph;
  /** The scheduled training step: forward, backward, norm pass and updates in one order. */
  readonly step: Graph;
  readonly plan: MemoryPlan;
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

export function compileStep(def: ModelDef, cfg: StepConfig): CompiledStep {
  const stages: Record<string, number> = {};
  const run = <T extends Graph | MemoryPlan>(name: string, f: () => T): T => {
    const t0 = performance.now();
    const out = f();
    stages[name] = performance.now() - t0;
    if (cfg.verifyEach && 'nodes' in out) verify(out, name);
    return out;
  };
  const config = stepConfig(def, cfg);
  let warnings: readonly Diagnostic[] = [];
  const forward = run('trace', () => {
    const t = traceModel(def, config); // DSL -> forward graph with a source location on every node
    warnings = t.warnings;
    return t.graph;
  });
  const narrowed = run('precision', () => withStorage(forward, cfg.dtype ?? 'f32')); // f16 storage, f32 math
  const grads = run('differentiate', () => differentiate(narrowed)); // reverse mode: a gradient per param
  const withStep = run('optimizer', () =>
    appendOptimizer(grads, { // updates as nodes; the norm pass when clipping by norm
      optimizer: cfg.optimizer,
      clipNorm: cfg.clipNorm,
      clipValue: cfg.clipValue,
      master: cfg.dtype === 'f16',
    }),
  );
  const step = run('schedule', () => schedule(withStep, cfg.optimizer === 'lomo' ? 'lomo' : 'textbook')); // LOMO: update as soon as the gradient is complete
  const plan = run('plan', () => planMemory(step, cfg.plan)); // offsets and lifetimes of every byte
  return { config, forward, step, plan, warnings, stages };
}
