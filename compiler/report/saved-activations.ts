// What a planned step saves for backward: its activation buffers grouped by the op and the model
// line that made them, largest first. docs/memory.md's count of LLaMA-7B's activations comes from this.
import { fmtLoc } from '../diagnostics.ts';
import type { MemoryPlan } from '../ir/memory-plan.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';

export interface SavedGroup {
  readonly op: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly where: string;
  readonly buffers: number;
  readonly bytes: number;
}

export function savedActivations(g: Graph, plan: MemoryPlan): SavedGroup[] {
  const made = new Map<ValueId, Node>();
  for (const n of g.nodes) for (const o of n.outputs) made.set(o, n);
  const groups = new Map<string, SavedGroup>();
  for (const b of plan.buffers) {
    if (b.category !== 'activations') continue;
    const v = g.values[b.values[0]];
    const op = made.get(v.id)?.op ?? v.role;
    const key = `${op} ${v.shape} ${v.dtype} ${fmtLoc(v.loc)}`;
    const e = groups.get(key) ?? { op, shape: v.shape, dtype: v.dtype, where: fmtLoc(v.loc), buffers: 0, bytes: 0 };
    groups.set(key, { ...e, buffers: e.buffers + 1, bytes: e.bytes + b.bytes });
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes || a.where.localeCompare(b.where));
}
