// Activation checkpointing: recompute instead of store.
// Requires: a graph with its optimizer step (appendOptimizer), in textbook order, and a set of
// disjoint segments, each a set of forward nodes. Ensures: no backward-pass node reads a value
// made inside a segment and not read by forward work outside it (the segment's internals);
// instead, right before the first backward node of each pass (pass-1 norm clones, pass-2
// backward) that needs them, the segment's forward nodes that make them run again (phase
// 'recompute', same ops on the same inputs, so the same bits). Internals then die in forward;
// what the segment reads from outside (its checkpoints, params, inputs) stays live until the
// recompute. Recompute nodes read params' old values, so the schedule keeps updates after them.
// Applied again to its own output (nested runs), the earlier recompute nodes count as readers of
// the pass they were placed for, so a run's internal block inputs are themselves recomputed.
// Cost: O(n) in nodes: each recompute walks its own segment's nodes, never the whole graph.
import type { Graph, Node, ValueId } from '../ir/types.ts';
import { GraphBuilder } from '../ir/builder.ts';

export type Segment = readonly number[];

/** The backward passes: pass-1 clones of a two-pass clip-norm step, and the backward proper. */
const passOf = (n: Node): 'norm' | 'backward' | undefined =>
  n.phase === 'backward' ? 'backward' : n.phase === 'norm' && n.op !== 'sumSquares' && n.op !== 'clipFactor' ? 'norm' : undefined;

export function recomputeSegments(g: Graph, segments: readonly Segment[]): Graph {
  if (segments.length === 0) return g;
  // Applied again to a checkpointed graph (nested runs), earlier recompute nodes are readers too:
  // each belongs to the pass of the node it was placed before.
  const passAt = g.nodes.map(passOf);
  for (let i = g.nodes.length - 2; i >= 0; i--) if (g.nodes[i].phase === 'recompute') passAt[i] = passAt[i + 1];
  // Each segment's nodes in schedule order (node ids are positions): a recompute walks its own segment, not the graph.
  const orderedSegments = segments.map((s) => [...s].sort((a, c) => a - c));
  const segmentOf = new Map<number, number>();
  segments.forEach((s, k) => s.forEach((i) => segmentOf.set(i, k)));
  const producer = new Map<ValueId, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);

  // Internals: made in segment k, read by no forward node outside it, and not the loss.
  const internalOf = new Map<ValueId, number>();
  for (const n of g.nodes) {
    const k = segmentOf.get(n.id);
    if (n.phase === 'forward' && k !== undefined) for (const o of n.outputs) if (o !== g.loss) internalOf.set(o, k);
  }
  for (const n of g.nodes) {
    if (n.phase !== 'forward') continue;
    for (const x of n.inputs) if (internalOf.has(x) && internalOf.get(x) !== segmentOf.get(n.id)) internalOf.delete(x);
  }

  // For each (segment, pass): the first reader of an internal value, and the values read.
  type Need = { first: number; reads: Set<ValueId> };
  const needs = new Map<string, Need>();
  g.nodes.forEach((n, i) => {
    const pass = passAt[i];
    if (!pass) return;
    for (const x of n.inputs) {
      const k = internalOf.get(x);
      if (k === undefined) continue;
      const key = `${k}:${pass}`;
      const need = needs.get(key) ?? { first: i, reads: new Set() };
      need.reads.add(x);
      needs.set(key, need);
    }
  });

  const b = new GraphBuilder(g.name, { ...g, nodes: [] });
  const before = new Map<number, { k: number; pass: string; need: Need }[]>();
  for (const [key, need] of needs) {
    const [k, pass] = key.split(':');
    const list = before.get(need.first);
    if (list) list.push({ k: Number(k), pass, need });
    else before.set(need.first, [{ k: Number(k), pass, need }]);
  }
  const renamed = new Map<string, Map<ValueId, ValueId>>(); // pass -> internal value -> recomputed value
  for (const pass of ['norm', 'backward']) renamed.set(pass, new Map());

  // A recompute node keeps its original's block, so reports can say what was recomputed.
  const emit = (n: Node, inputs: readonly ValueId[], phase: Node['phase']): ValueId[] => {
    const outs = b.node(n.op, inputs, n.attrs as never, n.loc, phase, n.outputs.map((o) => g.values[o].role));
    if (n.block !== undefined) b.nodes[b.nodes.length - 1] = { ...b.nodes[b.nodes.length - 1], block: n.block };
    return outs;
  };
  g.nodes.forEach((n, i) => {
    for (const { k, pass, need } of (before.get(i) ?? []).sort((a, c) => a.k - c.k)) {
      const map = renamed.get(pass)!;
      // Only the segment's nodes that lead to the values this pass reads.
      const wanted = new Set<Node>();
      const stack = [...need.reads];
      while (stack.length) {
        const p = producer.get(stack.pop()!)!;
        if (wanted.has(p)) continue;
        wanted.add(p);
        for (const x of p.inputs) if (internalOf.get(x) === k) stack.push(x);
      }
      for (const p of orderedSegments[k].map((id) => g.nodes[id])) {
        if (!wanted.has(p)) continue;
        const outs = emit(p, p.inputs.map((x) => (internalOf.get(x) === k ? map.get(x)! : x)), 'recompute');
        p.outputs.forEach((o, j) => map.set(o, outs[j]));
      }
    }
    const pass = passAt[i];
    const map = pass ? renamed.get(pass)! : undefined;
    const inputs = map ? n.inputs.map((x) => map.get(x) ?? x) : n.inputs;
    if (inputs.every((x, j) => x === n.inputs[j])) b.nodes.push({ ...n, id: b.nodes.length });
    else b.nodes.push({ ...n, id: b.nodes.length, inputs });
  });
  return { ...g, values: b.values, nodes: b.nodes };
}
