// Token-chunked recomputation (Mini-Sequence Transformer, Luo et al. 2024): a recomputed block's
// FFN runs its recompute and backward over chunks of token rows, so its [tokens, ffn] temporaries
// shrink by the chunk count.
// Requires: a checkpointed graph (recomputeSegments) with its optimizer step, in textbook order.
// Ensures: the same loss, gradients and updates up to the order of the weight-gradient sums. Each
// region (grown from a recompute matmul by a 2-D param that widens its rows, e.g. x @ w1 [d, ffn])
// holds only row-wise nodes: matmuls of rows by a 2-D operand, elementwise ops on whole rows
// (operands of the row shape, or [last dim] / scalar broadcasts). Each chunk slices the rows it
// reads, runs the region's nodes on them, and adds its part of each row reduction (weight
// gradients X^T dY, bias gradients sum over rows) into a gradient accumulator (in place: the
// planner's partial-sum rule). Region values read outside are concatenated back. Nothing else
// moves, and a region whose loop could not be placed without a cycle is left as it was (so is one
// whose recompute matmul already reads a slice: that is how a chunked region is told apart).
// Only recompute and backward nodes are chunked: a two-pass clip-norm's pass 1 (phase norm) is
// not, so the clip factor is unchanged bit for bit.
// Sums: a row's own result (input-gradient rows, activations) is bit for bit the unchunked one (its
// inner sums do not depend on the row count); a weight gradient is the chunks' partial sums added in
// chunk order, so it differs from the one-matmul sum by reassociation only (f32 tolerance).
// Cost: O(n) in nodes per region, plus one pass over the graph to place the loops.
import { CompilerBug } from '../diagnostics.ts';
import { GraphBuilder } from '../ir/builder.ts';
import { opTraits } from '../ir/op-traits.ts';
import type { Op, OpAttrs } from '../ir/ops.ts';
import { numel, sameShape } from '../ir/shape.ts';
import type { Graph, Node, Shape, ValueId } from '../ir/types.ts';

/** A region: its row-wise nodes and row reductions (node indices, ascending), and its row shape. */
export interface ChunkRegion {
  readonly rows: Shape;
  readonly nodes: readonly number[];
  readonly reductions: readonly number[];
  /** Reshapes that only feed the reductions: dropped. */
  readonly feeders: readonly number[];
}

const isRowShape = (s: Shape, rows: Shape) => s.length === rows.length + 1 && rows.every((d, i) => s[i] === d);
const chunkable = (n: Node) => n.phase === 'recompute' || n.phase === 'backward';

/** A row-wise node for these rows: each output row depends on the same row of its row operands. */
function isRowNode(g: Graph, n: Node, rows: Shape): boolean {
  if (!chunkable(n) || n.outputs.length !== 1 || !isRowShape(g.values[n.outputs[0]].shape, rows)) return false;
  const shapes = n.inputs.map((x) => g.values[x].shape);
  if (n.op === 'matmul') return !n.attrs.transA && isRowShape(shapes[0], rows) && shapes[1].length === 2;
  if (opTraits[n.op].kind !== 'elementwise') return false;
  const out = g.values[n.outputs[0]].shape;
  return shapes.every((s) => sameShape(s, out) || s.length === 0 || (s.length === 1 && s[0] === out[out.length - 1]));
}

/** The regions of `g`: one per recomputed FFN (seeds of one block grow together). */
export function findChunkRegions(g: Graph): ChunkRegion[] {
  const readers = g.values.map((): number[] => []);
  const producer = new Map<ValueId, Node>();
  g.nodes.forEach((n, i) => {
    n.inputs.forEach((x) => readers[x].push(i));
    n.outputs.forEach((o) => producer.set(o, n));
  });
  const seedsByKey = new Map<string, number[]>();
  g.nodes.forEach((n, i) => {
    if (n.phase !== 'recompute' || n.op !== 'matmul' || n.attrs.transA || n.attrs.transB) return;
    const [a, w] = n.inputs.map((x) => g.values[x]);
    if (w.role !== 'param' || w.shape.length !== 2 || a.shape.length < 2 || w.shape[1] <= w.shape[0]) return;
    const key = `${n.block ?? -1}:${a.shape.slice(0, -1).join(',')}`;
    seedsByKey.set(key, [...(seedsByKey.get(key) ?? []), i]);
  });
  const taken = new Set<number>();
  const regions: ChunkRegion[] = [];
  for (const seeds of seedsByKey.values()) {
    if (seeds.some((i) => taken.has(i))) continue;
    const rows = g.values[g.nodes[seeds[0]].inputs[0]].shape.slice(0, -1);
    const wide = g.values[g.nodes[seeds[0]].outputs[0]].shape.at(-1)!;
    const inRegion = new Set(seeds);
    const made = new Set<ValueId>(seeds.map((i) => g.nodes[i].outputs[0]));
    // Grow to a fixpoint: row nodes reading region values, and wide row nodes the region reads.
    for (let changed = true; changed; ) {
      changed = false;
      g.nodes.forEach((n, i) => {
        if (inRegion.has(i) || taken.has(i) || !isRowNode(g, n, rows)) return;
        const reads = n.op === 'matmul' ? made.has(n.inputs[0]) && !made.has(n.inputs[1]) : n.inputs.some((x) => made.has(x));
        const feeds = g.values[n.outputs[0]].shape.at(-1) === wide && readers[n.outputs[0]].some((r) => inRegion.has(r));
        if (!reads && !feeds) return;
        inRegion.add(i);
        made.add(n.outputs[0]);
        changed = true;
      });
    }
    // Row reductions over region values: X^T dY weight gradients and bias sums.
    const reductions: number[] = [];
    g.nodes.forEach((n, i) => {
      if (!chunkable(n) || inRegion.has(i)) return;
      if (n.op === 'matmul' && n.attrs.transA && !n.attrs.transB) {
        const src = n.inputs.map((x) => flatSource(g, producer.get(x), rows));
        if (src.every((s) => s !== undefined) && src.some((s) => made.has(s!))) reductions.push(i);
      } else if (n.op === 'sum' && made.has(n.inputs[0]) && !n.attrs.keepDims && n.attrs.axes.join() === rows.map((_, k) => k).join()) {
        reductions.push(i);
      }
    });
    const reduced = new Set(reductions);
    const feeders: number[] = [];
    g.nodes.forEach((n, i) => {
      if (n.op === 'reshape' && readers[n.outputs[0]].length > 0 && readers[n.outputs[0]].every((r) => reduced.has(r)) && n.outputs[0] !== g.loss)
        feeders.push(i);
    });
    const nodes = [...inRegion].sort((a, b) => a - b);
    nodes.forEach((i) => taken.add(i));
    regions.push({ rows, nodes, reductions, feeders });
  }
  return regions;
}

/** [start, end) of each of `chunks` nearly equal runs of `n` rows (the first n mod chunks one longer). */
export function chunkBounds(n: number, chunks: number): [number, number][] {
  const c = Math.max(1, Math.min(chunks, n));
  return Array.from({ length: c }, (_, i) => [Math.floor((i * n) / c), Math.floor(((i + 1) * n) / c)]);
}

/** Runs each region's recompute and backward over `chunks` chunks of rows; `chunks` 1: `g` itself. */
export function chunkTokens(g: Graph, chunks: number): Graph {
  if (!Number.isInteger(chunks) || chunks < 1) throw new CompilerBug(`chunkTokens: chunk count ${chunks}`);
  if (chunks === 1) return g;
  // One region at a time, found again after each rewrite (it renumbers nodes); a rewritten
  // region's seeds read row slices, which marks it done. Regions whose loop cannot be placed stay.
  let out = g;
  for (;;) {
    const producer = new Map<ValueId, Node>();
    for (const m of out.nodes) for (const o of m.outputs) producer.set(o, m);
    const open = findChunkRegions(out)
      .filter((r) => r.nodes.every((i) => out.nodes[i].phase !== 'recompute' || producer.get(out.nodes[i].inputs[0])?.op !== 'slice'))
      .sort((a, z) => Math.max(...z.nodes) - Math.max(...a.nodes));
    const next = open.reduce<Graph>((acc, r) => (acc !== out ? acc : rewriteRegion(out, r, chunks)), out);
    if (next === out) return out;
    out = next;
  }
}

function rewriteRegion(g: Graph, region: ChunkRegion, chunks: number): Graph {
  const rows = region.rows;
  const n = numel(rows);
  const members = new Set([...region.nodes, ...region.reductions, ...region.feeders]);
  const made = new Set(region.nodes.flatMap((i) => g.nodes[i].outputs));
  const skipped = new Set([...made, ...region.feeders.map((i) => g.nodes[i].outputs[0])]);
  // Region values read outside the loop are concatenated back.
  const exported = new Set<ValueId>();
  g.nodes.forEach((m, i) => { if (!members.has(i)) for (const x of m.inputs) if (made.has(x)) exported.add(x); });
  for (const v of [g.loss, ...Object.values(g.grads ?? {}), ...Object.values(g.outputs ?? {})]) if (made.has(v)) exported.add(v);
  const loopOutputs = [...exported, ...region.reductions.map((i) => g.nodes[i].outputs[0])];
  const loopInputs = new Set<ValueId>();
  for (const i of members) for (const x of g.nodes[i].inputs) if (!skipped.has(x)) loopInputs.add(x);
  const loopAt = Math.max(...members);
  // Each chunk reads a matmul's right operand whole, and a reduction's result only exists after the loop.
  const reducedOut = new Set(region.reductions.map((i) => g.nodes[i].outputs[0]));
  if (region.nodes.some((i) => (g.nodes[i].op === 'matmul' && made.has(g.nodes[i].inputs[1])) || g.nodes[i].inputs.some((x) => reducedOut.has(x)))) return g;

  // Place the loop where its last member was; readers of its results that came earlier wait for it.
  const order = placeLoop(g, members, loopAt, loopInputs, new Set(loopOutputs));
  if (!order) return g;

  const producer = new Map<ValueId, Node>();
  for (const m of g.nodes) for (const o of m.outputs) producer.set(o, m);
  const b = new GraphBuilder(g.name, { ...g, nodes: [] });
  const push = (m: Node) => b.nodes.push({ ...m, id: b.nodes.length });
  /** Appends `op`; with `into`, its output is that existing value (same type), not a new one. */
  const emit = <O extends Op>(op: O, inputs: ValueId[], attrs: OpAttrs[O], like: Node, role: 'activation' | 'grad', into?: ValueId): ValueId => {
    const [v] = b.node(op, inputs, attrs, like.loc, like.phase, role);
    const last = b.nodes.length - 1;
    const node = { ...b.nodes[last], ...(like.block !== undefined ? { block: like.block } : {}) };
    if (into === undefined) {
      b.nodes[last] = node;
      return v;
    }
    if (!sameShape(b.values[v].shape, g.values[into].shape) || b.values[v].dtype !== g.values[into].dtype)
      throw new CompilerBug(`chunkTokens: %${into} is ${g.values[into].dtype}[${g.values[into].shape}], its chunked form ${b.values[v].dtype}[${b.values[v].shape}]`);
    b.nodes[last] = { ...node, outputs: [into] } as Node;
    return into;
  };

  const emitLoop = () => {
    const flat = new Map<ValueId, ValueId>(); // a row value seen as [n, last] (a view)
    const flatOf = (x: ValueId, like: Node) => {
      if (!flat.has(x)) flat.set(x, emit('reshape', [x], { shape: [n, g.values[x].shape.at(-1)!] }, like, 'activation'));
      return flat.get(x)!;
    };
    const bounds = chunkBounds(n, chunks);
    const acc = new Map<number, ValueId>();
    const parts = new Map<ValueId, ValueId[]>();
    bounds.forEach(([r0, r1], c) => {
      const local = new Map<ValueId, ValueId>();
      const rowsOf = (x: ValueId, like: Node): ValueId => {
        if (local.has(x)) return local.get(x)!;
        const w = g.values[x].shape.at(-1)!;
        const v = emit('slice', [flatOf(x, like)], { starts: [r0, 0], ends: [r1, w] }, like, 'activation');
        local.set(x, v);
        return v;
      };
      const last = c === bounds.length - 1;
      for (const i of [...region.nodes, ...region.reductions].sort((a, z) => a - z)) {
        const m = g.nodes[i];
        const isRow = (x: ValueId) => made.has(x) || isRowShape(g.values[x].shape, rows);
        if (region.nodes.includes(i)) {
          const ins = m.inputs.map((x, k) => (m.op === 'matmul' && k === 1 ? x : isRow(x) ? rowsOf(x, m) : x));
          const v = emit(m.op, ins, m.attrs as never, m, g.values[m.outputs[0]].role === 'grad' ? 'grad' : 'activation');
          local.set(m.outputs[0], v);
          if (exported.has(m.outputs[0])) parts.set(m.outputs[0], [...(parts.get(m.outputs[0]) ?? []), v]);
          continue;
        }
        // A row reduction: this chunk's part, added to the running sum (the last add makes the original value).
        const into = last ? m.outputs[0] : undefined;
        const part =
          m.op === 'matmul'
            ? emit('matmul', m.inputs.map((x) => rowsOf(flatSource(g, producer.get(x), rows)!, m)), m.attrs as OpAttrs['matmul'], m, 'grad', c === 0 ? into : undefined)
            : emit('sum', [rowsOf(m.inputs[0], m)], { axes: [0], keepDims: false }, m, 'grad', c === 0 ? into : undefined);
        acc.set(i, c === 0 ? part : emit('add', [acc.get(i)!, part], {}, m, 'grad', into));
      }
    });
    for (const [v, ps] of parts) {
      const like = g.nodes.find((m) => m.outputs[0] === v)!;
      const whole = ps.length === 1 ? ps[0] : emit('concat', ps, { axis: 0 }, like, 'activation');
      emit('reshape', [whole], { shape: g.values[v].shape }, like, g.values[v].role === 'grad' ? 'grad' : 'activation', v);
    }
  };
  for (const item of order) {
    if (item === 'loop') emitLoop();
    else push(item);
  }
  return { ...g, values: b.values, nodes: b.nodes };
}

/** The row value [...rows, k] that `p` (a reshape to [rows, k]) flattens, if it is one. */
export function flatSource(g: Graph, p: Node | undefined, rows: Shape): ValueId | undefined {
  if (!p || p.op !== 'reshape' || !chunkable(p)) return undefined;
  const [src, out] = [g.values[p.inputs[0]].shape, g.values[p.outputs[0]].shape];
  return isRowShape(src, rows) && out.length === 2 && out[0] === numel(rows) && out[1] === src.at(-1) ? p.inputs[0] : undefined;
}

/**
 * The graph's nodes with the members replaced by one 'loop' item at `at`; a non-member that reads
 * a loop output before `at` waits until the loop. Undefined when the loop reads what such a node makes.
 */
export function placeLoop(g: Graph, members: ReadonlySet<number>, at: number, ins: ReadonlySet<ValueId>, outs: ReadonlySet<ValueId>): (Node | 'loop')[] | undefined {
  const order: (Node | 'loop')[] = [];
  const waiting: Node[] = [];
  const late = new Set<ValueId>(); // values of nodes that wait
  for (let i = 0; i < g.nodes.length; i++) {
    const m = g.nodes[i];
    if (i === at) {
      if ([...ins].some((x) => late.has(x))) return undefined;
      order.push('loop', ...waiting);
      waiting.length = 0;
      continue;
    }
    if (members.has(i)) continue;
    if (i < at && m.inputs.some((x) => outs.has(x) || late.has(x))) {
      waiting.push(m);
      m.outputs.forEach((o) => late.add(o));
    } else order.push(m);
  }
  return order;
}
