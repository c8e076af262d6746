// Width-chunked FFNs: a recomputed block's FFN runs its recompute and backward over slices of its
// hidden width F, so no weight gradient is ever a partial sum. For slice j: gate_j = m W1[:, j],
// h_j = act(gate_j) * (m W3[:, j]); dh_j = dy W2[j, :]^T; dW2[j, :] = h_j^T dy, dW1[:, j] = m^T dgate_j
// are *complete* gradients of windows of the weights, each updated at once by a window update
// (UpdateAttrs.window); dm = sum_j dgate_j W1[:, j]^T + ... accumulates over the slices.
// Requires: a checkpointed graph with its optimizer step, in textbook order; optimizers whose states
// all have the param's shape (sgd, lomo, adamw; a factored one is refused by the window shape rule).
// Ensures: the same loss and updates up to the order of the width sums. A region grows from a
// recompute matmul m @ W (W a [D, F] param, F > D) over the nodes whose values are [...rows, F]
// (wide): elementwise ops on them (a [F] param, a bias, is sliced too), matmuls that make them from
// narrow rows (dy @ W2^T), matmuls that contract them (narrowing: partial sums added slice by slice),
// and the weight-gradient row reductions X^T Y (and bias sums) over them, each its param's whole
// gradient, read only by the param's update. A region any of whose wide values is read elsewhere,
// or whose params' gradients are not all its own reductions, is left as it was; a region with no
// backward member (a nested run's recompute of a lower block) only makes its narrowing sums.
// With `inBackward` (LOMO) each window's update runs in its slice, right after its gradient, and
// later slices read the param's window-updated value (windows are disjoint, so the same numbers);
// otherwise the window gradients live until the original update's place, where the window
// updates run in a chain.
// A one-pass clip norm after backward (sgd) squares each window and adds them in window order.
// Sums: given the same dy, every wide value, each weight-gradient window and its update are bit
// for bit the unchunked ones (a matmul's inner sums run over rows or over D, not over F); only
// the narrowing matmuls' results (dm, contracted over F) are partial sums added in slice order, so
// dm and all that depends on it (the earlier blocks' gradients and updates) differ by reassociation
// (as does sgd's clip-norm factor). With f16 storage each partial sum is stored in f16.
// Cost: O(n) in nodes per region, plus one pass over the graph to place the loop.
import { CompilerBug, LomocError } from '../diagnostics.ts';
import { opTraits } from '../ir/op-traits.ts';
import type { OpAttrs } from '../ir/ops.ts';
import { numel, sameShape } from '../ir/shape.ts';
import type { Graph, Node, Shape, ValueId } from '../ir/types.ts';
import { chunkBounds, flatSource, placeLoop } from './token-chunk.ts';
import { windowRewrite } from './window-rewrite.ts';

type Kind = 'elementwise' | 'widen' | 'narrow' | 'reduce';

/** A region: its nodes by kind, the F axis of each param it reads, and the rows. */
export interface WidthRegion {
  readonly rows: Shape;
  readonly width: number;
  /** Node index -> its kind, for every member but the feeders. */
  readonly kinds: ReadonlyMap<number, Kind>;
  /** Reshapes that only feed the reductions: dropped. */
  readonly feeders: readonly number[];
  /** Param value -> the axis of it that runs along F. */
  readonly axes: ReadonlyMap<ValueId, number>;
  /** Param value -> its update node (the params whose gradient the region completes). */
  readonly updates: ReadonlyMap<ValueId, number>;
  /** Param value -> the sumSquares node of a one-pass clip norm that reads its whole gradient. */
  readonly norms: ReadonlyMap<ValueId, number>;
}

const isRowShape = (s: Shape, rows: Shape) => s.length === rows.length + 1 && rows.every((d, i) => s[i] === d);
const chunkable = (n: Node) => n.phase === 'recompute' || n.phase === 'backward';

/** The regions of `g` whose loops may be built (the others are dropped). */
export function findWidthRegions(g: Graph): WidthRegion[] {
  const readers = g.values.map((): number[] => []);
  const producer = new Map<ValueId, Node>();
  g.nodes.forEach((n, i) => {
    n.inputs.forEach((x) => readers[x].push(i));
    n.outputs.forEach((o) => producer.set(o, n));
  });
  const isParam = (v: ValueId) => g.values[v].role === 'param';
  const seeds = new Map<string, number[]>();
  g.nodes.forEach((n, i) => {
    if (n.phase !== 'recompute' || n.op !== 'matmul' || n.attrs.transA || n.attrs.transB) return;
    const [a, w] = n.inputs.map((x) => g.values[x]);
    if (w.role !== 'param' || w.shape.length !== 2 || a.shape.length < 2 || w.shape[1] <= w.shape[0]) return;
    const key = `${n.block ?? -1}:${n.inputs[0]}:${w.shape[1]}`;
    seeds.set(key, [...(seeds.get(key) ?? []), i]);
  });
  const regions: WidthRegion[] = [];
  const taken = new Set<number>();
  for (const first of seeds.values()) {
    if (first.some((i) => taken.has(i))) continue;
    const seed = g.nodes[first[0]];
    const rows = g.values[seed.inputs[0]].shape.slice(0, -1);
    const width = g.values[seed.outputs[0]].shape.at(-1)!;
    const kinds = new Map<number, Kind>(first.map((i) => [i, 'widen']));
    const wide = new Set<ValueId>();
    const isWide = (v: ValueId) => wide.has(v);
    const wideShape = (s: Shape) => isRowShape(s, rows) && s.at(-1) === width;
    /** The node index of a matmul outside that makes wide value `x` from narrow rows (dy @ W2^T), if it is one. */
    const widening = (x: ValueId): number | undefined => {
      const p = producer.get(x);
      return p?.op === 'matmul' && !p.attrs.transA && chunkable(p) && !taken.has(p.id) && !kinds.has(p.id) && isParam(p.inputs[1]) &&
        g.values[p.inputs[1]].shape.length === 2 && !isWide(p.inputs[0]) && isRowShape(g.values[p.inputs[0]].shape, rows) && wideShape(g.values[x].shape) ? p.id : undefined;
    };
    // Grow from the seeds' outputs: each new wide value's readers are tried (again).
    const queue: ValueId[] = [];
    const makeWide = (v: ValueId) => {
      if (wide.has(v)) return;
      wide.add(v);
      queue.push(v);
    };
    for (const i of first) makeWide(g.nodes[i].outputs[0]);
    while (queue.length) {
      for (const i of readers[queue.pop()!]) {
        const n = g.nodes[i];
        if (kinds.has(i) || taken.has(i) || !chunkable(n) || n.outputs.length !== 1) continue;
        const out = g.values[n.outputs[0]].shape;
        if (n.op === 'matmul' && !n.attrs.transA && isParam(n.inputs[1]) && g.values[n.inputs[1]].shape.length === 2 && isWide(n.inputs[0]) && isRowShape(out, rows)) {
          kinds.set(i, 'narrow');
        } else if (opTraits[n.op].kind === 'elementwise' && wideShape(out)) {
          const fits = n.inputs.every((x) => isWide(x) || widening(x) !== undefined || g.values[x].shape.length === 0 || (isParam(x) && sameShape(g.values[x].shape, [width])));
          if (!fits) continue;
          for (const x of n.inputs) {
            const k = isWide(x) ? undefined : widening(x);
            if (k === undefined) continue;
            kinds.set(k, 'widen');
            makeWide(x);
          }
          kinds.set(i, 'elementwise');
          makeWide(n.outputs[0]);
        }
      }
    }
    // Row reductions over wide values: X^T Y weight gradients (through flattening reshapes) and bias sums.
    const candidates = new Set<number>();
    for (const v of wide)
      for (const r of readers[v]) {
        const n = g.nodes[r];
        if (n.op === 'sum') candidates.add(r);
        if (n.op === 'reshape') for (const q of readers[n.outputs[0]]) candidates.add(q);
      }
    for (const i of candidates) {
      const n = g.nodes[i];
      if (!chunkable(n) || kinds.has(i)) continue;
      if (n.op === 'matmul' && n.attrs.transA && !n.attrs.transB) {
        const src = n.inputs.map((x) => flatSource(g, producer.get(x), rows));
        if (src.every((s) => s !== undefined) && src.filter((s) => isWide(s!)).length === 1) kinds.set(i, 'reduce');
      } else if (n.op === 'sum' && isWide(n.inputs[0]) && !n.attrs.keepDims && n.attrs.axes.join() === rows.map((_, k) => k).join()) {
        kinds.set(i, 'reduce');
      }
    }
    const feeders = [...new Set([...kinds].filter(([, k]) => k === 'reduce').flatMap(([i]) => g.nodes[i].inputs.map((x) => producer.get(x))))]
      .filter((n): n is Node => n?.op === 'reshape' && readers[n.outputs[0]].every((r) => kinds.get(r) === 'reduce'))
      .map((n) => n.id)
      .sort((a, z) => a - z);
    const region = checkRegion(g, readers, producer, { rows, width, kinds, feeders, axes: new Map(), updates: new Map(), norms: new Map() }, wide);
    for (const i of kinds.keys()) taken.add(i);
    if (region) regions.push(region);
  }
  return regions;
}

/** The region with its params' axes and updates, or undefined when it cannot be chunked. */
function checkRegion(g: Graph, readers: readonly number[][], producer: ReadonlyMap<ValueId, Node>, r: WidthRegion, wide: ReadonlySet<ValueId>): WidthRegion | undefined {
  const members = new Set([...r.kinds.keys(), ...r.feeders]);
  // Wide values stay inside: every reader is a member.
  for (const v of wide) if (readers[v].some((i) => !members.has(i)) || v === g.loss) return undefined;
  const axes = new Map<ValueId, number>();
  const setAxis = (p: ValueId, axis: number) => {
    if (axes.has(p) && axes.get(p) !== axis) return false;
    axes.set(p, axis);
    return true;
  };
  const grads = new Map(Object.entries(g.grads ?? {}).map(([name, v]) => [v, name]));
  const gradOf = new Map<ValueId, ValueId>(); // param -> its gradient
  for (const [i, kind] of r.kinds) {
    const n = g.nodes[i];
    if (kind === 'widen' || kind === 'narrow') {
      const m = n as Node & { op: 'matmul' };
      // W's axis along F: the output axis when widening, the contracted one when narrowing.
      const axis = (kind === 'widen') === m.attrs.transB ? 0 : 1;
      if (!setAxis(n.inputs[1], axis)) return undefined;
    } else if (kind === 'elementwise') {
      for (const x of n.inputs) if (g.values[x].role === 'param' && !setAxis(x, 0)) return undefined;
    } else {
      const name = grads.get(n.outputs[0]);
      const param = g.params.find((p) => p.name === name)?.value;
      if (param === undefined) return undefined;
      const [s, out] = [g.values[param].shape, g.values[n.outputs[0]].shape];
      const axis = n.op === 'sum' ? 0 : wide.has(flatSource(g, producer.get(n.inputs[0]), r.rows)!) ? 0 : 1;
      if (!sameShape(s, out) || s[axis] !== r.width || !setAxis(param, axis)) return undefined;
      gradOf.set(param, n.outputs[0]);
    }
  }
  // Every param the region reads is read only by members (besides forward and pass-1 work) and completed here.
  const updates = new Map<ValueId, number>();
  const norms = new Map<ValueId, number>();
  const first = Math.min(...members);
  // A region with no backward member (a nested run's recompute) only makes its narrowing sums.
  const forwardOnly = [...members].every((i) => g.nodes[i].phase === 'recompute');
  for (const p of axes.keys()) {
    const grad = gradOf.get(p);
    if (grad === undefined && forwardOnly) continue;
    if (grad === undefined) return undefined;
    // Its update, and (sgd clipping by norm after backward) the squared norm of the whole gradient.
    const [ups, rest] = [readers[grad].filter((i) => g.nodes[i].op === 'optimizerUpdate'), readers[grad].filter((i) => g.nodes[i].op !== 'optimizerUpdate')];
    if (ups.length !== 1 || rest.length > 1 || rest.some((i) => g.nodes[i].op !== 'sumSquares' || g.nodes[i].phase !== 'norm')) return undefined;
    if (rest.length) norms.set(p, rest[0]);
    const up = g.nodes[ups[0]];
    if (up.op !== 'optimizerUpdate' || up.inputs[up.attrs.inputs.p] !== p || up.attrs.window) return undefined;
    // Other reads of the param come before the region (a two-pass clip's own recompute): they see the old value.
    if (readers[p].some((i) => chunkable(g.nodes[i]) && !members.has(i) && i > first)) return undefined;
    updates.set(p, ups[0]);
  }
  if (updates.size === 0 && !forwardOnly) return undefined;
  return { ...r, axes, updates, norms };
}

/**
 * Runs each region's recompute and backward over `slices` slices of its width; 1: `g` itself.
 * `strict` (the user asked for width slices): an FFN that cannot be sliced because a one-pass clip
 * norm needs its whole weight gradient before an update inside backward is an error, not left whole.
 */
export function chunkWidth(g: Graph, slices: number, opts: { readonly inBackward: boolean; readonly strict?: boolean }): Graph {
  if (!Number.isInteger(slices) || slices < 1) throw new CompilerBug(`chunkWidth: slice count ${slices}`);
  if (slices === 1) return g;
  // One region at a time, found again after each rewrite (it renumbers nodes); a rewritten region's
  // gradients are windows, which no longer match a whole param, so it is not found again.
  let out = g;
  for (;;) {
    const next = findWidthRegions(out).reduce<Graph>((acc, r) => (acc !== out ? acc : rewriteRegion(out, r, slices, opts.inBackward, opts.strict ?? false)), out);
    if (next === out) return out;
    out = next;
  }
}

function rewriteRegion(g: Graph, region: WidthRegion, slices: number, inBackward: boolean, strict: boolean): Graph {
  const { rows, width, kinds } = region;
  // A one-pass norm over the whole gradient before an update inside backward: no window is complete early enough.
  if (inBackward && region.norms.size > 0) {
    if (!strict) return g;
    const up = g.nodes[[...region.updates.values()][0]];
    throw new LomocError(
      `--checkpoint ...,width=${slices}: under --clip-mode previous each update inside backward needs its weight's whole gradient for the norm first, which width slices never make; use --clip-mode exact or chunks=N`, up.loc);
  }
  const n = numel(rows);
  const body = [...kinds.keys()].sort((a, z) => a - z);
  const updateNodes = new Set(region.updates.values());
  const members = new Set([...body, ...region.feeders, ...(inBackward ? updateNodes : [])]);
  const made = new Set(body.filter((i) => kinds.get(i) !== 'reduce' && kinds.get(i) !== 'narrow').map((i) => g.nodes[i].outputs[0]));
  const skipped = new Set([...made, ...region.feeders.map((i) => g.nodes[i].outputs[0])]);
  const loopInputs = new Set<ValueId>();
  for (const i of members) for (const x of g.nodes[i].inputs) if (!skipped.has(x) && !region.updates.has(x)) loopInputs.add(x);
  const narrowing = body.filter((i) => kinds.get(i) === 'narrow');
  // Two narrowing results added by one node and read nowhere else (dm = dgate W1^T + dup W3^T):
  // one running sum of both, so one [rows, D] accumulator lives, not two.
  const combine = combinedBy(g, narrowing.map((i) => g.nodes[i].outputs[0]));
  if (combine !== undefined) members.add(combine);
  const narrowed = combine !== undefined ? [g.nodes[combine].outputs[0]] : narrowing.map((i) => g.nodes[i].outputs[0]);
  const loopOutputs = new Set([...narrowed, ...(inBackward ? [...updateNodes].flatMap((i) => g.nodes[i].outputs) : [])]);
  const order = placeLoop(g, members, Math.max(...body, ...region.feeders, ...(combine === undefined ? [] : [combine])), loopInputs, loopOutputs);
  if (!order) return g;

  const producer = new Map<ValueId, Node>();
  for (const m of g.nodes) for (const o of m.outputs) producer.set(o, m);
  const { emit, current, windowGradient, finish } = windowRewrite(g, region, 'chunkWidth', inBackward);
  const windowOf = (p: ValueId, f0: number, f1: number) => {
    const axis = region.axes.get(p)!;
    const s = g.values[p].shape;
    return { axis, starts: s.map((_, k) => (k === axis ? f0 : 0)), ends: s.map((d, k) => (k === axis ? f1 : d)) };
  };
  const bounds = chunkBounds(width, slices);

  const emitLoop = () => {
    const flat = new Map<ValueId, ValueId>();
    const flatOf = (x: ValueId, like: Node) => {
      if (!flat.has(x)) flat.set(x, emit('reshape', [x], { shape: [n, g.values[x].shape.at(-1)!] }, like, 'activation')[0]);
      return flat.get(x)!;
    };
    const acc = new Map<number, ValueId>();
    let sum: ValueId | undefined; // the combined running sum
    bounds.forEach(([f0, f1], c) => {
      const last = c === bounds.length - 1;
      const local = new Map<ValueId, ValueId>();
      const sliceOf = (p: ValueId, like: Node) => {
        if (!local.has(p)) {
          const w = windowOf(p, f0, f1);
          local.set(p, emit('slice', [inBackward ? current.get(p)?.[0] ?? p : p], { starts: w.starts, ends: w.ends }, like, 'activation')[0]);
        }
        return local.get(p)!;
      };
      const arg = (x: ValueId, like: Node) => (region.axes.has(x) ? sliceOf(x, like) : local.get(x) ?? x);
      for (const i of body) {
        const m = g.nodes[i];
        const kind = kinds.get(i)!;
        if (kind === 'elementwise' || kind === 'widen') {
          local.set(m.outputs[0], emit(m.op, m.inputs.map((x) => arg(x, m)), m.attrs as never, m, m.outputs)[0]);
        } else if (kind === 'narrow' && combine !== undefined) {
          const out = g.nodes[combine].outputs;
          const part = emit('matmul', m.inputs.map((x) => arg(x, m)), m.attrs as OpAttrs['matmul'], m, m.outputs)[0];
          sum = sum === undefined ? part : emit('add', [sum, part], {}, m, out, last && i === narrowing.at(-1) ? out : undefined)[0];
        } else if (kind === 'narrow') {
          // A partial sum over this slice of F, added to the running sum (the last add makes the original value).
          const into = last ? [m.outputs[0]] : undefined;
          const part = emit('matmul', m.inputs.map((x) => arg(x, m)), m.attrs as OpAttrs['matmul'], m, m.outputs, c === 0 ? into : undefined)[0];
          acc.set(i, c === 0 ? part : emit('add', [acc.get(i)!, part], {}, m, m.outputs, into)[0]);
        } else {
          // A complete gradient of this window of its param.
          const grad =
            m.op === 'matmul'
              ? emit('matmul', m.inputs.map((x) => {
                  const src = flatSource(g, producer.get(x), rows)!;
                  return local.has(src) ? emit('reshape', [local.get(src)!], { shape: [n, f1 - f0] }, m, 'activation')[0] : flatOf(src, m);
                }), m.attrs as OpAttrs['matmul'], m, 'grad')[0]
              : emit('sum', [local.get(m.inputs[0])!], { axes: rows.map((_, k) => k), keepDims: false }, m, 'grad')[0];
          const name = Object.entries(g.grads!).find(([, v]) => v === m.outputs[0])![0];
          const p = g.params.find((q) => q.name === name)!.value;
          windowGradient(p, grad, f0, f1, last);
        }
      }
    });
  };
  return finish(order, emitLoop);
}

/** The node that adds exactly the two values `vs` and is their only reader, if there is one. */
function combinedBy(g: Graph, vs: readonly ValueId[]): number | undefined {
  if (vs.length !== 2 || vs[0] === vs[1]) return undefined;
  const readers = g.nodes.filter((n) => n.inputs.some((x) => vs.includes(x)));
  const add = readers[0];
  if (readers.length !== 1 || add.op !== 'add' || !chunkable(add) || add.inputs.length !== 2 || !vs.every((v) => add.inputs.includes(v))) return undefined;
  const [a, out] = [g.values[vs[0]], g.values[add.outputs[0]]];
  if (!sameShape(a.shape, out.shape) || a.dtype !== out.dtype || !sameShape(g.values[vs[1]].shape, out.shape)) return undefined;
  return add.id;
}

