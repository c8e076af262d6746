// From a model to its inference program: trace at batch 1 over the whole context, rewrite into
// a prefill step (`chunk` tokens at a runtime position) and a decode step (one token), each with
// the key/value caches as persistent state; then, for a device, both steps in one graph with one
// fusion and one memory plan (the same planner as training), lowered to one StepProgram with two
// entry points over shared params and caches.
import type { StepProgram, TensorSlot } from '../../contract/program.ts';
import { groupScratch } from '../codegen/wgsl/emitters.ts';
import { defaultLimits } from '../codegen/wgsl/emitter.ts';
import { lowerStep } from '../codegen/wgsl/lower.ts';
import { kernelTarget, type KernelTarget, type TargetName } from '../codegen/wgsl/target.ts';
import { LomocError, type Diagnostic } from '../diagnostics.ts';
import { resolveConfig, traceModel, type Config, type ModelDef } from '../dsl/model.ts';
import type { Fusion } from '../ir/fusion.ts';
import type { MemoryPlan } from '../ir/memory-plan.ts';
import { byteSize } from '../ir/shape.ts';
import type { Graph, ValueId } from '../ir/types.ts';
import { verify } from '../ir/verify.ts';
import { fuse } from '../passes/fuse.ts';
import { planMemory, type PlanOptions } from '../passes/plan-memory.ts';
import { withStorage } from '../passes/precision.ts';
import { chunkStep, inferenceNames, namedLogits, tokensInput } from './chunk-step.ts';
import { mergeSteps } from './merge-steps.ts';

export interface InferenceConfig {
  readonly preset?: string;
  readonly sets?: readonly string[];
  /** Tokens per prefill call (default: the context, at most 64). */
  readonly chunk?: number;
  readonly dtype?: 'f32' | 'f16';
  readonly plan?: PlanOptions;
  readonly target?: TargetName | KernelTarget;
  readonly verifyEach?: boolean;
}

export interface CompiledInference {
  readonly config: Config;
  /** The traced forward graph (batch 1) the steps came from. */
  readonly forward: Graph;
  readonly prefill: Graph;
  readonly decode: Graph;
  readonly context: number;
  readonly chunk: number;
  readonly vocab: number;
  readonly warnings: readonly Diagnostic[];
}

export const defaultChunk = (context: number): number => Math.min(context, 64);

/** Generation runs one sequence: `batch` (when the model has the key) is 1. */
export function inferenceModelConfig(def: ModelDef, preset?: string, sets: readonly string[] = []): Config {
  const base = def.presets[preset ?? def.defaultPreset];
  return resolveConfig(def, preset, base && 'batch' in base ? [...sets, 'batch=1'] : sets);
}

export function compileInference(def: ModelDef, cfg: InferenceConfig = {}): CompiledInference {
  const config = inferenceModelConfig(def, cfg.preset, cfg.sets);
  const { graph: traced, warnings } = traceModel(def, config);
  const forward = withStorage(traced, cfg.dtype ?? 'f32');
  const { context, batch } = tokensInput(forward);
  if (batch !== 1) throw new LomocError(`model '${def.name}': generation needs batch 1, the input 'tokens' has batch ${batch}`, def.loc);
  const chunk = cfg.chunk ?? defaultChunk(context);
  if (!(Number.isInteger(chunk) && chunk >= 1 && chunk <= context))
    throw new LomocError(`--chunk: expected an integer in 1..${context} (the context), got ${chunk}`);
  const prefill = chunkStep(forward, chunk, `${def.name}.prefill`);
  const decode = chunkStep(forward, 1, `${def.name}.decode`);
  if (cfg.verifyEach) for (const g of [prefill, decode]) verify(g, 'the inference rewrite');
  const vocab = forward.values[namedLogits(forward)].shape.at(-1)!;
  return { config, forward, prefill, decode, context, chunk, vocab, warnings };
}

export interface PlannedInference {
  /** Both steps in one graph: prefill's nodes, then decode's. */
  readonly graph: Graph;
  readonly ranges: Readonly<Record<'prefill' | 'decode', { readonly from: number; readonly to: number }>>;
  readonly fusion: Fusion;
  readonly plan: MemoryPlan;
  readonly target: KernelTarget;
}

/** One fusion and one plan for both steps: params and caches persistent, activations shared. */
export function planInference(c: CompiledInference, cfg: Pick<InferenceConfig, 'plan' | 'target' | 'verifyEach'> = {}): PlannedInference {
  const { graph, ranges } = mergeSteps(c.forward.name, [
    { name: 'prefill', graph: c.prefill },
    { name: 'decode', graph: c.decode },
  ]);
  if (cfg.verifyEach) verify(graph, 'merging the inference steps');
  const target = kernelTarget(cfg.target ?? 'cpu');
  const fusion = fuse(graph, { matmulUpdate: false, elementwise: true, matmulEpilogue: true });
  // Prefill's logits are read after its entry runs: keep them from being overwritten within it.
  const keep = [graph.outputs![`prefill.${inferenceNames.logits}`]];
  const plan = planMemory(graph, { ...cfg.plan, fusion, scratch: groupScratch(graph, fusion, target), keep });
  return { graph, ranges: ranges as PlannedInference['ranges'], fusion, plan, target };
}

/** The StepProgram with entry points `prefill` and `decode` and outputs `prefill.logits`, `decode.logits`. */
export function lowerInference(p: PlannedInference): StepProgram {
  const starts: number[] = [];
  const program = lowerStep(p.graph, p.plan, p.fusion, p.target, defaultLimits, starts);
  const dispatchAt = (node: number) => {
    const k = p.fusion.groups.findIndex((g) => g.nodes[0] >= node);
    return k < 0 ? program.dispatches.length : starts[k];
  };
  const entries = Object.fromEntries(Object.entries(p.ranges).map(([name, r]) => [name, { from: dispatchAt(r.from), to: dispatchAt(r.to) }]));
  const slot = (name: string, v: ValueId): TensorSlot => {
    const value = p.graph.values[v];
    const all = p.plan.buffers[p.plan.bufferOf[v]].pieces;
    const bytes = byteSize(value.shape, value.dtype);
    // A split output's pieces, each holding its share of the tensor's bytes in whole words (as lowerStep's slots).
    const pieces = all.map((q, j) => ({ ...q, bytes: Math.min(q.bytes, Math.ceil((bytes - j * all[0].bytes) / 4) * 4) }));
    const piece = pieces[0];
    return { name, arena: piece.arena, offset: piece.offset, bytes, shape: value.shape, dtype: value.dtype as TensorSlot['dtype'], ...(pieces.length > 1 ? { pieces } : {}) };
  };
  const outputs = ['prefill', 'decode'].map((s) => slot(`${s}.${inferenceNames.logits}`, p.graph.outputs![`${s}.${inferenceNames.logits}`]));
  return { ...program, entries, outputs };
}
