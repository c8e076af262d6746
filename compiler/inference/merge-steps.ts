// Two inference steps in one graph, so one memory plan serves both and one program carries both.
// Requires: steps made by chunkStep from the same forward graph (the same params and caches, by
// name). Ensures: the first step's nodes, then the second's; params and caches are shared values
// (one storage each); inputs and logits are prefixed with each step's name ("prefill.tokens");
// `ranges` gives each step's node range; the loss is the last step's logits.
import { CompilerBug } from '../diagnostics.ts';
import type { Graph, Node, StateDecl, Value, ValueId } from '../ir/types.ts';
import { inferenceNames } from './chunk-step.ts';

export interface MergedSteps {
  readonly graph: Graph;
  /** Node index ranges [from, to) of each step, by step name. */
  readonly ranges: Readonly<Record<string, { readonly from: number; readonly to: number }>>;
}

export function mergeSteps(name: string, steps: readonly { readonly name: string; readonly graph: Graph }[]): MergedSteps {
  const values: Value[] = [];
  const nodes: Node[] = [];
  const inputs: Graph['inputs'][number][] = [];
  const outputs: Record<string, ValueId> = {};
  const ranges: Record<string, { from: number; to: number }> = {};
  const first = steps[0].graph;
  const shared = new Map<string, ValueId>(); // param and cache values by name
  let params: Graph['params'] = [];
  let state: StateDecl[] = [];
  for (const { name: step, graph: g } of steps) {
    const map = new Map<ValueId, ValueId>();
    const named = new Map<ValueId, string>([...g.params.map((p) => [p.value, `param:${p.name}`] as const), ...(g.state ?? []).map((s) => [s.value, `cache:${s.name}`] as const)]);
    for (const v of g.values) {
      const key = named.get(v.id);
      if (key && shared.has(key)) {
        map.set(v.id, shared.get(key)!);
        continue;
      }
      const id = values.length;
      values.push({ ...v, id });
      map.set(v.id, id);
      if (key) shared.set(key, id);
    }
    const from = nodes.length;
    for (const n of g.nodes)
      nodes.push({ ...n, id: nodes.length, inputs: n.inputs.map((x) => map.get(x)!), outputs: n.outputs.map((x) => map.get(x)!) } as Node);
    ranges[step] = { from, to: nodes.length };
    for (const d of g.inputs) {
      const id = map.get(d.value)!;
      values[id] = { ...values[id], name: `${step}.${d.name}` };
      inputs.push({ ...d, name: `${step}.${d.name}`, value: id });
    }
    outputs[`${step}.${inferenceNames.logits}`] = map.get(g.loss)!;
    if (g === first) {
      params = g.params.map((p) => ({ ...p, value: map.get(p.value)! }));
      state = (g.state ?? []).map((s) => ({ ...s, value: map.get(s.value)!, next: map.get(s.next)! }));
    } else if (g.params.length !== first.params.length || (g.state ?? []).length !== state.length)
      throw new CompilerBug(`mergeSteps: step '${step}' has other params or caches than '${steps[0].name}'`);
  }
  const loss = outputs[`${steps[steps.length - 1].name}.${inferenceNames.logits}`];
  // verify's rule for inference graphs: the value read back in the loss's place is the logits.
  return { graph: { name, values, nodes, inputs, params, loss, state, outputs: { ...outputs, [inferenceNames.logits]: loss } }, ranges };
}
