// The inference plan in bytes, by the categories generation has: params, the key/value caches
// (persistent, planned as state), activations (values of the prefill or decode step) and
// workspace (kernels' scratch); each the most bytes of that category live at one moment.
import type { MemoryPlan } from '../ir/memory-plan.ts';

export interface InferenceBytes {
  readonly params: number;
  readonly kvCache: number;
  readonly activations: number;
  readonly workspace: number;
  /** The plan's peak: what the device allocates. */
  readonly total: number;
  readonly lowerBound: number;
}

export const inferenceCategories = [
  ['params', 'params'],
  ['kvCache', 'kv cache'],
  ['activations', 'activations'],
  ['workspace', 'workspace'],
] as const satisfies readonly (readonly [keyof InferenceBytes, string])[];

type Key = (typeof inferenceCategories)[number][0];

export function inferenceMemory(plan: MemoryPlan): InferenceBytes {
  const key = (b: MemoryPlan['buffers'][number]): Key =>
    b.category === 'params' ? 'params' : b.category === 'optimizerState' ? 'kvCache' : b.values.length === 0 ? 'workspace' : 'activations';
  const most: Record<Key, number> = { params: 0, kvCache: 0, activations: 0, workspace: 0 };
  const live = Array.from({ length: Math.max(plan.steps, 1) + 1 }, (): Record<Key, number> => ({ params: 0, kvCache: 0, activations: 0, workspace: 0 }));
  for (const b of plan.buffers)
    for (let i = b.start; i <= b.end && i < live.length; i++) live[i][key(b)] += b.bytes;
  for (const l of live) for (const k of Object.keys(most) as Key[]) most[k] = Math.max(most[k], l[k]);
  return { ...most, total: plan.peak, lowerBound: plan.lowerBound };
}
