// Storage precision. Requires: a forward graph (not yet differentiated). Ensures: every f32 value
// (params, activations, float inputs, constants) is stored as `dtype`; integer values stay i32.
// Arithmetic stays f32 inside each kernel; only storage narrows (f16 or bf16 parameters and
// activations, as in the paper's setting). Statistics saved for a gradient (attention's lse) stay
// f32: a 16-bit log-sum-exp would put errors of 2^-11..2^-8 of its size into every probability.
// Returns its input when nothing changes.
import { CompilerBug } from '../diagnostics.ts';
import { statisticOutputs } from '../ir/ops.ts';
import type { DType, Graph, Node, ValueId } from '../ir/types.ts';

export function withStorage(g: Graph, dtype: 'f32' | 'f16' | 'bf16'): Graph {
  if (dtype === 'f32' || !g.values.some((v) => v.dtype === 'f32')) return g;
  if (g.grads) throw new CompilerBug('withStorage: narrow the forward graph before differentiating it');
  const narrow = (d: DType): DType => (d === 'f32' ? dtype : d);
  const stats = new Set<ValueId>(g.nodes.flatMap((n) => (statisticOutputs[n.op] ?? []).map((k) => n.outputs[k])));
  return {
    ...g,
    values: g.values.map((v) => (v.dtype === 'f32' && !stats.has(v.id) ? { ...v, dtype } : v)),
    nodes: g.nodes.map((n): Node => (n.op === 'fill' ? { ...n, attrs: { ...n.attrs, dtype: narrow(n.attrs.dtype) } } : n)),
  };
}
