// The inference rewrite. Requires: a traced forward graph (over the whole context, `tokens`
// i32 [batch, context]) that names its logits with output('logits', t). Ensures: a forward-only
// graph over `rows` tokens at a runtime position `pos` (i32 [1]): the same params, inputs
// `tokens` [batch, rows] and `pos`, one key/value cache per attention (persistent state
// `kv.<i>.k` / `kv.<i>.v` of the attention's full-context key shape [.., context, Dh]), and the
// logits [batch, rows, vocab] as `outputs.logits` (also its `loss`: the value read back).
// Row t of a step computes what row pos + t of the full forward computes, given the caches
// hold rows < pos: rows = context at pos 0 is the prefill, rows = 1 the decode step.
import { LomocError } from '../diagnostics.ts';
import { ancestors } from '../ir/analysis.ts';
import { GraphBuilder } from '../ir/builder.ts';
import { fmtShape } from '../ir/shape.ts';
import type { Graph, StateDecl, ValueId } from '../ir/types.ts';
import { seqRules, type SeqContext } from './seq-rules.ts';

/** The names the inference program's inputs and output go by. */
export const inferenceNames = { tokens: 'tokens', pos: 'pos', logits: 'logits' } as const;

/** The logits a model names, or a user error saying how to name them. */
export function namedLogits(g: Graph): ValueId {
  const v = g.outputs?.[inferenceNames.logits];
  if (v === undefined)
    throw new LomocError(`model '${g.name}' names no logits: add output('logits', logits) before returning the loss, to generate with it`);
  return v;
}

/** The tokens input: i32 [batch, context]. */
export function tokensInput(g: Graph): { value: ValueId; batch: number; context: number } {
  const d = g.inputs.find((i) => i.name === inferenceNames.tokens);
  const v = d && g.values[d.value];
  if (!d || !v || v.dtype !== 'i32' || v.shape.length !== 2)
    throw new LomocError(
      `model '${g.name}': generation needs an input 'tokens' of i32 [batch, seq], found ${v ? `${v.dtype}${fmtShape(v.shape)}` : 'none'}`,
      d?.loc,
    );
  return { value: d.value, batch: v.shape[0], context: v.shape[1] };
}

export function chunkStep(forward: Graph, rows: number, name = `${forward.name}.step${rows}`): Graph {
  const logits = namedLogits(forward);
  const tokens = tokensInput(forward);
  if (!(Number.isInteger(rows) && rows >= 1 && rows <= tokens.context))
    throw new LomocError(`inference: a step's rows must be an integer in 1..${tokens.context}, got ${rows}`);
  const reach = ancestors(forward, [logits]);
  for (const d of forward.inputs)
    if (reach.has(d.value) && d.value !== tokens.value)
      throw new LomocError(`inference: the logits depend on the input '${d.name}'; generation feeds only 'tokens'`, d.loc);

  const b = new GraphBuilder(name);
  const loc = forward.inputs.find((d) => d.value === tokens.value)!.loc;
  const map = new Map<ValueId, ValueId>();
  const axisOf = new Map<ValueId, number>();
  const tok = b.value([tokens.batch, rows], 'i32', 'input', loc, inferenceNames.tokens);
  const pos = b.value([1], 'i32', 'input', loc, inferenceNames.pos);
  b.inputs.push({ name: inferenceNames.tokens, value: tok, loc }, { name: inferenceNames.pos, value: pos, loc });
  map.set(tokens.value, tok);
  axisOf.set(tok, 1);
  for (const p of forward.params) {
    const v = forward.values[p.value];
    const id = b.value(v.shape, v.dtype, 'param', p.loc, p.name);
    b.params.push({ ...p, value: id });
    map.set(p.value, id);
  }

  const state: { name: string; value: ValueId; next?: ValueId }[] = [];
  let attentions = 0;
  const ctx: SeqContext = {
    b,
    oldShape: (v) => forward.values[v].shape,
    rows,
    context: tokens.context,
    pos,
    cache: (cacheName, shape, dtype) => {
      const value = b.value(shape, dtype, 'optstate', loc, cacheName);
      state.push({ name: cacheName, value });
      return value;
    },
    written: (cacheName, next) => {
      state.find((s) => s.name === cacheName)!.next = next;
    },
    nextAttention: () => attentions++,
  };
  for (const n of forward.nodes) {
    if (!n.outputs.some((o) => reach.has(o))) continue;
    const ins = n.inputs.map((x) => map.get(x)!);
    const axes = ins.map((x) => axisOf.get(x));
    if (axes.every((a) => a === undefined)) {
      // Static work (on params and constants only) is copied as it is.
      const outs = b.node(n.op, ins, n.attrs as never, n.loc, 'forward');
      n.outputs.forEach((o, k) => map.set(o, outs[k]));
      continue;
    }
    const rule = seqRules[n.op] as ((c: SeqContext, n: never, ins: readonly ValueId[], axes: readonly (number | undefined)[]) => { value: ValueId; axis: number | undefined }) | null;
    // Only a node's first output may be read (attention's lse is for its gradient alone).
    if (!rule || n.outputs.slice(1).some((o) => reach.has(o)))
      throw new LomocError(`inference: ${n.op} cannot run in a key/value-cache step`, n.loc);
    const r = rule(ctx, n as never, ins, axes);
    map.set(n.outputs[0], r.value);
    if (r.axis !== undefined) axisOf.set(r.value, r.axis);
  }
  const out = map.get(logits)!;
  if (axisOf.get(out) === undefined) throw new LomocError(`model '${forward.name}': the logits do not depend on the tokens`);
  const decls: StateDecl[] = state.map((s) => ({ name: s.name, param: '', value: s.value, next: s.next! }));
  return {
    name,
    values: b.values,
    nodes: b.nodes,
    inputs: b.inputs,
    params: b.params,
    loss: out,
    state: decls,
    outputs: { [inferenceNames.logits]: out },
  };
}

