// The bundle's inference program (manifest.json's `inference`): the model's forward-only program
// (compiler/inference: a prefill over `chunk` prompt tokens and a one-token decode step over a
// static key/value cache), compiled from the same model, config and kernel target as the step, at
// batch 1 and f32. It is written for every model that names its logits (`output('logits', ...)`);
// a model that names none gets no section and its bundle cannot generate. Invariant: the section's
// params are the step's params, by name and shape (the runtime copies trained values into them).
import type { InferenceSection } from '../../contract/manifest.ts';
import type { StepProgram } from '../../contract/program.ts';
import type { KernelTarget, TargetName } from '../codegen/wgsl/target.ts';
import type { Config, ModelDef } from '../dsl/model.ts';
import { compileInference, lowerInference, planInference } from '../inference/compile-inference.ts';
import { inferenceNames } from '../inference/chunk-step.ts';
import type { Graph } from '../ir/types.ts';
import { inferenceMemory } from '../report/inference-memory.ts';

export interface BundleInference {
  readonly program: StepProgram;
  readonly context: number;
  readonly chunk: number;
  readonly vocab: number;
  readonly plan: InferenceSection['plan'];
}

/** The inference program of the model the step was compiled from, or undefined when its forward graph names no logits. */
export function bundleInference(def: ModelDef, forward: Graph, config: Config, target: TargetName | KernelTarget, preset?: string): BundleInference | undefined {
  if (forward.outputs?.[inferenceNames.logits] === undefined) return undefined;
  // The step's preset (whose keys the config has) and its config key by key; compileInference sets batch to 1 after these.
  const sets = Object.entries(config).map(([k, v]) => `${k}=${String(v)}`);
  const c = compileInference(def, { preset, sets });
  const planned = planInference(c, { target });
  const { total: _t, lowerBound, ...byCategory } = inferenceMemory(planned.plan);
  return { program: lowerInference(planned), context: c.context, chunk: c.chunk, vocab: c.vocab, plan: { peak: planned.plan.peak, lowerBound, byCategory } };
}

/** The manifest section; `fileOf` names each shader's file (shared with the step's where the key is the same). */
export function inferenceSection(inf: BundleInference, fileOf: (key: string) => string): InferenceSection {
  const { shaders, version: _v, loss: _loss, entries, outputs, ...rest } = inf.program;
  return {
    dtype: 'f32',
    context: inf.context,
    chunk: inf.chunk,
    vocab: inf.vocab,
    plan: inf.plan,
    program: {
      ...rest,
      arenas: [...rest.arenas],
      features: [...rest.features],
      entries: { ...entries },
      outputs: [...(outputs ?? [])],
      kernels: Object.fromEntries(Object.keys(shaders).map((key) => [key, fileOf(key)])),
    } as InferenceSection['program'],
  };
}
