// The verifier: run after every pass in tests. Checks that a graph is well formed SSA in
// topological order and that every node's output types follow its op's shape rule.
// Cost: O(nodes + values).
import { CompilerBug } from '../diagnostics.ts';
import { outputCount } from './ops.ts';
import { inferTypes, ShapeError } from './shape-rules.ts';
import { sameShape } from './shape.ts';
import type { Graph } from './types.ts';

/** Returns the problems found (empty when the graph is well formed). */
export function verifyProblems(g: Graph): string[] {
  const problems: string[] = [];
  const defined = new Set<number>();
  g.values.forEach((v, i) => {
    if (v.id !== i) problems.push(`value at index ${i} has id ${v.id}`);
  });
  for (const d of [...g.inputs, ...g.params, ...(g.state ?? []).map((s) => ({ value: s.value, name: s.name }))]) {
    if (defined.has(d.value)) problems.push(`value %${d.value} declared twice`);
    defined.add(d.value);
  }
  g.nodes.forEach((n, i) => {
    const where = `node #${i} (${n.op})`;
    if (n.id !== i) problems.push(`${where} has id ${n.id}`);
    for (const x of n.inputs) if (!defined.has(x)) problems.push(`${where} reads %${x} before it is defined`);
    // An update makes the param's new value and one new value per state its attrs name.
    const want = n.op === 'optimizerUpdate' ? 1 + n.attrs.states.length : outputCount[n.op] ?? 1;
    if (n.outputs.length !== want) problems.push(`${where} has ${n.outputs.length} outputs, expected ${want}`);
    for (const o of n.outputs) {
      if (defined.has(o)) problems.push(`${where} redefines %${o}`);
      defined.add(o);
    }
    try {
      const types = inferTypes(n.op, n.inputs.map((x) => g.values[x]), n.attrs as never);
      types.forEach((t, k) => {
        const v = g.values[n.outputs[k]];
        if (v && (!sameShape(v.shape, t.shape) || v.dtype !== t.dtype))
          problems.push(`${where} output %${v.id} is ${v.dtype}[${v.shape}], its rule says ${t.dtype}[${t.shape}]`);
      });
    } catch (e) {
      if (e instanceof ShapeError) problems.push(`${where}: ${e.message}`);
      else throw e;
    }
  });
  if (!defined.has(g.loss)) problems.push(`the loss %${g.loss} is never defined`);
  // An inference step reads back its logits in the loss's place.
  else if (g.values[g.loss].shape.length !== 0 && g.outputs?.logits !== g.loss) problems.push('the loss is not a scalar');
  for (const [name, v] of Object.entries({ ...g.grads, ...g.updates }))
    if (!defined.has(v)) problems.push(`result for '${name}' %${v} is never defined`);
  for (const p of g.params)
    if (g.grads && g.grads[p.name] !== undefined && !sameShape(g.values[g.grads[p.name]].shape, g.values[p.value].shape))
      problems.push(`gradient of '${p.name}' has the wrong shape`);
  return problems;
}

/** Throws a CompilerBug naming every problem; a pass that breaks the IR is a bug in lomoc. */
export function verify(g: Graph, after = 'a pass'): Graph {
  const problems = verifyProblems(g);
  if (problems.length) throw new CompilerBug(`IR verification failed after ${after}:\n  ${problems.join('\n  ')}`);
  return g;
}
