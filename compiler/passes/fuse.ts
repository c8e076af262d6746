// The fuse pass: which scheduled nodes run as one dispatch. Analysis only; the graph is unchanged.
// Requires: a scheduled graph (its node order is the order of dispatches).
// Ensures:
//   - every node is in exactly one group, and each group is a run of consecutive positions;
//   - a value in `internal` is made and read only inside one group (it has at least one reader),
//     and is not the loss, a param, an input, optimizer state or a param's new value: nothing
//     after the group, and nothing the host reads, needs its bytes;
//   - fusing changes no result: a group computes exactly what its nodes compute in order (up to
//     f32 rounding of values kept in registers instead of storage).
// Groups formed:
//   matmulUpdate (LOMO): a weight-gradient matmul and the update right after it that reads its
//     output as the gradient, when nothing else reads it and the update keeps no state (its rule
//     has none, no master copy). The gradient never exists in memory.
//   elementwise: chains of elementwise nodes with one output shape whose intermediates are read
//     only inside the chain, within 8 storage bindings.
//   matmulEpilogue: a matmul and such a chain right after it over the matmul's output (bias, activation).
import type { Fusion, GroupKind, KernelGroup } from '../ir/fusion.ts';
import type { Op } from '../ir/ops.ts';
import { fusibleOps } from '../ir/op-traits.ts';
import { sameShape } from '../ir/shape.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';
import { users } from '../ir/analysis.ts';
import { updateInput } from '../optimizers/update-layout.ts';

export interface FuseOptions {
  /** A weight-gradient matmul and its parameter update as one kernel (the descriptor's fuseMatmulUpdate). */
  readonly matmulUpdate: boolean;
  /** Chains of elementwise nodes as one kernel. */
  readonly elementwise: boolean;
  /** A matmul and the elementwise nodes on its output (bias, activation) as one kernel. */
  readonly matmulEpilogue?: boolean;
}

/** Ops a fused kernel evaluates per element in registers: the op table's elementwise ops (ir/op-traits.ts). */
export const elementwiseOps: ReadonlySet<Op> = fusibleOps;

/** Browsers grant 8 to 10 storage buffers per shader stage; every kernel stays within 8. */
export const maxGroupBindings = 8;

export function fuse(g: Graph, opts: FuseOptions): Fusion {
  const readers = users(g);
  // Values whose bytes someone outside any kernel needs: never internal.
  const pinned = new Set<ValueId>([
    g.loss,
    ...g.inputs.map((d) => d.value),
    ...g.params.map((d) => d.value),
    ...Object.values(g.updates ?? {}),
    ...(g.state ?? []).flatMap((s) => [s.value, s.next]),
  ]);
  const float = (v: ValueId) => g.values[v].dtype !== 'i32';
  const isElementwise = (n: Node | undefined): n is Node =>
    n !== undefined && elementwiseOps.has(n.op) && float(n.outputs[0]) && n.inputs.every(float);

  /** Values made in positions [from, to] and read only there. */
  const internalOf = (from: number, to: number): ValueId[] => {
    const out: ValueId[] = [];
    for (let i = from; i <= to; i++)
      for (const o of g.nodes[i].outputs)
        if (!pinned.has(o) && readers[o].length > 0 && readers[o].every((r) => r >= from && r <= to)) out.push(o);
    return out;
  };
  /** Storage bindings a kernel over [from, to] needs at most: inputs from outside, and outputs read outside. */
  const bindings = (from: number, to: number): number => {
    const made = new Set<ValueId>();
    const external = new Set<ValueId>();
    for (let i = from; i <= to; i++) {
      for (const x of g.nodes[i].inputs) if (!made.has(x)) external.add(x);
      for (const o of g.nodes[i].outputs) made.add(o);
    }
    const internal = new Set(internalOf(from, to));
    return external.size + [...made].filter((v) => !internal.has(v)).length;
  };

  /**
   * The end of the longest chain [head, to]: the elementwise nodes after `from` with output shape
   * `shape`, within the binding limit, whose intermediates (every value made before `to`) are read
   * only inside the chain. Only the last node's result is stored, so a chain never holds more
   * bytes at once than its nodes one by one do (two independent nodes side by side would: all
   * their inputs and all their outputs live together). Returns `head` when there is none.
   */
  const chainEnd = (head: number, from: number, shape: readonly number[], ok: (n: Node) => boolean = () => true): number => {
    let last = from - 1;
    while (isElementwise(g.nodes[last + 1]) && ok(g.nodes[last + 1]) && sameShape(g.values[g.nodes[last + 1].outputs[0]].shape, shape) &&
           bindings(head, last + 1) <= maxGroupBindings)
      last++;
    const closed = (to: number) => {
      for (let i = head; i < to; i++)
        for (const o of g.nodes[i].outputs) if (pinned.has(o) || !readers[o].length || readers[o].some((r) => r < head || r > to)) return false;
      return true;
    };
    for (let to = last; to >= from; to--) if (to > head && closed(to)) return to;
    return head;
  };

  const matmulUpdateAt = (i: number): boolean => {
    const [mm, up] = [g.nodes[i], g.nodes[i + 1]];
    if (mm?.op !== 'matmul' || up?.op !== 'optimizerUpdate' || up.attrs.states.length || up.attrs.window) return false;
    const grad = mm.outputs[0];
    const [param, gradIn] = [updateInput(up.attrs, up.inputs, 'p')!, updateInput(up.attrs, up.inputs, 'g')];
    // The kernel writes the param in place while it runs: the matmul must not read it.
    return gradIn === grad && !pinned.has(grad) && readers[grad].length === 1 &&
      up.inputs.filter((x) => x === grad).length === 1 && !mm.inputs.includes(param);
  };

  const groups: KernelGroup[] = [];
  const internal: ValueId[] = [];
  const add = (kind: GroupKind, from: number, to: number) => {
    groups.push({ kind, nodes: Array.from({ length: to - from + 1 }, (_, k) => from + k) });
    if (kind !== 'single') internal.push(...internalOf(from, to));
  };
  for (let i = 0; i < g.nodes.length; ) {
    const n = g.nodes[i];
    if (opts.matmulUpdate && matmulUpdateAt(i)) {
      add('matmulUpdate', i, i + 1);
      i += 2;
      continue;
    }
    if (opts.matmulEpilogue && n.op === 'matmul' && float(n.outputs[0])) {
      // The epilogue writes while other invocations still read A and B: no output may share their
      // storage, and only a parameter gradient's partial sum is ever accumulated in place.
      const to = chainEnd(i, i + 1, g.values[n.outputs[0]].shape, (e) => g.values[e.outputs[0]].role !== 'grad');
      if (to > i) {
        add('matmulEpilogue', i, to);
        i = to + 1;
        continue;
      }
    }
    if (opts.elementwise && isElementwise(n)) {
      const to = chainEnd(i, i + 1, g.values[n.outputs[0]].shape);
      if (to > i) {
        add('elementwise', i, to);
        i = to + 1;
        continue;
      }
    }
    add('single', i, i);
    i++;
  }
  return { groups, internal };
}

/** Problems with a fusion of `g` (empty when it keeps the pass's stated invariant). */
export function fusionProblems(g: Graph, f: Fusion): string[] {
  const out: string[] = [];
  const groupOf = new Array<number>(g.nodes.length).fill(-1);
  f.groups.forEach((grp, k) => {
    grp.nodes.forEach((i, j) => {
      if (j > 0 && i !== grp.nodes[j - 1] + 1) out.push(`group ${k} is not a run of consecutive positions`);
      if (groupOf[i] >= 0) out.push(`node #${i} is in groups ${groupOf[i]} and ${k}`);
      groupOf[i] = k;
    });
    if (grp.nodes.length === 0) out.push(`group ${k} is empty`);
  });
  groupOf.forEach((k, i) => k < 0 && out.push(`node #${i} is in no group`));
  const readers = users(g);
  const madeAt = new Array<number>(g.values.length).fill(-1);
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => (madeAt[o] = i)));
  const hostVisible = new Set<ValueId>([
    g.loss, ...g.inputs.map((d) => d.value), ...g.params.map((d) => d.value), ...Object.values(g.updates ?? {}),
    ...(g.state ?? []).flatMap((s) => [s.value, s.next]),
  ]);
  for (const v of new Set(f.internal)) {
    if (hostVisible.has(v)) out.push(`%${v} is internal but the host reads it`);
    if (madeAt[v] < 0) { out.push(`%${v} is internal but no node makes it`); continue; }
    const k = groupOf[madeAt[v]];
    if (readers[v].length === 0) out.push(`%${v} is internal but nothing reads it`);
    for (const r of readers[v]) if (groupOf[r] !== k) out.push(`%${v} is internal to group ${k} but node #${r} in group ${groupOf[r]} reads it`);
  }
  return out;
}
