// `lomoc plan --inference`: the inference program's memory (prefill and decode steps in one plan,
// compiler/inference) by category: params, kv cache, activations, workspace; beside it the LOMO
// training step's peak at the model's own batch, for scale.
import { LomocError } from '../compiler/diagnostics.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import { compileInference, planInference } from '../compiler/inference/compile-inference.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { inferenceCategories, inferenceMemory } from '../compiler/report/inference-memory.ts';
import type { OptionValue } from './args.ts';
import { fmtBytes } from '../contract/units.ts';
import type { Io } from './report.ts';

export function inferencePlan(def: ModelDef, values: Readonly<Record<string, OptionValue>>, io: Io): number {
  for (const o of ['optimizer', 'checkpoint', 'clip-norm', 'clip-value', 'timeline', 'batch'])
    if (values[o] !== undefined) throw new LomocError(`lomoc plan: option '--${o}' is for the training step; --inference plans generation (batch 1)`);
  const preset = values.preset as string | undefined;
  const sets = [...((values.set as string[] | undefined) ?? []), ...(values.seq !== undefined ? [`seq=${values.seq as string}`] : [])];
  const dtype = (values.dtype as 'f32' | 'f16' | undefined) ?? 'f32';
  const target = values.target === 'cpu' ? 'cpu' : 'gpu';
  const c = compileInference(def, { preset, sets, dtype });
  const planned = planInference(c, { target });
  const bytes = inferenceMemory(planned.plan);
  const training = compileStep(def, { preset, sets, dtype, optimizer: 'lomo', target });
  const result = {
    model: def.name, preset: preset ?? def.defaultPreset, context: c.context, chunk: c.chunk, dtype, ...bytes,
    caches: (c.decode.state ?? []).length, training: { optimizer: 'lomo', batch: training.config.batch ?? null, total: training.plan.peak },
  };
  if (values.json) {
    io.out(JSON.stringify(result));
    return 0;
  }
  const w = 12;
  io.out([
    `inference   ${def.name}, preset ${result.preset}: batch 1, context ${c.context}, prefill ${c.chunk} tokens a call, decode 1; dtype ${dtype}`,
    ...inferenceCategories.map(([k, label]) => `${label.padEnd(w)}${fmtBytes(bytes[k])}`),
    `${'total'.padEnd(w)}${fmtBytes(bytes.total)} (the plan's peak; lower bound ${fmtBytes(bytes.lowerBound)})`,
    `${'training'.padEnd(w)}${fmtBytes(training.plan.peak)} (the lomo step at batch ${String(training.config.batch ?? '-')}, for scale)`,
  ].join('\n'));
  return 0;
}
