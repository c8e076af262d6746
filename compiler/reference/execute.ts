// Runs a graph on host tensors, node by node in the graph's order, keeping every value. This is
// the oracle: slow and exact, and deterministic (same graph and feeds, same bits).
import type { Op } from '../ir/ops.ts';
import { fmtShape, numel, sameShape } from '../ir/shape.ts';
import type { Graph, Loc, NodeOf, Value, ValueId } from '../ir/types.ts';
import { kernels } from './kernels.ts';
import { conform, type HostTensor, type Precision } from './tensor.ts';

/** Host data for the graph's inputs, params and optimizer state, keyed by their declared names. */
export interface Feeds {
  readonly inputs: Readonly<Record<string, HostTensor>>;
  readonly params: Readonly<Record<string, HostTensor>>;
  readonly state?: Readonly<Record<string, HostTensor>>;
}

export interface Execution {
  /** Indexed by ValueId: the fed values (converted to the precision's storage) and every node's outputs. */
  readonly values: readonly (HostTensor | undefined)[];
  readonly loss: number;
}

const fmtLoc = (l: Loc): string => `${l.file}:${l.line}:${l.col}`;
const fmtType = (v: Value): string => `${v.dtype}${fmtShape(v.shape)}`;

/** The feed in the storage its value needs; throws naming the feed when it is missing or does not fit. */
export function bindFeed(kind: string, name: string, v: Value, t: HostTensor | undefined, precision: Precision): HostTensor {
  const what = `execute: ${kind} '${name}'`;
  if (!t) throw new Error(`${what} is missing (expected ${fmtType(v)})`);
  if (!sameShape(t.shape, v.shape))
    throw new Error(`${what} must have shape ${fmtShape(v.shape)}, got ${fmtShape(t.shape)}`);
  if (t.data.length !== numel(v.shape))
    throw new Error(`${what} must hold ${numel(v.shape)} elements for shape ${fmtShape(v.shape)}, got ${t.data.length}`);
  if (v.dtype === 'i32' && !(t.data instanceof Int32Array))
    throw new Error(`${what} must be i32 data (an Int32Array), got a ${t.data.constructor.name}`);
  return conform(t, v.dtype, precision);
}

export function runNode<O extends Op>(n: NodeOf<O>, g: Graph, values: (HostTensor | undefined)[], precision: Precision): void {
  const ins = n.inputs.map((id) => {
    const t = values[id];
    if (!t)
      throw new Error(`internal error: node #${n.id} (${n.op}) reads %${id}, which holds no value yet (is the graph verified?)`);
    return t;
  });
  const types = n.outputs.map((id) => g.values[id]);
  let outs: HostTensor[];
  try {
    outs = kernels[n.op](ins, n.attrs, types, precision);
  } catch (e) {
    // Kernel errors are about the data (an id out of range): point at the op that read it.
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(`${fmtLoc(n.loc)}: error: ${n.op}: ${message}`, { cause: e });
  }
  n.outputs.forEach((id: ValueId, k) => {
    const t = outs[k];
    if (!t || !sameShape(t.shape, types[k].shape) || t.data.length !== numel(types[k].shape))
      throw new Error(
        `internal error: the ${n.op} kernel made ${t ? fmtShape(t.shape) : 'nothing'} for %${id}, expected ${fmtType(types[k])}`,
      );
    values[id] = t;
  });
}

/**
 * Runs every node of `g` in order. Float values are held in f64 or rounded to f32 on every store
 * (see tensor.ts); feeds in another storage are converted, so f64 data may feed an f32 run.
 * Feeds the graph does not declare are ignored.
 */
export function execute(g: Graph, feeds: Feeds, precision: Precision): Execution {
  const values = new Array<HostTensor | undefined>(g.values.length).fill(undefined);
  for (const d of g.inputs) values[d.value] = bindFeed('input', d.name, g.values[d.value], feeds.inputs[d.name], precision);
  for (const d of g.params) values[d.value] = bindFeed('param', d.name, g.values[d.value], feeds.params[d.name], precision);
  for (const d of g.state ?? []) values[d.value] = bindFeed('state', d.name, g.values[d.value], feeds.state?.[d.name], precision);
  for (const n of g.nodes) runNode(n, g, values, precision);
  const loss = values[g.loss];
  if (!loss) throw new Error(`internal error: graph '${g.name}' never computes its loss %${g.loss}`);
  if (loss.data.length !== 1)
    throw new Error(`internal error: graph '${g.name}' has a loss of shape ${fmtShape(loss.shape)}, expected a scalar`);
  return { values, loss: loss.data[0] };
}

/** The values a graph names (its grads, its updates), by name. */
export function pick(ex: Execution, ids: Readonly<Record<string, ValueId>> | undefined): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, id] of Object.entries(ids ?? {})) {
    const t = ex.values[id];
    if (!t) throw new Error(`execute: '${name}' (%${id}) was not computed`);
    out[name] = t;
  }
  return out;
}
