// Lifetimes: which values share storage, and when each storage is live in a scheduled step.
// Analysis only; plan-memory.ts places what this finds. Cost: O(nodes + values) (union-find with
// path compression).
//   - An update writes the param's new value over the old one, and a state update its state
//     (in place: the schedule guarantees nothing reads the old value afterwards).
//   - A key/value cache write writes into the cache (inference programs); a window update
//     (width chunks) into its param and states.
//   - A reshape is a view of its input unless the input outlives the step (a view of a param
//     would see the in-place update).
//   - A tied param's partial gradient sum accumulates in place, as does a backward running sum of
//     matmul partials (an input's gradient summed slice by slice) and a sum a matmul's epilogue
//     adds its product to (y = acc + a b, acc dying there: width slices' dm). Each output element
//     reads its own addend element, and nothing else in that dispatch reads the addend.
//   - Everything else gets storage of its own, live from the node that makes it to its last
//     reader; the loss stays to the end, where it is read back.
import { byteSize } from '../ir/shape.ts';
import type { Category, Lifetime } from '../ir/memory-plan.ts';
import type { Fusion } from '../ir/fusion.ts';
import type { Graph, ValueId } from '../ir/types.ts';

export type { Lifetime };

const rank: Readonly<Record<Category, number>> = { params: 0, optimizerState: 1, grads: 2, activations: 3, workspace: 4 };

/**
 * With `fusion`, a group's nodes run as one dispatch: everything it reads stays live until its last
 * node, everything it writes is live from its first, and values internal to it get no storage.
 * `scratch` gives the bytes of each group's temporary buffers (reductions' partial results),
 * live only while the group runs. Returns, per group, the indices of its scratch buffers.
 */
export function lifetimes(
  g: Graph,
  fusion?: Fusion,
  scratch?: (group: number) => readonly number[],
  keep: readonly ValueId[] = [],
): { readonly buffers: Lifetime[]; readonly bufferOf: number[]; readonly scratchOf: number[][] } {
  const last = g.nodes.length - 1;
  const root = g.values.map((v) => v.id);
  const find = (v: ValueId): ValueId => (root[v] === v ? v : (root[v] = find(root[v])));
  const persistent = new Set<ValueId>([...g.params.map((p) => p.value), ...(g.state ?? []).map((s) => s.value)]);

  for (const s of g.state ?? []) root[s.next] = find(s.value);
  for (const p of g.params) if (g.updates?.[p.name] !== undefined) root[g.updates[p.name]] = find(p.value);
  // The last read of each storage class so far (a class: a value and its views).
  const lastRead = new Array<number>(g.values.length).fill(-1);
  g.nodes.forEach((n, i) => n.inputs.forEach((x) => (lastRead[x] = i)));
  const join = (v: ValueId, into: ValueId) => {
    const r = find(into);
    root[v] = r;
    lastRead[r] = Math.max(lastRead[r], lastRead[v]);
  };
  const groupOf = new Map<number, readonly number[]>();
  const epilogueOf = new Map<number, readonly number[]>();
  for (const grp of fusion?.groups ?? []) for (const i of grp.nodes) {
    groupOf.set(i, grp.nodes);
    if (grp.kind === 'matmulEpilogue') epilogueOf.set(i, grp.nodes);
  }
  /** Node i is the only node of its kernel group that reads `acc` (so writing over it is safe). */
  const aloneReading = (i: number, acc: ValueId) => (groupOf.get(i) ?? [i]).filter((j) => g.nodes[j].inputs.some((x) => find(x) === find(acc))).length === 1;
  /** The addend of an epilogue add that may be overwritten by the add's output. */
  const epilogueAddend = (i: number): ValueId | undefined => {
    const nodes = epilogueOf.get(i);
    const n = g.nodes[i];
    if (!nodes || n.op !== 'add' || nodes[0] === i) return undefined;
    const made = new Set(nodes.flatMap((j) => g.nodes[j].outputs));
    const outside = n.inputs.filter((x) => !made.has(x));
    if (outside.length !== 1) return undefined;
    const acc = outside[0];
    const [out, av] = [g.values[n.outputs[0]], g.values[acc]];
    return aloneReading(i, acc) && lastRead[find(acc)] === i && !persistent.has(find(acc)) && av.dtype === out.dtype &&
      av.shape.length === out.shape.length && av.shape.every((d, k) => d === out.shape[k]) ? acc : undefined;
  };
  const made = new Map<ValueId, Graph['nodes'][number]>();
  for (const n of g.nodes) for (const o of n.outputs) made.set(o, n);
  g.nodes.forEach((n, i) => {
    if (n.op === 'reshape' && !persistent.has(find(n.inputs[0]))) join(n.outputs[0], n.inputs[0]);
    const addend = epilogueAddend(i);
    if (addend !== undefined) join(n.outputs[0], addend);
    // A key/value cache write is in place: the inference rewrite reads the old cache nowhere after.
    if (n.op === 'cacheWrite') join(n.outputs[0], n.inputs[0]);
    // A window update writes its window of the param (and states) in place; the chain's last value is the update.
    if (n.op === 'optimizerUpdate' && n.attrs.window) {
      const a = n.attrs;
      join(n.outputs[0], n.inputs[a.inputs.p]);
      a.states.forEach((s, k) => join(n.outputs[k + 1], n.inputs[a.inputs[s]]));
    }
    // A partial gradient sum accumulates in place (grad += contribution) when the old sum, and
    // every view of it, dies here; so does a backward running sum of matmul partials (an input's
    // gradient summed over width or head slices, dm += dgate_j W1_j^T).
    const [acc, part] = n.inputs;
    const running = n.phase === 'backward' && made.get(acc)?.phase === 'backward' && (made.get(acc)?.op === 'add' || made.get(acc)?.op === 'matmul') && made.get(part)?.op === 'matmul' &&
      g.values[acc].role === 'activation' && g.values[n.outputs[0]].role === 'activation' && g.values[acc].dtype === g.values[n.outputs[0]].dtype;
    if (n.op === 'add' && ((running && aloneReading(i, acc)) || (g.values[n.outputs[0]].role === 'grad' && g.values[acc].role === 'grad')) &&
        acc !== part && lastRead[find(acc)] === i && !persistent.has(find(acc)) && g.values[acc].shape.length === g.values[n.outputs[0]].shape.length &&
        g.values[acc].shape.every((d, k) => d === g.values[n.outputs[0]].shape[k]))
      join(n.outputs[0], acc);
  });

  const def = new Array<number>(g.values.length).fill(-1);
  const lastUse = new Array<number>(g.values.length).fill(-1);
  const phaseOfDef = new Array<string>(g.values.length).fill('input');
  const readLater = new Array<boolean>(g.values.length).fill(false);
  const span = g.nodes.map((_, i): [number, number] => [i, i]);
  for (const grp of fusion?.groups ?? []) for (const i of grp.nodes) span[i] = [grp.nodes[0], grp.nodes[grp.nodes.length - 1]];
  g.nodes.forEach((n, i) => {
    for (const o of n.outputs) {
      def[o] = span[i][0];
      phaseOfDef[o] = n.phase;
    }
    for (const x of n.inputs) {
      lastUse[x] = Math.max(lastUse[x], span[i][1]);
      // Saved for backward: made by forward work (or fed), read by the backward half of the step.
      if (n.phase !== 'forward' && (phaseOfDef[x] === 'forward' || phaseOfDef[x] === 'input')) readLater[x] = true;
    }
  });
  for (const v of [g.loss, ...keep]) lastUse[v] = Math.max(last, def[v]);

  const classes = new Map<ValueId, ValueId[]>();
  for (const v of g.values) {
    const r = find(v.id);
    if (!classes.has(r)) classes.set(r, []);
    classes.get(r)!.push(v.id);
  }
  const internal = new Set(fusion?.internal ?? []);
  const bufferOf = new Array<number>(g.values.length).fill(-1);
  const buffers: Lifetime[] = [];
  for (const [r, members] of classes) {
    if (members.every((v) => internal.has(v))) continue; // lives in registers
    const isPersistent = persistent.has(r);
    const used = members.some((v) => def[v] >= 0 || lastUse[v] >= 0) || isPersistent;
    if (!used) continue; // declared but never read nor made: no storage
    let start = Infinity;
    let end = -Infinity;
    let category: Category = 'workspace';
    for (const v of members) {
      const val = g.values[v];
      start = Math.min(start, def[v] >= 0 ? def[v] : 0);
      end = Math.max(end, lastUse[v], def[v]);
      const c: Category =
        val.role === 'param' || val.role === 'update' ? 'params'
        : val.role === 'optstate' ? 'optimizerState'
        : val.role === 'grad' ? 'grads'
        : readLater[v] ? 'activations'
        : 'workspace';
      if (rank[c] < rank[category]) category = c;
    }
    if (isPersistent) [start, end] = [0, last];
    for (const v of members) bufferOf[v] = buffers.length;
    buffers.push({ values: members, category, bytes: byteSize(g.values[r].shape, g.values[r].dtype), start, end: Math.max(end, start), persistent: isPersistent });
  }
  const scratchOf = (fusion?.groups ?? []).map((grp, k) =>
    (scratch?.(k) ?? []).map((bytes) => {
      const [start, end] = [grp.nodes[0], grp.nodes[grp.nodes.length - 1]];
      buffers.push({ values: [], category: 'workspace', bytes, start, end, persistent: false });
      return buffers.length - 1;
    }),
  );
  return { buffers, bufferOf, scratchOf };
}
