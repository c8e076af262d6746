// Head regions (analysis for passes/head-chunk.ts): from each recompute `attention`, the recompute
// and backward nodes that act on each head apart, each head value's head axis, each weight's axis
// along the heads, and the updates of the weights whose whole gradient the region makes.
// A value's head axis is the one a slice cuts: slice j takes the fraction [h0/H, h1/H) of it, so a
// reshape maps it to the axis that holds the same contiguous head blocks, a transpose permutes it,
// a sum over other axes keeps it; attention and rope act on the last two axes only.
// Cost: O(n) in nodes per region.
import { opTraits } from '../ir/op-traits.ts';
import type { OpAttrs } from '../ir/ops.ts';
import { numel, sameShape } from '../ir/shape.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';

export type HeadKind = 'layout' | 'widen' | 'narrow' | 'reduce';
type Kind = HeadKind;

/** A region: its nodes by kind, each head value's head axis, each param's axis along the heads. */
export interface HeadRegion {
  /** Query heads: slice j takes the fraction [h0/heads, h1/heads) of every head axis. */
  readonly heads: number;
  /** Slice bounds are multiples of this (the query heads per key/value head). */
  readonly step: number;
  readonly kinds: ReadonlyMap<number, Kind>;
  readonly axes: ReadonlyMap<ValueId, number>;
  readonly paramAxes: ReadonlyMap<ValueId, number>;
  readonly updates: ReadonlyMap<ValueId, number>;
  readonly norms: ReadonlyMap<ValueId, number>;
}

export const chunkable = (n: Node) => n.phase === 'recompute' || n.phase === 'backward';
const prod = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);

/** The axis of `to` that holds the same contiguous head blocks as axis `a` of `from` (a reshape). */
function reshapedAxis(from: readonly number[], a: number, to: readonly number[]): number | undefined {
  const outer = prod(from.slice(0, a));
  const at = to.map((_, k) => k).filter((k) => prod(to.slice(0, k)) === outer);
  // The axis of the same length (a size-1 axis kept), else the first that is not 1.
  return at.find((k) => to[k] === from[a]) ?? at.find((k) => to[k] > 1);
}

/** Axis assignment of a node given one known axis: per input (null: not a head value) and per output. */
type Assign = { ins: (number | null)[]; outs: (number | null)[]; kind: Kind; param?: [ValueId, number] };

function assign(g: Graph, n: Node, known: { input?: number; output?: number; axis: number }): Assign | undefined {
  const shape = (v: ValueId) => g.values[v].shape;
  const isParam = (v: ValueId) => g.values[v].role === 'param' && shape(v).length === 2;
  const { axis } = known;
  const same = (kind: Kind = 'layout'): Assign => ({ ins: n.inputs.map(() => axis), outs: n.outputs.map(() => axis), kind });
  switch (n.op) {
    case 'reshape': {
      const [i, o] = [shape(n.inputs[0]), shape(n.outputs[0])];
      const other = known.input !== undefined ? reshapedAxis(i, axis, o) : reshapedAxis(o, axis, i);
      if (other === undefined) return undefined;
      return known.input !== undefined ? { ins: [axis], outs: [other], kind: 'layout' } : { ins: [other], outs: [axis], kind: 'layout' };
    }
    case 'transpose': {
      const perm = (n.attrs as OpAttrs['transpose']).perm;
      return known.input !== undefined ? { ins: [axis], outs: [perm.indexOf(axis)], kind: 'layout' } : { ins: [perm[axis]], outs: [axis], kind: 'layout' };
    }
    case 'broadcastTo':
      return shape(n.inputs[0]).length === shape(n.outputs[0]).length && shape(n.inputs[0])[axis] === shape(n.outputs[0])[axis] ? same() : undefined;
    case 'sum': {
      const { axes, keepDims } = n.attrs as OpAttrs['sum'];
      const kept = shape(n.inputs[0]).map((_, k) => k).filter((k) => keepDims || !axes.includes(k));
      const a = known.input !== undefined ? axis : kept[axis];
      if (a === undefined || axes.includes(a)) return undefined;
      return { ins: [a], outs: [keepDims ? a : kept.indexOf(a)], kind: 'layout' };
    }
    case 'rope':
    case 'attention':
    case 'attentionGrad':
      return axis < shape(n.inputs[0]).length - 2 ? same() : undefined;
    case 'matmul': {
      const { transA, transB } = n.attrs as OpAttrs['matmul'];
      const [x, w] = n.inputs;
      if (known.output !== undefined && !transA && isParam(w) && axis === shape(n.outputs[0]).length - 1)
        return { ins: [null, null], outs: [axis], kind: 'widen', param: [w, transB ? 0 : 1] };
      if (known.input === 0 && !transA && isParam(w) && axis === shape(x).length - 1)
        return { ins: [axis, null], outs: [null], kind: 'narrow', param: [w, transB ? 1 : 0] };
      if (known.input !== undefined && transA && !transB && shape(x).length === 2 && shape(w).length === 2 && axis === 1)
        return { ins: known.input === 0 ? [1, null] : [null, 1], outs: [null], kind: 'reduce' };
      return undefined;
    }
    default: {
      if (opTraits[n.op].kind !== 'elementwise' || n.outputs.length !== 1) return undefined;
      const out = shape(n.outputs[0]);
      const ins = n.inputs.map((x) => (sameShape(shape(x), out) ? axis : numel(shape(x)) === 1 && shape(x).length === 0 ? null : undefined));
      return ins.some((a) => a === undefined) ? undefined : { ins: ins as (number | null)[], outs: [axis], kind: 'layout' };
    }
  }
}

/** The regions of `g` that can be sliced. */
export function findHeadRegions(g: Graph): HeadRegion[] {
  const readers = g.values.map((): number[] => []);
  const producer = new Map<ValueId, Node>();
  g.nodes.forEach((n, i) => {
    n.inputs.forEach((x) => readers[x].push(i));
    n.outputs.forEach((o) => producer.set(o, n));
  });
  const regions: HeadRegion[] = [];
  const taken = new Set<number>();
  for (const seed of g.nodes) {
    if (seed.op !== 'attention' || seed.phase !== 'recompute' || taken.has(seed.id)) continue;
    const region = grow(g, readers, producer, seed);
    if (!region) continue;
    for (const i of region.kinds.keys()) taken.add(i);
    const checked = checkRegion(g, readers, region);
    if (checked) regions.push(checked);
  }
  return regions;
}

function grow(g: Graph, readers: readonly number[][], producer: ReadonlyMap<ValueId, Node>, seed: Node): HeadRegion | undefined {
  const kinds = new Map<number, Kind>();
  const axes = new Map<ValueId, number>();
  const paramAxes = new Map<ValueId, number>();
  const queue: ValueId[] = [];
  const apply = (n: Node, a: Assign | undefined): boolean => {
    if (!a || !chunkable(n) || n.outputs.includes(g.loss)) return false;
    kinds.set(n.id, a.kind);
    if (a.param) {
      if (paramAxes.has(a.param[0]) && paramAxes.get(a.param[0]) !== a.param[1]) return false;
      paramAxes.set(a.param[0], a.param[1]);
    }
    const vs = [...n.inputs.map((v, k) => [v, a.ins[k]] as const), ...n.outputs.map((v, k) => [v, a.outs[k]] as const)];
    for (const [v, ax] of vs) {
      if (ax === null) continue;
      if (axes.has(v)) {
        if (axes.get(v) !== ax) return false;
        continue;
      }
      axes.set(v, ax);
      queue.push(v);
    }
    return true;
  };
  if (!apply(seed, assign(g, seed, { output: 0, axis: g.values[seed.inputs[0]].shape.length - 3 }))) return undefined;
  while (queue.length) {
    const v = queue.pop()!;
    const ax = axes.get(v)!;
    const p = producer.get(v);
    if (!p) return undefined; // a head value from outside (an input or param): not this pass's shape
    if (!kinds.has(p.id) && !apply(p, assign(g, p, { output: p.outputs.indexOf(v), axis: ax }))) return undefined;
    for (const r of readers[v]) {
      if (kinds.has(r)) continue;
      const n = g.nodes[r];
      if (!apply(n, assign(g, n, { input: n.inputs.indexOf(v), axis: ax }))) return undefined;
    }
  }
  // Every matmul's non-head operand must not carry heads, and the head axis must slice evenly.
  for (const [i, kind] of kinds) {
    const n = g.nodes[i];
    if (kind === 'widen' && axes.has(n.inputs[0])) return undefined;
    if (kind === 'reduce' && n.inputs.filter((x) => axes.has(x)).length !== 1) return undefined;
    if (kind === 'narrow' && axes.has(n.outputs[0])) return undefined;
  }
  const heads = g.values[seed.inputs[0]].shape.at(-3)!;
  let step = 1;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const lens = [...[...axes].map(([v, a]) => g.values[v].shape[a])];
  for (const len of lens) {
    const need = heads / gcd(heads, len);
    step = (step * need) / gcd(step, need);
  }
  if (heads % step !== 0) return undefined;
  for (const [p, a] of paramAxes) if ((g.values[p].shape[a] * step) % heads !== 0) return undefined;
  return { heads, step, kinds, axes, paramAxes, updates: new Map(), norms: new Map() };
}

/** The region with its params' updates, or undefined when a param's gradient is not all its own. */
function checkRegion(g: Graph, readers: readonly number[][], r: HeadRegion): HeadRegion | undefined {
  const grads = new Map(Object.entries(g.grads ?? {}).map(([name, v]) => [v, name]));
  const gradOf = new Map<ValueId, ValueId>();
  for (const [i, kind] of r.kinds) {
    if (kind !== 'reduce') continue;
    const n = g.nodes[i];
    const param = g.params.find((p) => p.name === grads.get(n.outputs[0]))?.value;
    if (param === undefined || !r.paramAxes.has(param) || !sameShape(g.values[param].shape, g.values[n.outputs[0]].shape)) return undefined;
    const headIn = r.axes.has(n.inputs[0]) ? 0 : 1;
    if (r.paramAxes.get(param) !== headIn) return undefined;
    gradOf.set(param, n.outputs[0]);
  }
  const updates = new Map<ValueId, number>();
  const norms = new Map<ValueId, number>();
  const members = [...r.kinds.keys()];
  const first = Math.min(...members);
  const hasBackward = members.some((i) => g.nodes[i].phase === 'backward');
  for (const p of r.paramAxes.keys()) {
    const grad = gradOf.get(p);
    if (grad === undefined) {
      if (hasBackward) return undefined;
      continue; // a forward-only region (a run's recompute) reads the param and updates nothing
    }
    const ups = readers[grad].filter((i) => g.nodes[i].op === 'optimizerUpdate');
    const rest = readers[grad].filter((i) => g.nodes[i].op !== 'optimizerUpdate');
    if (ups.length !== 1 || rest.length > 1 || rest.some((i) => g.nodes[i].op !== 'sumSquares' || g.nodes[i].phase !== 'norm')) return undefined;
    if (rest.length) norms.set(p, rest[0]);
    const up = g.nodes[ups[0]];
    if (up.op !== 'optimizerUpdate' || up.inputs[up.attrs.inputs.p] !== p || up.attrs.window) return undefined;
    if (readers[p].some((i) => chunkable(g.nodes[i]) && !r.kinds.has(i) && i > first)) return undefined;
    updates.set(p, ups[0]);
  }
  return { ...r, updates, norms };
}
