// Head-sliced attention: a recomputed block's attention runs over slices of its heads, the attention
// analogue of width slices (passes/width-chunk.ts). For slice j (heads [h0, h1), whole key/value
// groups under GQA): q_j = rope(a Wq[:, j]), k_j, v_j likewise, o_j = attention(q_j, k_j, v_j),
// out = sum_j o_j Wo[j, :]. Two loops: the recompute loop (where the recompute was) keeps only `out`;
// the backward loop recomputes q_j, k_j, v_j, o_j again, then do_j = dh Wo[j, :]^T, dWo[j, :] = o_j^T dh,
// (dq_j, dk_j, dv_j) = attentionGrad, dWq[:, j] = a^T dq_j ...: complete windows of the weight
// gradients, each updated at once by a window update (UpdateAttrs.window); da = sum_j (dq_j Wq[:, j]^T
// + dk_j Wk[:, j]^T + dv_j Wv[:, j]^T) is the only running sum. So no whole q, k, v or o is alive
// while the FFN's backward runs, and attentionGrad holds one slice's tensors.
// Requires: a checkpointed graph with its optimizer step, in textbook order; optimizers whose states
// all have the param's shape (a factored one is refused by the caller, as for width slices).
// Ensures: the same loss and updates up to the order of the head sums. A region grows from a
// recompute `attention` over values that carry a head axis (each slice takes the same fraction
// [h0/H, h1/H) of that axis): ops that act on each head apart (reshape, transpose, broadcastTo, sum,
// elementwise, rope, attention, attentionGrad), matmuls that make head values from rows (a @ Wq,
// dh @ Wo^T), matmuls that contract them (narrowing: partial sums), and X^T Y weight gradients.
// A region any of whose head values is read elsewhere, or whose params' gradients are not all its
// own, is left as it was. A region with no backward member (a nested run's recompute) is the
// recompute loop alone. The backward loop makes its own norm output `a` again (rmsNorm/layerNorm of
// inputs live after it anyway) and its own flattened rows, so `a` dies after the recompute loop.
// Left whole: attention whose q/k/v carry a bias (GPT; bias slices are not handled yet), multi-query
// attention (one key/value head: nothing to slice), and pass 1 of a two-pass clip.
// Sums: given the same inputs every head value, weight-gradient window and update is bit for bit
// the unsliced one (matmuls contract rows or D, never heads); `out` and `da` are partial sums added
// in slice order, so the recomputed x after attention (hence the FFN's gradients) and everything
// below differ by reassociation, as does sgd's clip-norm factor (window squares in window order);
// the loss is the forward's, bit for bit.
// Cost: O(n) in nodes per region, plus one pass over the graph to place the loops.
import { CompilerBug, LomocError } from '../diagnostics.ts';
import type { OpAttrs } from '../ir/ops.ts';
import { sameShape } from '../ir/shape.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';
import { chunkable, findHeadRegions, type HeadRegion } from './head-regions.ts';
import { chunkBounds, placeLoop } from './token-chunk.ts';
import { windowRewrite } from './window-rewrite.ts';

export { findHeadRegions, type HeadRegion };

/**
 * Runs each recomputed attention over `slices` slices of its heads (whole key/value groups); 1: `g`.
 * `strict` (the user asked for head slices): an attention that cannot be sliced is an error.
 */
export function chunkHeads(g: Graph, slices: number, opts: { readonly inBackward: boolean; readonly strict?: boolean }): Graph {
  if (!Number.isInteger(slices) || slices < 1) throw new CompilerBug(`chunkHeads: slice count ${slices}`);
  if (slices === 1) return g;
  const strict = opts.strict ?? false;
  if (strict) {
    const covered = new Set(findHeadRegions(g).flatMap((r) => [...r.kinds.keys()]));
    // (Pass 1 of a two-pass clip recomputes its own attention for its norm-phase gradient: left whole.)
    const readers = g.values.map((): Node[] => []);
    for (const n of g.nodes) for (const x of n.inputs) readers[x].push(n);
    const forNorm = (n: Node) => readers[n.outputs[1]].some((r) => r.phase === 'norm');
    const left = g.nodes.find((n) => n.op === 'attention' && n.phase === 'recompute' && !covered.has(n.id) && !forNorm(n));
    if (left) throw new LomocError(`--checkpoint ...,heads=${slices}: this recomputed attention cannot run over head slices (one of its head values is read outside it, or a weight's gradient is not its own)`, left.loc);
  }
  // One region at a time, found again after each rewrite (it renumbers nodes); a sliced attention
  // reads slices of its weights, not params, so it is not found again.
  let out = g;
  for (;;) {
    const next = findHeadRegions(out).reduce<Graph>((acc, r) => (acc !== out ? acc : rewriteRegion(out, r, slices, opts.inBackward, strict)), out);
    if (next === out) return out;
    out = next;
  }
}

function rewriteRegion(g: Graph, region: HeadRegion, slices: number, inBackward: boolean, strict: boolean): Graph {
  const { kinds, axes, heads, step } = region;
  if (inBackward && region.norms.size > 0) {
    if (!strict) return g;
    const up = g.nodes[[...region.updates.values()][0]];
    throw new LomocError(
      `--checkpoint ...,heads=${slices}: under --clip-mode previous each update inside backward needs its weight's whole gradient for the norm first, which head slices never make; use --clip-mode exact`, up.loc);
  }
  const units = heads / step;
  if (strict && slices > units)
    throw new LomocError(`--checkpoint ...,heads=${slices}: this attention has ${units} key/value head group${units === 1 ? '' : 's'}, so at most ${units} head slices, got ${slices}`, g.nodes[[...kinds.keys()][0]].loc);
  const body = [...kinds.keys()].sort((a, z) => a - z);
  const fwd = body.filter((i) => g.nodes[i].phase === 'recompute');
  const bwd = body.filter((i) => g.nodes[i].phase === 'backward');
  // The backward loop recomputes the recompute nodes whose head values backward reads (not the narrowing).
  const needed = new Set<number>();
  const producerIdx = new Map<ValueId, number>();
  for (const i of body) for (const o of g.nodes[i].outputs) producerIdx.set(o, i);
  const stack = bwd.flatMap((i) => g.nodes[i].inputs.filter((x) => axes.has(x)).map((x) => producerIdx.get(x)!));
  while (stack.length) {
    const i = stack.pop()!;
    if (needed.has(i) || g.nodes[i].phase !== 'recompute') continue;
    needed.add(i);
    for (const x of g.nodes[i].inputs) if (axes.has(x)) stack.push(producerIdx.get(x)!);
  }
  const bwdBody = [...fwd.filter((i) => needed.has(i)), ...bwd];
  // Narrowing partial sums in backward added by a tree of adds read nowhere else: one running sum per root.
  const readers = g.values.map((): number[] => []);
  g.nodes.forEach((n, i) => n.inputs.forEach((x) => readers[x].push(i)));
  const rootOf = new Map<ValueId, ValueId>(); // a narrowing output or tree add output -> the tree's root value
  const treeAdds = new Set<number>();
  for (const i of bwd.filter((k) => kinds.get(k) === 'narrow')) rootOf.set(g.nodes[i].outputs[0], g.nodes[i].outputs[0]);
  for (let grew = true; grew;) {
    grew = false;
    for (const n of g.nodes) {
      if (treeAdds.has(n.id) || n.op !== 'add' || !chunkable(n) || n.inputs.length !== 2 || n.inputs[0] === n.inputs[1]) continue;
      if (!n.inputs.every((x) => rootOf.get(x) === x && readers[x].length === 1)) continue;
      if (!n.inputs.every((x) => sameShape(g.values[x].shape, g.values[n.outputs[0]].shape) && g.values[x].dtype === g.values[n.outputs[0]].dtype)) continue;
      treeAdds.add(n.id);
      const o = n.outputs[0];
      for (const [v, root] of rootOf) if (n.inputs.includes(root)) rootOf.set(v, o);
      rootOf.set(o, o);
      grew = true;
    }
  }
  // (Not the updates: in textbook order they sit at the end; the loop runs them in their slice.)
  const lastBwd = bwd.length ? Math.max(...bwd, ...treeAdds) : undefined;
  // The backward loop makes its own flattened rows (views) and norm output `a` again, from inputs
  // live after it anyway (the block input, read by the norm's gradient), so `a` dies after the
  // recompute loop instead of living through the FFN's backward.
  const inBody = new Set(bwdBody);
  const feeders = lastBwd === undefined ? [] : g.nodes.filter((n) => n.op === 'reshape' && chunkable(n) && !kinds.has(n.id) && !axes.has(n.inputs[0]) &&
    readers[n.outputs[0]].length > 0 && readers[n.outputs[0]].every((r) => inBody.has(r))).map((n) => n.id);
  const producerOf = new Map<ValueId, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producerOf.set(o, n);
  const liveAfter = (x: ValueId) => g.values[x].role === 'param' || g.values[x].role === 'input' || readers[x].some((r) => lastBwd !== undefined && r > lastBwd);
  const renorms = lastBwd === undefined ? [] : [...new Set([...bwdBody, ...feeders].flatMap((i) => g.nodes[i].inputs))]
    .map((x) => producerOf.get(x))
    .filter((n): n is Node => n !== undefined && n.phase === 'recompute' && (n.op === 'rmsNorm' || n.op === 'layerNorm') && n.outputs.length === 1 && !kinds.has(n.id) && n.inputs.every(liveAfter))
    .filter((n, k, all) => all.indexOf(n) === k);
  const updateNodes = new Set(region.updates.values());
  const fwdMembers = new Set(fwd);
  const bwdMembers = new Set([...bwd, ...treeAdds, ...feeders, ...(inBackward ? updateNodes : [])]);
  const all = new Set([...fwdMembers, ...bwdMembers]);
  const loopIns = (members: Iterable<number>) => {
    const ins = new Set<ValueId>();
    for (const i of members) for (const x of g.nodes[i].inputs) if (!axes.has(x) && !region.updates.has(x) && !rootOf.has(x)) ins.add(x);
    return ins;
  };
  const roots = new Set([...rootOf.values()].filter((v) => rootOf.get(v) === v && ![...treeAdds].some((i) => g.nodes[i].inputs.includes(v))));
  const bwdOuts = new Set([...roots, ...(inBackward ? [...updateNodes].flatMap((i) => g.nodes[i].outputs) : [])]);
  const lastFwd = Math.max(...fwd);
  // The recompute's results (the narrowing sums) are read only after its last member.
  for (const i of fwd) if (kinds.get(i) === 'narrow' && readers[g.nodes[i].outputs[0]].some((r) => r < lastFwd)) return g;
  let order: (Node | 'loop')[] | undefined;
  if (lastBwd === undefined) order = placeLoop(g, all, lastFwd, loopIns(fwd), new Set());
  else {
    const renormed = new Set(renorms.map((n) => n.outputs[0]));
    const ins = new Set([...loopIns([...bwdMembers, ...needed]), ...renorms.flatMap((n) => n.inputs)].filter((x) => !renormed.has(x)));
    order = placeLoop(g, all, lastBwd, ins, bwdOuts);
    // The recompute loop goes where its last member was: before the first node after it.
    const at = order?.findIndex((m) => m !== 'loop' && m.id > lastFwd);
    if (order && at !== undefined && at >= 0 && order.indexOf('loop') >= at) order.splice(at, 0, 'loop');
    else order = undefined;
  }
  if (!order) {
    if (strict) throw new LomocError(`--checkpoint ...,heads=${slices}: this recomputed attention's slices cannot be placed (a node between its recompute and its backward needs its whole result)`, g.nodes[lastFwd].loc);
    return g;
  }

  const { emit, current, windowGradient, finish } = windowRewrite(g, { ...region, axes: region.paramAxes }, 'chunkHeads', inBackward);
  const part = (len: number, h: number) => (len * h) / heads;
  const bounds = chunkBounds(heads / step, slices).map(([u0, u1]) => [u0 * step, u1 * step] as const);

  /** One loop over the slices of `nodes`; `backward`: window gradients and running sums. */
  const emitLoop = (nodes: readonly number[], backward: boolean) => {
    const acc = new Map<ValueId, ValueId>(); // narrowing output (or tree root) -> running sum
    const remap = new Map<ValueId, ValueId>(); // the backward loop's own norm outputs and flattened rows
    if (backward) {
      for (const n of renorms) remap.set(n.outputs[0], emit(n.op, n.inputs, n.attrs as never, n, n.outputs)[0]);
      for (const i of feeders) {
        const n = g.nodes[i];
        remap.set(n.outputs[0], emit('reshape', [remap.get(n.inputs[0]) ?? n.inputs[0]], n.attrs as OpAttrs['reshape'], n, n.outputs)[0]);
      }
    }
    bounds.forEach(([h0, h1], c) => {
      const last = c === bounds.length - 1;
      const local = new Map<ValueId, ValueId>();
      const windowOf = (p: ValueId) => {
        const axis = region.paramAxes.get(p)!;
        const s = g.values[p].shape;
        return { axis, w0: part(s[axis], h0), w1: part(s[axis], h1), s };
      };
      const sliceParam = (p: ValueId, like: Node) => {
        const { axis, w0, w1, s } = windowOf(p);
        const src = backward && current.has(p) ? current.get(p)![0] : p;
        return emit('slice', [src], { starts: s.map((_, k) => (k === axis ? w0 : 0)), ends: s.map((d, k) => (k === axis ? w1 : d)) }, like, 'activation')[0];
      };
      const arg = (x: ValueId) => local.get(x) ?? remap.get(x) ?? x;
      const sliced = (shape: readonly number[], axis: number) => shape.map((d, k) => (k === axis ? part(d, h1) - part(d, h0) : d));
      for (const i of nodes) {
        const m = g.nodes[i];
        const kind = kinds.get(i)!;
        if (kind === 'layout') {
          let attrs = m.attrs as OpAttrs['reshape'];
          if (m.op === 'reshape' || m.op === 'broadcastTo') attrs = { ...attrs, shape: sliced(attrs.shape, axes.get(m.outputs[0])!) };
          const outs = emit(m.op, m.inputs.map(arg), attrs as never, m, m.outputs);
          m.outputs.forEach((o, k) => local.set(o, outs[k]));
        } else if (kind === 'widen') {
          local.set(m.outputs[0], emit('matmul', [arg(m.inputs[0]), sliceParam(m.inputs[1], m)], m.attrs as OpAttrs['matmul'], m, m.outputs)[0]);
        } else if (kind === 'narrow') {
          const key = backward ? rootOf.get(m.outputs[0])! : m.outputs[0];
          const lastLeaf = nodes.filter((k) => kinds.get(k) === 'narrow' && (backward ? rootOf.get(g.nodes[k].outputs[0]) : g.nodes[k].outputs[0]) === key).at(-1) === i;
          const into = last && lastLeaf ? [key] : undefined;
          const prev = acc.get(key);
          const p = emit('matmul', [arg(m.inputs[0]), sliceParam(m.inputs[1], m)], m.attrs as OpAttrs['matmul'], m, [key], prev === undefined ? into : undefined)[0];
          acc.set(key, prev === undefined ? p : emit('add', [prev, p], {}, m, [key], into)[0]);
        } else {
          const grad = emit('matmul', m.inputs.map(arg), m.attrs as OpAttrs['matmul'], m, 'grad')[0];
          const name = Object.entries(g.grads!).find(([, v]) => v === m.outputs[0])![0];
          const p = g.params.find((q) => q.name === name)!.value;
          const { w0, w1 } = windowOf(p);
          windowGradient(p, grad, w0, w1, last);
        }
      }
    });
  };
  let loops = 0; // the recompute loop first, then the backward loop
  return finish(order, () => {
    emitLoop(loops === 0 ? fwd : bwdBody, loops === 1);
    loops++;
  });
}
