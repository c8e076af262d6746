// Storage precision. Requires: a forward graph (not yet differentiated). Ensures: every f32 value
// (params, activations, float inputs, constants) is stored as `dtype`; integer values stay i32.
// Arithmetic stays f32 inside each kernel; only storage narrows (f16 or bf16 parameters and
// activations, as in the paper's setting). Returns its input when nothing changes.
import { CompilerBug } from '../diagnostics.ts';
import type { DType, Graph, Node } from '../ir/types.ts';

export function withStorage(g: Graph, dtype: 'f32' | 'f16' | 'bf16'): Graph {
  if (dtype === 'f32' || !g.values.some((v) => v.dtype === 'f32')) return g;
  if (g.grads) throw new CompilerBug('withStorage: narrow the forward graph before differentiating it');
  const narrow = (d: DType): DType => (d === 'f32' ? dtype : d);
  return {
    ...g,
    values: g.values.map((v) => (v.dtype === 'f32' ? { ...v, dtype } : v)),
    nodes: g.nodes.map((n): Node => (n.op === 'fill' ? { ...n, attrs: { ...n.attrs, dtype: narrow(n.attrs.dtype) } } : n)),
  };
}
