// Builds training steps the way the pipeline does, and runs them on the reference executor:
// `plainStep` unplanned in textbook order (the oracle), `plannedStep` inside its memory plan.
import type { MemoryPlan } from '../../compiler/ir/memory-plan.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import type { CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import type { StepOptions } from '../../compiler/passes/optimizer-step.ts';
import { compileForward } from '../../compiler/pipeline.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { executePlanned } from '../../compiler/reference/execute-planned.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';

export interface StepResult {
  readonly loss: number;
  readonly params: Record<string, HostTensor>;
  readonly state: Record<string, HostTensor>;
}

export interface BuiltStep {
  readonly step: Graph;
  readonly plan: MemoryPlan;
}

/** The pipeline from a forward graph, verifying after every pass. */
export function buildStep(forward: Graph, opts: StepOptions & { dtype?: 'f32' | 'f16'; checkpoint?: CheckpointPolicy; shareNormPass?: boolean | number }): BuiltStep & { recomputeRatio: number } {
  const c = compileForward(forward, { ...opts, verifyEach: true });
  return { step: c.step, plan: c.plan, recomputeRatio: c.recomputeRatio };
}

/** Feeds for a step: the forward feeds plus the step's scalars and zeroed (or copied) state. */
export function stepFeeds(step: Graph, base: Feeds, hyper: { lr: number; weightDecay: number; step?: number; lossScale?: number }): Feeds {
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });
  const state: Record<string, HostTensor> = {};
  for (const s of step.state ?? []) {
    const shape = step.values[s.value].shape;
    const n = shape.reduce((a, b) => a * b, 1);
    // The master copy starts as the weights; moments start at zero.
    state[s.name] = s.name.startsWith('master.') ? base.params[s.param] : { shape, data: new Float64Array(n) };
  }
  return {
    inputs: { ...base.inputs, lr: scalar(hyper.lr), weightDecay: scalar(hyper.weightDecay), step: scalar(hyper.step ?? 1), lossScale: scalar(hyper.lossScale ?? 1) },
    params: base.params,
    state,
  };
}

/** The oracle: every node in textbook order, every value kept. */
export function plainStep(step: Graph, feeds: Feeds): StepResult {
  const run = execute(step, feeds, 'f32');
  const pick = (names: Record<string, number>) => Object.fromEntries(Object.entries(names).map(([k, v]) => [k, run.values[v]!]));
  return {
    loss: run.loss,
    params: pick(step.updates!),
    state: pick(Object.fromEntries((step.state ?? []).map((s) => [s.name, s.next]))),
  };
}

export function plannedStep(built: BuiltStep, feeds: Feeds): StepResult {
  return executePlanned(built.step, built.plan, feeds);
}

/** Names of the tensors whose bits differ (empty when the two results are identical). */
export function bitDifferences(a: StepResult, b: StepResult): string[] {
  const out: string[] = [];
  if (!Object.is(Math.fround(a.loss), Math.fround(b.loss))) out.push(`loss ${a.loss} vs ${b.loss}`);
  for (const [kind, x, y] of [['param', a.params, b.params], ['state', a.state, b.state]] as const) {
    for (const name of Object.keys(x)) {
      const [p, q] = [x[name].data, y[name]?.data];
      if (!q || p.length !== q.length || p.some((v, i) => !Object.is(Math.fround(v), Math.fround(q[i])))) out.push(`${kind} ${name}`);
    }
  }
  return out;
}
