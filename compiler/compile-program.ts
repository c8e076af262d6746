// From a model to what the WebGPU runtime runs: compileStep's scheduled, fused and planned step
// (the plan `lomoc plan` reports, which is the one the device allocates), then lowerStep: WGSL
// dispatches over that plan, the StepProgram (runtime/program.ts).
import type { StepProgram } from '../contract/program.ts';
import { lowerStep } from './codegen/wgsl/lower.ts';
import type { KernelTarget, TargetName } from './codegen/wgsl/target.ts';
import type { ModelDef } from './dsl/model.ts';
import type { Graph } from './ir/types.ts';
import { compileStep, type CompiledForward, type CompiledStep, type StepConfig } from './pipeline.ts';

export interface ProgramConfig extends StepConfig {
  /** Required here: a device's target is targetForAdapter(adapter.info) (codegen/wgsl/target.ts). */
  readonly target: TargetName | KernelTarget;
  /** Fuse kernels (default true); false gives one dispatch per node, for comparisons. */
  readonly fuse?: boolean;
}

export type CompiledProgram = CompiledStep & { readonly program: StepProgram };

/** The StepProgram of a compiled step, over its own fusion and plan, for the target it was planned for. */
export function lowerCompiled(c: Pick<CompiledForward, 'step' | 'plan' | 'fusion' | 'target'>): { program: StepProgram; lowerMs: number } {
  const t0 = performance.now();
  const program = lowerStep(c.step, c.plan, c.fusion, c.target);
  return { program, lowerMs: performance.now() - t0 };
}

const unfused = { matmulUpdate: false, reduceUpdate: false, elementwise: false, matmulEpilogue: false, updateBatch: false } as const;

/** compileStep (trace to plan), then lower: a StepProgram and everything it came from. */
export function compileProgram(def: ModelDef, cfg: ProgramConfig): CompiledProgram {
  const c = compileStep(def, cfg.fuse === false ? { ...cfg, fusion: unfused } : cfg);
  const { program, lowerMs } = lowerCompiled(c);
  return { ...c, program, stages: { ...c.stages, lower: lowerMs } };
}

/**
 * The exclusive upper bound of each i32 input's values, from the ops that read it: an embedding's
 * table rows, a cross-entropy's classes (the smallest when several read it), directly or through
 * slices and reshapes. Inputs no such op reads are absent.
 */
export function idRanges(g: Graph): Record<string, number> {
  const bound = new Map<number, number>();
  // Ids reach those ops through slices and reshapes too (--accumulate slices each micro-batch).
  const origin = new Map<number, number>();
  const limit = (v: number, n: number) => {
    const o = origin.get(v) ?? v;
    bound.set(o, Math.min(bound.get(o) ?? Infinity, n));
  };
  for (const n of g.nodes) {
    if (n.op === 'slice' || n.op === 'reshape') origin.set(n.outputs[0], origin.get(n.inputs[0]) ?? n.inputs[0]);
    if (n.op === 'embedding') limit(n.inputs[1], g.values[n.inputs[0]].shape[0]);
    if (n.op === 'crossEntropy') limit(n.inputs[1], g.values[n.inputs[0]].shape.at(-1)!);
    if (n.op === 'linearCrossEntropy') limit(n.inputs[2], g.values[n.inputs[1]].shape[n.attrs.transW ? 0 : 1]);
  }
  const out: Record<string, number> = {};
  for (const d of g.inputs) if (g.values[d.value].dtype === 'i32' && bound.has(d.value)) out[d.name] = bound.get(d.value)!;
  return out;
}
