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
//   lossUpdate (LOMO): the same for the fused LM head (linearCrossEntropyGrad) and the update of
//     its weight W: each vocabulary chunk's rows of dW are complete when written, and no later
//     chunk reads that chunk of W, so each is applied at once. Not for a tied head (its dW is also
//     read by the sum with the embedding's gradient) nor where dW feeds a norm.
//   reduceUpdate (LOMO): the same for a sum that makes a gradient (a bias's, over the rows of
//     its output gradient) and the update right after it.
//   elementwise: chains of elementwise nodes with one output shape whose intermediates are read
//     only inside the chain, within 8 storage bindings.
//   matmulEpilogue: a matmul and such a chain right after it over the matmul's output (bias,
//     activation), whose intermediates may also be read after it (stored then: a pre-activation);
//     then optionally [reshape,] transpose of the result (attention's heads), stored transposed.
//   matmulNorm: a matmul with an f32 output and the sumSquares of that output right after it (the
//     clip-norm's squared norm of a weight gradient). In LOMO's norm pass nothing else reads the
//     gradient, so it is internal: pass 1 stores no weight gradient. SGD's step forms the same
//     group (storing the gradient for its update), so both sum the same partials in the same order.
//     The clip-norm's running sum `add(total, ss)` right after it joins the group (matmulNorm), as
//     it joins a lone sumSquares (normSum): the f32 add done at the reduction's store, one
//     dispatch fewer per param.
//   updateBatch: consecutive optimizer updates with the same batchKey (one rule, the same
//     hyper-parameters and scalar inputs, f32 arrays of the param's shape), at most maxBatchUpdates:
//     one multi-tensor kernel; each element's update is the same rule, so the result is unchanged.
import type { Fusion, GroupKind, KernelGroup } from '../ir/fusion.ts';
import type { Op } from '../ir/ops.ts';
import { fusibleOps } from '../ir/op-traits.ts';
import { byteSize, sameShape } from '../ir/shape.ts';
import { defaultPlanOptions } from './plan-memory.ts';
import type { Graph, Node, ValueId } from '../ir/types.ts';
import { users } from '../ir/analysis.ts';
import { updateInput } from '../optimizers/update-layout.ts';
import { updateRule } from '../optimizers/table.ts';

export interface FuseOptions {
  /** A weight-gradient matmul and its parameter update as one kernel (the descriptor's fuseMatmulUpdate). */
  readonly matmulUpdate: boolean;
  /** A sum making a gradient and its parameter update as one kernel (on with matmulUpdate by default). */
  readonly reduceUpdate?: boolean;
  /** Chains of elementwise nodes as one kernel. */
  readonly elementwise: boolean;
  /** A matmul and the elementwise nodes on its output (bias, activation) as one kernel. */
  readonly matmulEpilogue?: boolean;
  /** A matmul and the sumSquares of its output as one kernel (partials per workgroup, then their sum); the running sum's add folded in. */
  readonly matmulNorm?: boolean;
  /** Consecutive updates of one rule as one multi-tensor kernel (updateBatch). */
  readonly updateBatch?: boolean;
  /**
   * The plan's binding and buffer limits (defaultPlanOptions when absent): a tensor past them is
   * split into pieces, each a binding of its own, which a group's binding count cannot see. So a
   * matmul epilogue stores an intermediate beside its result only when nothing it binds is split.
   */
  readonly maxBindingBytes?: number;
  readonly maxBufferBytes?: number;
}

/** Ops a fused kernel evaluates per element in registers: the op table's elementwise ops (ir/op-traits.ts). */
export const elementwiseOps: ReadonlySet<Op> = fusibleOps;

/** Browsers grant 8 to 10 storage buffers per shader stage; every kernel stays within 8. */
export const maxGroupBindings = 8;

const definedOnly = (o: FuseOptions) => ({
  ...(o.maxBindingBytes === undefined ? {} : { maxBindingBytes: o.maxBindingBytes }),
  ...(o.maxBufferBytes === undefined ? {} : { maxBufferBytes: o.maxBufferBytes }),
});

/** Updates one batch kernel takes at most (its table of ranges is a uniform array, 64 KiB at most). */
export const maxBatchUpdates = 64;

/**
 * What must be equal for two updates to share one kernel, or undefined when `n` cannot join a
 * batch: the rule (per element, in WGSL, no reduction form), its flags and hyper-parameters, the
 * very same scalar inputs (lr, weight decay, step, clip factor), f32 arrays all of the param's
 * shape, no master copy and no stochastic rounding (their storage and bit streams are per param).
 */
export function batchKey(g: Graph, n: Node): string | undefined {
  if (n.op !== 'optimizerUpdate') return undefined;
  const a = n.attrs;
  const rule = updateRule(a.rule);
  if (!rule.wgsl || rule.reduction || a.master || a.stochastic) return undefined;
  const p = g.values[updateInput(a, n.inputs, 'p')!];
  const arrays = [...[p.id, updateInput(a, n.inputs, 'g')!, ...a.states.map((s) => updateInput(a, n.inputs, s)!)], ...n.outputs].map((v) => g.values[v]);
  if (arrays.some((v) => v.dtype !== 'f32' || !sameShape(v.shape, p.shape))) return undefined;
  const scalars = (['lr', 'wd', 'step', 'scale'] as const).map((s) => updateInput(a, n.inputs, s) ?? null);
  if (scalars.some((v) => v !== null && g.values[v].dtype !== 'f32')) return undefined;
  return JSON.stringify([a.rule, a.hyper, a.clipValue, a.scaled, a.states, a.inputs, scalars]);
}

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

  const { alignment, maxBindingBytes, maxBufferBytes } = { ...defaultPlanOptions, ...definedOnly(opts) };
  const maxPiece = Math.floor(Math.min(maxBindingBytes, maxBufferBytes) / alignment) * alignment; // as plan-memory.ts splits
  /** Whether no value positions [from, to] read or make is split across bindings. */
  const whole = (from: number, to: number): boolean => {
    for (let i = from; i <= to; i++)
      for (const v of [...g.nodes[i].inputs, ...g.nodes[i].outputs]) if (byteSize(g.values[v].shape, g.values[v].dtype) > maxPiece) return false;
    return true;
  };

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
   * only inside the chain, or with `outliving` also after it (then stored as well: a matmul
   * epilogue's pre-activation, which backward reads). So a chain never holds more bytes at once
   * than its nodes one by one do (two independent nodes side by side would: all their inputs and
   * all their outputs live together). Not so for plain chains with `outliving`: unfused, a node's
   * result may take the storage of an input that dies there, and in a group it cannot (measured:
   * +90 MB on llama-7b f16); a matmul's output never shares its operands' storage anyway. Only
   * f32 values outlive a chain: an f16 one would be stored rounded but read on unrounded in
   * registers, so later readers and the chain would see two values (llama tiny f16 drifted past
   * its tolerance against the reference's f16 emulation). Returns `head` when there is none.
   */
  const chainEnd = (head: number, from: number, shape: readonly number[], ok: (n: Node) => boolean = () => true, outliving = false): number => {
    let last = from - 1;
    while (isElementwise(g.nodes[last + 1]) && ok(g.nodes[last + 1]) && sameShape(g.values[g.nodes[last + 1].outputs[0]].shape, shape) &&
           bindings(head, last + 1) <= maxGroupBindings)
      last++;
    const closed = (to: number) => {
      for (let i = head; i < to; i++)
        for (const o of g.nodes[i].outputs)
          if (pinned.has(o) || !readers[o].length || readers[o].some((r) => r < head || (r > to && !(outliving && g.values[o].dtype === 'f32' && whole(head, to))))) return false;
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

  const lossUpdateAt = (i: number): boolean => {
    const [ce, up] = [g.nodes[i], g.nodes[i + 1]];
    if (ce?.op !== 'linearCrossEntropyGrad' || up?.op !== 'optimizerUpdate' || up.attrs.states.length) return false;
    const dw = ce.outputs[1];
    const param = updateInput(up.attrs, up.inputs, 'p')!;
    // Chunk by chunk, the update may write W only (it is read a chunk at a time); never h or the targets.
    // Its kernels bind at most 4 values each, but the dW kernel with the update: h, the workspace and the update's inputs.
    return updateInput(up.attrs, up.inputs, 'g') === dw && param === ce.inputs[1] && !pinned.has(dw) &&
      readers[dw].length === 1 && up.inputs.filter((x) => x === dw).length === 1 &&
      2 + new Set(up.inputs.filter((x) => x !== dw)).size <= maxGroupBindings;
  };
  // f16 storage: sumSquares reads the rounded stored gradient, which the accumulator is not.
  const matmulNormAt = (i: number): boolean => {
    const [mm, ss] = [g.nodes[i], g.nodes[i + 1]];
    return mm?.op === 'matmul' && ss?.op === 'sumSquares' && ss.inputs[0] === mm.outputs[0] && g.values[mm.outputs[0]].dtype === 'f32';
  };
  /** The running sum's add of the squared norm at `j`, its only reader, right after it. */
  const normAddAt = (j: number): boolean => {
    const [ss, add] = [g.nodes[j], g.nodes[j + 1]];
    if (ss?.op !== 'sumSquares' || add?.op !== 'add') return false;
    const [total, part] = add.inputs;
    return part === ss.outputs[0] && total !== part && !pinned.has(part) && readers[part].length === 1 &&
      [total, part, add.outputs[0]].every((v) => g.values[v].dtype === 'f32' && g.values[v].shape.length === 0);
  };

  /** A sum at i whose output only the stateless update at i + 1 reads, as its gradient. */
  const reduceUpdateAt = (i: number): boolean => {
    const [sum, up] = [g.nodes[i], g.nodes[i + 1]];
    if (sum?.op !== 'sum' || up?.op !== 'optimizerUpdate' || up.attrs.states.length || up.attrs.master) return false;
    const rule = updateRule(up.attrs.rule);
    const grad = sum.outputs[0];
    const param = updateInput(up.attrs, up.inputs, 'p')!;
    return !!rule.wgsl && !rule.reduction && float(sum.inputs[0]) && updateInput(up.attrs, up.inputs, 'g') === grad && !pinned.has(grad) &&
      readers[grad].length === 1 && up.inputs.filter((x) => x === grad).length === 1 && !sum.inputs.includes(param);
  };

  /**
   * A matmul epilogue's result split into heads: [reshape,] transpose right after position `to`,
   * each reading only the value before it. The epilogue then stores each element at its
   * transposed position, and nothing the group makes before may be read after it. Returns the
   * transpose's position, or -1.
   */
  const transposeTail = (head: number, to: number): number => {
    const only = (v: ValueId, at: number) => !pinned.has(v) && readers[v].length === 1 && readers[v][0] === at && g.values[v].role !== 'grad';
    let x = g.nodes[to].outputs[0];
    let k = to + 1;
    if (g.nodes[k]?.op === 'reshape' && g.nodes[k].inputs[0] === x && only(x, k)) x = g.nodes[k++].outputs[0];
    const t = g.nodes[k];
    if (t?.op !== 'transpose' || t.inputs[0] !== x || !only(x, k) || !float(t.outputs[0]) || g.values[t.outputs[0]].role === 'grad') return -1;
    for (let j = head; j < to; j++) for (const o of g.nodes[j].outputs) if (readers[o].some((r) => r > to)) return -1;
    return bindings(head, k) <= maxGroupBindings ? k : -1;
  };

  const groups: KernelGroup[] = [];
  const internal: ValueId[] = [];
  const add = (kind: GroupKind, from: number, to: number) => {
    groups.push({ kind, nodes: Array.from({ length: to - from + 1 }, (_, k) => from + k) });
    if (kind !== 'single') internal.push(...internalOf(from, to));
  };
  for (let i = 0; i < g.nodes.length; ) {
    const n = g.nodes[i];
    if (opts.matmulUpdate && (matmulUpdateAt(i) || lossUpdateAt(i))) {
      add(n.op === 'matmul' ? 'matmulUpdate' : 'lossUpdate', i, i + 1);
      i += 2;
      continue;
    }
    if (opts.matmulNorm && matmulNormAt(i)) {
      const to = normAddAt(i + 1) ? i + 2 : i + 1;
      add('matmulNorm', i, to);
      i = to + 1;
      continue;
    }
    if (opts.matmulNorm && normAddAt(i)) {
      add('normSum', i, i + 1);
      i += 2;
      continue;
    }
    if (opts.reduceUpdate && reduceUpdateAt(i)) {
      add('reduceUpdate', i, i + 1);
      i += 2;
      continue;
    }
    const key = opts.updateBatch ? batchKey(g, n) : undefined;
    if (key !== undefined) {
      // No update of the batch reads what an earlier one wrote (all run at once).
      const written = new Set<ValueId>(n.outputs);
      let to = i;
      for (let m = g.nodes[to + 1]; m && to - i + 1 < maxBatchUpdates && batchKey(g, m) === key && !m.inputs.some((x) => written.has(x)); m = g.nodes[to + 1]) {
        m.outputs.forEach((o) => written.add(o));
        to++;
      }
      if (to > i) {
        add('updateBatch', i, to);
        i = to + 1;
        continue;
      }
    }
    if (opts.matmulEpilogue && n.op === 'matmul' && float(n.outputs[0])) {
      // The epilogue writes while other invocations still read A and B: no output may share their
      // storage, and only a parameter gradient's partial sum is ever accumulated in place.
      const chained = chainEnd(i, i + 1, g.values[n.outputs[0]].shape, (e) => g.values[e.outputs[0]].role !== 'grad', true);
      const to = Math.max(chained, transposeTail(i, chained));
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
