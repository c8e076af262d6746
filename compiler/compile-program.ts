// From a model to what the WebGPU runtime runs: compileStep's scheduled step, then
//   fuse      kernel groups (LOMO: the weight-gradient matmul and its update as one kernel)
//   plan      again, with the fusion (internal values need no storage) and codegen's scratch
//   lowerStep WGSL dispatches over that plan: the StepProgram (runtime/program.ts)
// compileStep's own plan has no fusion (what `lomoc plan` reports); `plan` here is the one the
// device allocates.
import type { StepProgram } from '../runtime/program.ts';
import type { ScratchRule } from './codegen/wgsl/emitter.ts';
import { scratchRules } from './codegen/wgsl/emitters.ts';
import { lowerStep } from './codegen/wgsl/lower.ts';
import type { ModelDef } from './dsl/model.ts';
import { noFusion, type Fusion } from './ir/fusion.ts';
import type { MemoryPlan } from './ir/memory-plan.ts';
import type { Op } from './ir/ops.ts';
import type { Graph } from './ir/types.ts';
import { fuse } from './passes/fuse.ts';
import { planMemory } from './passes/plan-memory.ts';
import { compileStep, type CompiledForward, type CompiledStep, type StepConfig } from './pipeline.ts';

export interface ProgramConfig extends StepConfig {
  /** Fuse kernels (default true); false gives one dispatch per node, for comparisons. */
  readonly fuse?: boolean;
}

export interface Lowered {
  readonly program: StepProgram;
  /** The plan the program's arenas come from: planned with `fusion` and codegen's scratch. */
  readonly plan: MemoryPlan;
  readonly fusion: Fusion;
  /** Milliseconds of fuse, plan and lower. */
  readonly stages: Readonly<Record<string, number>>;
}

export type CompiledProgram = Omit<CompiledStep, 'plan'> & Lowered & { readonly stepPlan: MemoryPlan };

/** Scratch bytes per kernel group, from the codegen's rules (single-node groups only). */
export function scratchFor(g: Graph, fusion: Fusion): (group: number) => readonly number[] {
  return (k) => {
    const group = fusion.groups[k];
    if (group.kind !== 'single') return [];
    const n = g.nodes[group.nodes[0]];
    const rule = scratchRules[n.op] as ScratchRule<Op> | undefined;
    return rule ? rule(n as never, g) : [];
  };
}

/** Fuses, plans and lowers a compiled step. */
export function lowerCompiled(c: Pick<CompiledForward, 'step'>, cfg: Pick<ProgramConfig, 'optimizer' | 'plan' | 'fuse'>): Lowered {
  const stages: Record<string, number> = {};
  const time = <T>(name: string, f: () => T): T => {
    const t0 = performance.now();
    const out = f();
    stages[name] = performance.now() - t0;
    return out;
  };
  const fusion = time('fuse', () =>
    cfg.fuse === false ? noFusion(c.step.nodes.length) : fuse(c.step, { matmulUpdate: cfg.optimizer === 'lomo', elementwise: true, matmulEpilogue: true }),
  );
  const plan = time('planFused', () => planMemory(c.step, { ...cfg.plan, fusion, scratch: scratchFor(c.step, fusion) }));
  const program = time('lower', () => lowerStep(c.step, plan, fusion));
  return { program, plan, fusion, stages };
}

/** compileStep, then fuse, plan and lower: a StepProgram and everything it came from. */
export function compileProgram(def: ModelDef, cfg: ProgramConfig): CompiledProgram {
  const c = compileStep(def, cfg);
  const lowered = lowerCompiled(c, cfg);
  return { ...c, ...lowered, stepPlan: c.plan, stages: { ...c.stages, ...lowered.stages } };
}

/**
 * The exclusive upper bound of each i32 input's values, from the ops that read it: an embedding's
 * table rows, a cross-entropy's classes (the smallest when several read it). Inputs no such op
 * reads are absent.
 */
export function idRanges(g: Graph): Record<string, number> {
  const bound = new Map<number, number>();
  const limit = (v: number, n: number) => bound.set(v, Math.min(bound.get(v) ?? Infinity, n));
  for (const n of g.nodes) {
    if (n.op === 'embedding') limit(n.inputs[1], g.values[n.inputs[0]].shape[0]);
    if (n.op === 'crossEntropy') limit(n.inputs[1], g.values[n.inputs[0]].shape.at(-1)!);
  }
  const out: Record<string, number> = {};
  for (const d of g.inputs) if (g.values[d.value].dtype === 'i32' && bound.has(d.value)) out[d.name] = bound.get(d.value)!;
  return out;
}
