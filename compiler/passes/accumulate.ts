// Gradient accumulation as one graph: K micro-batches, one update (--accumulate K).
// Requires: `micro`, the forward graph traced at the micro-batch, and `full`, the same model traced
// at K micro-batches (only its inputs' shapes are read); K >= 1.
// Ensures: a forward graph with `full`'s inputs (a step's K micro-batches, concatenated), `micro`'s
// params, and K copies of `micro`'s forward: copy k reads slice k of each batched input (along the
// one axis where full's shape is K times micro's) and every unbatched input whole. The loss is
// (L_0 + ... + L_{K-1}) * (1/K): for a loss that is a mean over the batch it equals the loss of one
// batch of K x b in exact arithmetic, and autodiff sums each param's K contributions in place
// (lifetimes.ts). K = 1 returns `micro` itself.
//
// Order (layer-major): the forward is cut into units, each marked block (or, in a model that marks
// none, each node) and each run of unmarked nodes between blocks, and every unit runs for
// micro-batches 0..K-1 before the next. Autodiff's reverse sweep then does each unit's backward
// for micro-batches K-1..0 before the unit below it, so a param's K contributions arrive together
// and, under LOMO, its update follows at once: only one unit's gradients are alive. Copy k of
// block B is a block of its own (`B#k`), so checkpointing keeps and recomputes per micro-batch.
import { LomocError } from '../diagnostics.ts';
import { GraphBuilder } from '../ir/builder.ts';
import { fmtShape } from '../ir/shape.ts';
import type { BlockDecl, Graph, Node, Shape, ValueId } from '../ir/types.ts';

/** The axis along which `full` holds K copies of `micro`, or -1 for an unbatched input; undefined when neither. */
function batchAxis(micro: Shape, full: Shape, k: number): number | undefined {
  if (micro.length !== full.length) return undefined;
  const differ = micro.flatMap((d, i) => (d === full[i] ? [] : [i]));
  if (differ.length === 0) return -1;
  return differ.length === 1 && full[differ[0]] === k * micro[differ[0]] ? differ[0] : undefined;
}

/** Consecutive forward nodes run together for every micro-batch: a block's run, or (no blocks) one node. */
function unitsOf(g: Graph): Node[][] {
  const units: Node[][] = [];
  const marked = (g.blocks?.length ?? 0) > 0;
  g.nodes.forEach((n, i) => {
    if (i > 0 && marked && n.block === g.nodes[i - 1].block) units[units.length - 1].push(n);
    else units.push([n]);
  });
  return units;
}

export function accumulateMicroBatches(micro: Graph, full: Graph, k: number, batch: number): Graph {
  if (k === 1) return micro;
  const what = `--accumulate ${k}`;
  const b = new GraphBuilder(micro.name);
  const fullInputs = new Map(full.inputs.map((d) => [d.name, d]));
  // Per micro-batch: micro's value -> this graph's value (params and unbatched inputs are shared).
  const maps = Array.from({ length: k }, () => new Map<ValueId, ValueId>());
  const slices: (() => void)[] = [];
  for (const d of micro.inputs) {
    const v = micro.values[d.value];
    const f = fullInputs.get(d.name);
    const fv = f && full.values[f.value];
    const axis = fv && fv.dtype === v.dtype ? batchAxis(v.shape, fv.shape, k) : undefined;
    if (!fv || axis === undefined)
      throw new LomocError(
        `${what}: input '${d.name}' must have the same shape at batch ${batch} and at batch ${k * batch}, or one axis ${k} times as long; got ${v.dtype}${fmtShape(v.shape)} and ${fv ? `${fv.dtype}${fmtShape(fv.shape)}` : 'no such input'}`,
        d.loc,
      );
    const id = b.value(fv.shape, fv.dtype, 'input', d.loc, d.name);
    b.inputs.push({ name: d.name, value: id, loc: d.loc });
    if (axis < 0) maps.forEach((m) => m.set(d.value, id));
    else
      maps.forEach((m, j) =>
        slices.push(() => {
          const starts = v.shape.map((_, i) => (i === axis ? j * v.shape[axis] : 0));
          const ends = fv.shape.map((s, i) => (i === axis ? (j + 1) * v.shape[axis] : s));
          m.set(d.value, b.node('slice', [id], { starts, ends }, d.loc, 'forward')[0]);
        }),
      );
  }
  for (const p of micro.params) {
    const v = micro.values[p.value];
    const id = b.value(v.shape, v.dtype, 'param', p.loc, p.name);
    b.params.push({ ...p, value: id });
    maps.forEach((m) => m.set(p.value, id));
  }
  slices.forEach((s) => s()); // token ids: a few bytes per micro-batch, made up front

  const blocks: BlockDecl[] = (micro.blocks ?? []).flatMap((d) => Array.from({ length: k }, (_, j) => ({ ...d, name: `${d.name}#${j}` })));
  for (const unit of unitsOf(micro))
    maps.forEach((m, j) => {
      for (const n of unit) {
        b.block = n.block === undefined ? undefined : n.block * k + j;
        const outs = b.node(n.op, n.inputs.map((x) => m.get(x)!), n.attrs as never, n.loc, 'forward', n.outputs.map((o) => micro.values[o].role));
        n.outputs.forEach((o, i) => m.set(o, outs[i]));
      }
    });
  b.block = undefined;

  // The mean of the K losses, summed in micro-batch order.
  const loc = micro.values[micro.loss].loc;
  let total = maps[0].get(micro.loss)!;
  for (let j = 1; j < k; j++) total = b.node('add', [total, maps[j].get(micro.loss)!], {}, loc, 'forward')[0];
  const loss = b.node('scale', [total], { c: 1 / k }, loc, 'forward', micro.values[micro.loss].role)[0];
  return {
    name: micro.name,
    values: b.values,
    nodes: b.nodes,
    inputs: b.inputs,
    params: b.params,
    loss,
    ...(blocks.length ? { blocks } : {}),
    // Marks only (the bundle's inference program is compiled from the model): micro-batch 0's.
    ...(micro.outputs ? { outputs: Object.fromEntries(Object.entries(micro.outputs).map(([k, v]) => [k, maps[0].get(v)!])) } : {}),
  };
}
