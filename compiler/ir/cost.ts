// A FLOP estimate per node, for the recompute cost of checkpointing and for throughput reports.
// Matmul and attention count multiply-adds as 2 FLOPs; everything else is about one FLOP per
// element it writes (a few for transcendental ops), which is noise beside the matmuls.
import { numel } from './shape.ts';
import type { Graph, Node } from './types.ts';

export function nodeFlops(g: Graph, n: Node): number {
  const shape = (v: number) => g.values[v].shape;
  const out = n.outputs.reduce((a, o) => a + numel(shape(o)), 0);
  switch (n.op) {
    case 'matmul': {
      const a = shape(n.inputs[0]);
      const k = n.attrs.transA ? a[a.length - 2] : a[a.length - 1];
      return 2 * out * k;
    }
    case 'attention':
    case 'attentionGrad': {
      const q = shape(n.inputs[0]);
      const t = q[q.length - 2];
      const rows = numel(q) / q[q.length - 1];
      const pairs = n.attrs.causal ? (t + 1) / 2 : t;
      // q k^T and p v forward; backward also recomputes p and forms dp, dq, dk, dv.
      return (n.op === 'attention' ? 4 : 10) * rows * pairs * q[q.length - 1];
    }
    case 'linearCrossEntropy':
    case 'linearCrossEntropyGrad': {
      // The head matmul (2 FLOPs a multiply-add); backward recomputes it and forms dh and dW.
      const w = shape(n.inputs[1]);
      return (n.op === 'linearCrossEntropy' ? 2 : 6) * numel(shape(n.inputs[2])) * w[0] * w[1];
    }
    case 'reshape':
      return 0;
    default:
      return out;
  }
}

export const totalFlops = (g: Graph, nodes: readonly Node[]): number => nodes.reduce((a, n) => a + nodeFlops(g, n), 0);
