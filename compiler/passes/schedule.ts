// The schedule pass: one linear order for the whole training step.
// Requires: a graph with an optimizer step (appendOptimizer). Ensures: the same nodes, renumbered
// in a topological order where, under LOMO,
//   - each update comes right after the last contribution to its gradient and after the last
//     read of the param's old value (forward, backward and recompute reads alike), so the
//     gradient dies right there;
//   - in a two-pass clip-norm step, each pass-1 gradient's squared norm is taken the moment the
//     gradient is complete, so pass-1 gradients die at once too; under one-pass clipping each
//     gradient's squared norm and its update's own factor come right before its update.
// Under `textbook` (sgd, adamw) the order is forward, backward, updates: all gradients live until
// the end, so one planner measures the three optimizers honestly; only the norm chain is hoisted,
// each squared norm right after its gradient (a scalar each, no bytes kept longer), so a weight
// gradient's matmul and its squared norm are one kernel as in LOMO's norm pass (passes/fuse.ts).
// Cost: O(n log n) in the number of nodes (reader lists built once, one sort).
import { CompilerBug } from '../diagnostics.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';

export type SchedulePolicy = 'lomo' | 'textbook';

/**
 * The running squared-norm sum: sumSquares nodes and the adds that only combine them, and under
 * one-pass clipping each update's own factor from the sum so far (not the final norm, which stays last).
 */
function normChain(g: Graph): Set<Node> {
  const chain = new Set<Node>();
  const values = new Set<ValueId>();
  for (const n of g.nodes) {
    if (n.phase !== 'norm') continue;
    const ownFactor = n.op === 'clipFactor' && n.attrs.previous === true && n.attrs.result !== 'norm' && values.has(n.inputs[0]);
    if (n.op === 'sumSquares' || ownFactor || (n.op === 'add' && n.inputs.every((x) => values.has(x)))) {
      chain.add(n);
      values.add(n.outputs[0]);
    }
  }
  return chain;
}

/**
 * The input order is the textbook one (appendOptimizer builds forward, norm pass, backward,
 * updates; the checkpoint pass inserts recomputes where they are read). Under `textbook` the norm
 * chain is hoisted; under `lomo` updates and the norm chain are.
 */
export function schedule(g: Graph, policy: SchedulePolicy): Graph {
  if (!g.updates) throw new CompilerBug('schedule: the graph has no optimizer step');
  const chain = normChain(g);
  if (policy === 'textbook' && chain.size === 0) return g;
  const order = hoist(g, (n) => (n.phase === 'update' && policy === 'lomo') || chain.has(n));
  if (order.every((n, i) => n === g.nodes[i])) return g;
  const nodes = order.map((n, i) => (n.id === i ? n : { ...n, id: i }));
  const out = { ...g, nodes };
  checkTopological(out);
  return out;
}

/**
 * Moves each hoisted node to just after the latest node it must follow. Keys are
 * [position of the anchoring base node, sequence]: a hoisted node sorts after its anchor and after
 * every node hoisted before it to the same anchor, and never later than it was.
 */
function hoist(g: Graph, isHoisted: (n: Node) => boolean): Node[] {
  const base = g.nodes;
  const producer = new Map<ValueId, Node>();
  for (const n of base) for (const o of n.outputs) producer.set(o, n);
  const readers = new Map<ValueId, Node[]>();
  for (const n of base)
    for (const x of n.inputs) {
      const rs = readers.get(x);
      if (rs) rs.push(n);
      else readers.set(x, [n]);
    }
  const paramIds = new Set(g.params.map((p) => p.value));

  const key = new Map<Node, [number, number]>();
  base.forEach((n, i) => key.set(n, [i, 0]));
  let seq = 1;
  const later = (a: [number, number], b: [number, number]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
  for (const n of base) {
    if (!isHoisted(n)) continue;
    const deps: Node[] = [];
    for (const x of n.inputs) {
      const p = producer.get(x);
      if (p) deps.push(p);
      // An update overwrites the param in place: every other reader of the old value goes first.
      if (n.phase === 'update' && paramIds.has(x)) for (const r of readers.get(x) ?? []) if (r !== n) deps.push(r);
    }
    let k: [number, number] = [-1, 0];
    for (const d of deps) if (later(key.get(d)!, k)) k = key.get(d)!;
    key.set(n, [k[0], seq++]);
  }
  return [...base].sort((a, b) => {
    const ka = key.get(a)!;
    const kb = key.get(b)!;
    return ka[0] - kb[0] || ka[1] - kb[1];
  });
}

function checkTopological(g: Graph): void {
  const defined = new Set<ValueId>([...g.inputs, ...g.params, ...(g.state ?? [])].map((d) => d.value));
  for (const n of g.nodes) {
    for (const x of n.inputs) if (!defined.has(x)) throw new CompilerBug(`schedule: ${n.op} reads %${x} before it is made`);
    for (const o of n.outputs) defined.add(o);
  }
}
