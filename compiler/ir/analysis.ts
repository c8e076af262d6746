// Facts derived from a graph. Nothing here is stored on the IR; every pass recomputes what it needs.
import type { Graph, Node, ValueId } from './types.ts';

/** The node that produces each value (undefined for inputs, params and state). */
export function producers(g: Graph): (Node | undefined)[] {
  const out = new Array<Node | undefined>(g.values.length).fill(undefined);
  for (const n of g.nodes) for (const o of n.outputs) out[o] = n;
  return out;
}

/** For each value, the indices (positions in g.nodes) of the nodes that read it, ascending. */
export function users(g: Graph): number[][] {
  const out: number[][] = g.values.map(() => []);
  g.nodes.forEach((n, i) => {
    for (const v of new Set(n.inputs)) out[v].push(i);
  });
  return out;
}

/** Values from which `targets` can be reached (the targets included). */
export function ancestors(g: Graph, targets: readonly ValueId[]): Set<ValueId> {
  const prod = producers(g);
  const seen = new Set<ValueId>();
  const stack = [...targets];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const n = prod[v];
    if (n) stack.push(...n.inputs);
  }
  return seen;
}

/** Counts nodes per phase. */
export function countByPhase(g: Graph): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of g.nodes) out[n.phase] = (out[n.phase] ?? 0) + 1;
  return out;
}
