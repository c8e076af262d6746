// The rewriting both slice passes share (width-chunk.ts over an FFN's width, head-chunk.ts over
// attention heads): a builder whose `emit` can write into existing values, window updates that
// chain each param's (and its states') current value, and the tail that places what a slice loop
// deferred. Requires: `g` in textbook order, `updates`/`norms` naming each windowed param's
// optimizerUpdate and one-pass sumSquares node. Ensures: `finish` gives `g` with every 'loop' marker
// expanded by the caller, each deferred param's window updates chained at its original update's
// place (the last writing the update's own outputs), each deferred sumSquares the windows' squares
// added in window order, and the windowed params' whole gradients gone from `grads`.
import { CompilerBug } from '../diagnostics.ts';
import { GraphBuilder } from '../ir/builder.ts';
import type { Op, OpAttrs, UpdateAttrs } from '../ir/ops.ts';
import { sameShape } from '../ir/shape.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';

/** The windowed params: each one's update node, its one-pass norm node, and its sliced axis. */
export interface WindowTargets {
  readonly updates: ReadonlyMap<ValueId, number>;
  readonly norms: ReadonlyMap<ValueId, number>;
  readonly axes: ReadonlyMap<ValueId, number>;
}

/** Appends `op` shaped like `like` (its place, phase and block); with `into`, its outputs are those existing values (same types). */
export type Emit = <O extends Op>(op: O, inputs: readonly ValueId[], attrs: OpAttrs[O], like: Node, roles: 'activation' | 'grad' | readonly ValueId[], into?: readonly ValueId[]) => ValueId[];

/** `pass` names the caller in compiler-bug messages; `inBackward` (LOMO): a window is updated as soon as its gradient is complete. */
export function windowRewrite(g: Graph, t: WindowTargets, pass: string, inBackward: boolean) {
  const b = new GraphBuilder(g.name, { ...g, nodes: [] });
  const push = (m: Node) => b.nodes.push({ ...m, id: b.nodes.length });
  const emit: Emit = (op, inputs, attrs, like, roles, into) => {
    const role = typeof roles === 'string' ? roles : roles.map((v) => g.values[v].role);
    const outs = b.node(op, inputs, attrs, like.loc, like.phase === 'update' ? 'update' : like.phase, role);
    const last = b.nodes.length - 1;
    const node = { ...b.nodes[last], ...(like.block !== undefined ? { block: like.block } : {}) };
    if (into === undefined) {
      b.nodes[last] = node;
      return outs;
    }
    outs.forEach((v, k) => {
      if (!sameShape(b.values[v].shape, g.values[into[k]].shape) || b.values[v].dtype !== g.values[into[k]].dtype)
        throw new CompilerBug(`${pass}: %${into[k]} is ${g.values[into[k]].dtype}[${g.values[into[k]].shape}], its sliced form ${b.values[v].dtype}[${b.values[v].shape}]`);
    });
    b.nodes[last] = { ...node, outputs: into } as Node;
    return [...into];
  };
  // The current value of each windowed param and its states (LOMO: after the windows updated so far).
  const current = new Map<ValueId, ValueId[]>();
  for (const [p, u] of t.updates) {
    const up = g.nodes[u] as Node & { op: 'optimizerUpdate' };
    current.set(p, [p, ...up.attrs.states.map((s) => up.inputs[up.attrs.inputs[s]])]);
  }
  const windowUpdate = (p: ValueId, grad: ValueId, start: number, end: number, last: boolean) => {
    const up = g.nodes[t.updates.get(p)!] as Node & { op: 'optimizerUpdate' };
    const a = up.attrs;
    const cur = current.get(p)!;
    const ins = up.inputs.map((x, k) => (k === a.inputs.g ? grad : k === a.inputs.p ? cur[0] : a.states.includes(inputName(a, k)) ? cur[1 + a.states.indexOf(inputName(a, k))] : x));
    const attrs: UpdateAttrs = { ...a, window: { axis: t.axes.get(p)!, start, end } };
    current.set(p, emit('optimizerUpdate', ins, attrs, up, up.outputs, last ? up.outputs : undefined));
  };
  const deferred = new Map<ValueId, { start: number; end: number; grad: ValueId }[]>();
  /** A window's complete gradient: updated at once (LOMO), else kept for its update's place. */
  const windowGradient = (p: ValueId, grad: ValueId, start: number, end: number, last: boolean) => {
    if (inBackward) windowUpdate(p, grad, start, end, last);
    else deferred.set(p, [...(deferred.get(p) ?? []), { start, end, grad }]);
  };
  /** Emits `order`, the caller expanding each 'loop'; deferred window updates and norms go where the whole ones were. */
  const finish = (order: readonly (Node | 'loop')[], loop: () => void): Graph => {
    const replaced = new Map([...t.updates].map(([p, u]) => [u, p]));
    const normed = new Map([...t.norms].map(([p, i]) => [i, p]));
    const windowsOf = (p: ValueId) => {
      const ws = deferred.get(p);
      if (!ws) throw new CompilerBug(`${pass}: %${p}'s update or norm comes before its window gradients`);
      return ws;
    };
    for (const item of order) {
      if (item === 'loop') loop();
      else if (!inBackward && replaced.has(item.id)) {
        const p = replaced.get(item.id)!;
        const ws = windowsOf(p);
        ws.forEach(({ start, end, grad }, k) => windowUpdate(p, grad, start, end, k === ws.length - 1));
      } else if (normed.has(item.id)) {
        // The whole gradient's sum of squares: the windows' sums added in window order.
        const ws = windowsOf(normed.get(item.id)!);
        const into = [item.outputs[0]];
        let total: ValueId | undefined;
        ws.forEach(({ grad }, k) => {
          const last = k === ws.length - 1;
          const ss = emit('sumSquares', [grad], {}, item, item.outputs, k === 0 && last ? into : undefined)[0];
          total = total === undefined ? ss : emit('add', [total, ss], {}, item, item.outputs, last ? into : undefined)[0];
        });
      } else push(item);
    }
    // The windowed params have no whole gradient any more.
    const windowed = new Set(g.params.filter((q) => t.updates.has(q.value)).map((q) => q.name));
    const grads = Object.fromEntries(Object.entries(g.grads ?? {}).filter(([name]) => !windowed.has(name)));
    return { ...g, values: b.values, nodes: b.nodes, grads };
  };
  return { b, push, emit, current, windowGradient, finish };
}

const inputName = (a: UpdateAttrs, k: number): string => Object.entries(a.inputs).find(([, i]) => i === k)![0];
