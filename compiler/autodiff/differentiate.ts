// Reverse-mode autodiff. Requires: a verified forward graph with a scalar loss. Ensures: the
// same graph with backward nodes appended (phase 'backward', each carrying the loc of the forward
// node it differentiates) and `grads` naming every param's complete gradient. A param used in
// several places gets the sum of its contributions, accumulated as they arrive so at most one
// partial sum per param is alive; a param that does not reach the loss gets zeros.
// Cost: O(nodes + values): one reverse sweep, each VJP rule emitting a bounded number of nodes.
import { CompilerBug } from '../diagnostics.ts';
import { ancestors } from '../ir/analysis.ts';
import { GraphBuilder } from '../ir/builder.ts';
import { type Op, statisticOutputs } from '../ir/ops.ts';
import { isFloat } from '../ir/shape.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';
import { VjpContext } from './vjp-context.ts';
import { vjpRules, type VjpRule } from './vjp-rules.ts';

/** Values that depend on some param: only these need gradients. */
function dependsOnParams(g: Graph): Set<ValueId> {
  const out = new Set<ValueId>(g.params.map((p) => p.value));
  for (const n of g.nodes) if (n.inputs.some((i) => out.has(i))) for (const o of n.outputs) out.add(o);
  return out;
}

/** Stands for a statistic's gradient, which no rule reads (an id no value has). */
const noGradient: ValueId = -1;

export function differentiate(g: Graph): Graph {
  if (g.grads) throw new CompilerBug(`differentiate: graph '${g.name}' already has gradients`);
  const b = new GraphBuilder(g.name, g);
  const onPath = dependsOnParams(g);
  const toLoss = ancestors(g, [g.loss]);
  const needs = (v: ValueId) => onPath.has(v) && toLoss.has(v) && isFloat(g.values[v].dtype);
  const paramIds = new Set(g.params.map((p) => p.value));

  // The running gradient of each value: contributions are added as soon as they arrive.
  const grad = new Map<ValueId, ValueId>();
  const contribute = (v: ValueId, dv: ValueId, loc: Node['loc']) => {
    const prev = grad.get(v);
    if (prev === undefined) grad.set(v, dv);
    else grad.set(v, b.node('add', [prev, dv], {}, loc, 'backward', paramIds.has(v) ? 'grad' : 'activation')[0]);
  };

  const lossValue = g.values[g.loss];
  const seed = b.node('fill', [], { value: 1, shape: [], dtype: lossValue.dtype }, lossValue.loc, 'backward')[0];
  grad.set(g.loss, seed);

  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    const need = n.inputs.map(needs);
    if (!need.some(Boolean)) continue;
    const dys = n.outputs.map((o) => grad.get(o));
    if (dys.every((d) => d === undefined)) continue;
    const rule = vjpRules[n.op] as VjpRule<Op> | null;
    if (!rule) throw new CompilerBug(`differentiate: ${n.op} has no VJP rule (second derivatives are not supported)`);
    // An output nobody differentiated (one of several) contributes a zero gradient; a statistic
    // (attention's lse) has no gradient, and its rule reads none.
    const stats = statisticOutputs[n.op] ?? [];
    const zero = (k: number) => b.node('fill', [], { value: 0, shape: g.values[n.outputs[k]].shape, dtype: g.values[n.outputs[k]].dtype }, n.loc, 'backward')[0];
    const filled = dys.map((d, k) => d ?? (stats.includes(k) ? noGradient : zero(k)));
    const fresh = b.values.length;
    const dxs = rule(new VjpContext(b, n.loc), n as never, filled, need);
    n.inputs.forEach((x, k) => {
      const dx = dxs[k];
      if (!need[k] || dx === undefined) return;
      // A param's contribution made by this rule is gradient memory (a partial sum when tied).
      if (paramIds.has(x) && dx >= fresh) b.setValue(dx, { role: 'grad' });
      contribute(x, dx, n.loc);
    });
  }

  const grads: Record<string, ValueId> = {};
  // What isShared asks, kept as sets (a scan of every node per param was quadratic).
  const gradValues = new Set<ValueId>();
  const readByBackward = new Set<ValueId>();
  for (const n of b.nodes) if (n.phase === 'backward') for (const x of n.inputs) readByBackward.add(x);
  for (const p of g.params) {
    const v = g.values[p.value];
    let dv = grad.get(p.value) ?? b.node('fill', [], { value: 0, shape: v.shape, dtype: v.dtype }, p.loc, 'backward')[0];
    // A gradient that is also some other value (a bias whose gradient is passed through an add
    // unchanged) gets its own copy, so each param's gradient is a value of its own with role 'grad'.
    if (b.values[dv].role !== 'grad' && (gradValues.has(dv) || readByBackward.has(dv))) {
      readByBackward.add(dv);
      dv = b.node('scale', [dv], { c: 1 }, p.loc, 'backward')[0];
    }
    b.setValue(dv, { role: 'grad', name: `grad.${p.name}` });
    grads[p.name] = dv;
    gradValues.add(dv);
  }
  return { ...g, values: b.values, nodes: b.nodes, grads };
}
