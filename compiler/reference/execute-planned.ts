// Runs a scheduled step inside its memory plan: every value is stored at its planned offset in
// byte arenas, so a value placed over another live one, a param read after its in-place update,
// or a view read after its storage was reused changes the result. Comparing this with `execute`
// on the plain step proves the schedule and the plan together. f32 precision only (the plan
// holds f32, f16, bf16 and i32 bytes).
import type { MemoryPlan } from '../ir/memory-plan.ts';
import { numel } from '../ir/shape.ts';
import type { Graph, Value, ValueId } from '../ir/types.ts';
import { bindFeed, runNode, type Feeds } from './execute.ts';
import { bf16bits, fromBf16bits } from '../../contract/bf16.ts';
import { f16bits, fromF16bits } from '../../contract/f16.ts';
import type { HostTensor } from './tensor.ts';

export interface PlannedExecution {
  readonly loss: number;
  /** Each param's and state's value after the step, read back from its (updated in place) storage. */
  readonly params: Record<string, HostTensor>;
  readonly state: Record<string, HostTensor>;
}

export function executePlanned(g: Graph, plan: MemoryPlan, feeds: Feeds): PlannedExecution {
  const arenas = plan.arenas.map((size) => new DataView(new ArrayBuffer(size)));
  const pieceAt = (v: ValueId) => {
    const b = plan.buffers[plan.bufferOf[v]];
    if (!b) throw new Error(`internal error: %${v} has no planned storage`);
    return b.pieces;
  };
  // Element i of a value lives at byte i * size of its buffer's concatenated pieces.
  const locate = (v: ValueId, byte: number): [DataView, number] => {
    for (const p of pieceAt(v)) {
      if (byte < p.bytes) return [arenas[p.arena], p.offset + byte];
      byte -= p.bytes;
    }
    throw new Error(`internal error: %${v} runs past its planned pieces`);
  };
  const write = (val: Value, t: HostTensor) => {
    for (let i = 0; i < t.data.length; i++) {
      if (val.dtype === 'f16' || val.dtype === 'bf16') {
        const [view, at] = locate(val.id, i * 2);
        view.setUint16(at, val.dtype === 'f16' ? f16bits(t.data[i]) : bf16bits(t.data[i]), true);
      } else {
        const [view, at] = locate(val.id, i * 4);
        if (val.dtype === 'i32') view.setInt32(at, t.data[i], true);
        else view.setFloat32(at, t.data[i], true);
      }
    }
  };
  const read = (val: Value): HostTensor => {
    const n = numel(val.shape);
    const data = val.dtype === 'i32' ? new Int32Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (val.dtype === 'f16' || val.dtype === 'bf16') {
        const [view, at] = locate(val.id, i * 2);
        data[i] = (val.dtype === 'f16' ? fromF16bits : fromBf16bits)(view.getUint16(at, true));
      } else {
        const [view, at] = locate(val.id, i * 4);
        data[i] = val.dtype === 'i32' ? view.getInt32(at, true) : view.getFloat32(at, true);
      }
    }
    return { shape: val.shape, data };
  };

  const feed = (kind: string, decls: readonly { name: string; value: ValueId }[], from: Readonly<Record<string, HostTensor>> = {}) => {
    for (const d of decls) {
      if (plan.bufferOf[d.value] < 0) continue; // never read
      write(g.values[d.value], bindFeed(kind, d.name, g.values[d.value], from[d.name], 'f32'));
    }
  };
  feed('input', g.inputs, feeds.inputs);
  feed('param', g.params, feeds.params);
  feed('state', g.state ?? [], feeds.state);

  // Values fused away (no storage) live only in registers between the nodes of their kernel:
  // here they stay in `scratch` from the node that makes them to the one that reads them.
  const stored = (v: ValueId) => plan.bufferOf[v] >= 0;
  const scratch = new Array<HostTensor | undefined>(g.values.length).fill(undefined);
  for (const n of g.nodes) {
    for (const x of n.inputs) if (stored(x)) scratch[x] = read(g.values[x]);
    runNode(n, g, scratch, 'f32');
    for (const x of n.inputs) if (stored(x)) scratch[x] = undefined;
    for (const o of n.outputs) {
      if (!stored(o)) continue;
      write(g.values[o], scratch[o]!);
      scratch[o] = undefined;
    }
  }
  const readBack = (decls: readonly { name: string; value: ValueId }[]) =>
    Object.fromEntries(decls.map((d) => [d.name, read(g.values[d.value])]));
  return { loss: read(g.values[g.loss]).data[0], params: readBack(g.params), state: readBack(g.state ?? []) };
}
