// One checker per invariant of the training step, used by property tests and named cases alike.
import { lifetimes } from '../../compiler/passes/lifetimes.ts';
import type { MemoryPlan } from '../../compiler/ir/memory-plan.ts';
import { byteSize } from '../../compiler/ir/shape.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';

/** Freshness: no node reads a param after that param's update in the same step. */
export function freshnessViolations(g: Graph): string[] {
  const out: string[] = [];
  const updatedAt = new Map<ValueId, number>();
  g.nodes.forEach((n, i) => {
    for (const x of n.inputs) {
      const at = updatedAt.get(x);
      if (at !== undefined) out.push(`node #${i} ${n.op} reads param %${x} after its update at #${at}`);
    }
    if (n.phase === 'update') updatedAt.set(n.inputs[0], i);
  });
  return out;
}

/** Every gradient dies at its update (or, made by a clip-norm pass 1 for its norm alone, at its squared norm). */
export function gradsNotFreedByUpdate(g: Graph): string[] {
  const out: string[] = [];
  const lastReader = new Map<ValueId, number>();
  g.nodes.forEach((n, i) => n.inputs.forEach((x) => lastReader.set(x, i)));
  const updated = new Set(g.nodes.filter((n) => n.phase === 'update').map((n) => n.inputs[1]));
  g.nodes.forEach((n, i) => {
    if (n.phase !== 'update' && n.op !== 'sumSquares') return;
    const grad = n.inputs[n.phase === 'update' ? 1 : 0];
    if (n.op === 'sumSquares' && updated.has(grad)) return; // also updated (a norm pass's shared top): dies there
    if (lastReader.get(grad) !== i) out.push(`gradient %${grad} is read after ${n.op} #${i}`);
  });
  return out;
}

/**
 * The most gradient bytes live at one moment, and what LOMO may hold at once: one gradient (plus
 * tied partial sums), and what a clip-norm pass 1 shares with pass 2 (passes/norm-share.ts): its
 * gradients, stored until their updates in place of their blocks' activations, and a tied param's
 * partial sum made above the cut (pass 1's clone sum then needs bytes of its own).
 */
export function gradientMemory(g: Graph): { most: number; allowed: number } {
  const { buffers } = lifetimes(g);
  const delta = new Array<number>(g.nodes.length + 2).fill(0);
  for (const b of buffers) {
    if (b.category !== 'grads') continue;
    delta[b.start] += b.bytes;
    delta[b.end + 1] -= b.bytes;
  }
  let live = 0;
  let most = 0;
  for (const d of delta) most = Math.max(most, (live += d));
  // One param's gradient on a chain; tied params may also hold a partial sum meanwhile.
  const bytes = g.params.map((p) => byteSize(g.values[p.value].shape, g.values[p.value].dtype));
  const readers = new Map<ValueId, number>();
  for (const n of g.nodes) if (n.phase === "forward") for (const x of n.inputs) readers.set(x, (readers.get(x) ?? 0) + 1);
  const tied = g.params.filter((p) => (readers.get(p.value) ?? 0) > 1).map((p) => byteSize(g.values[p.value].shape, g.values[p.value].dtype));
  // A node with several gradient outputs (layerNormGrad: dgamma and dbeta) makes them together.
  const multi = Math.max(0, ...g.nodes.map((n) => n.outputs.filter((o) => g.values[o].role === 'grad').reduce((a, o) => a + byteSize(g.values[o].shape, g.values[o].dtype), 0)));
  // Shared: made by pass 1 and read after it (an update, or pass 2 adding to a tied param's partial sum).
  const fromPass1 = new Set(g.nodes.flatMap((n) => (n.phase === 'norm' ? n.outputs.filter((o) => g.values[o].role === 'grad') : [])));
  const readLater = new Set(g.nodes.flatMap((n) => (n.phase === 'update' || n.phase === 'backward' ? n.inputs.filter((x) => fromPass1.has(x)) : [])));
  const shared = [...readLater].map((v) => byteSize(g.values[v].shape, g.values[v].dtype));
  return { most, allowed: Math.max(...bytes, multi) + tied.reduce((a, b) => a + b, 0) + shared.reduce((a, b) => a + b, 0) };
}

/** Pieces live at the same time never overlap; offsets are aligned; pieces fit their arenas and a binding. */
export function planViolations(plan: MemoryPlan): string[] {
  const out: string[] = [];
  const all = plan.buffers.flatMap((b) => b.pieces.map((p) => ({ ...p, b })));
  for (const p of all) {
    if (p.offset % plan.alignment !== 0) out.push(`buffer ${p.b.id} piece at ${p.offset} is not aligned to ${plan.alignment}`);
    if (p.offset + p.bytes > plan.arenas[p.arena]) out.push(`buffer ${p.b.id} runs past its arena`);
    if (p.bytes > plan.maxBindingBytes) out.push(`buffer ${p.b.id} piece of ${p.bytes} bytes exceeds one binding`);
  }
  const byArena = new Map<number, typeof all>();
  for (const p of all) byArena.set(p.arena, [...(byArena.get(p.arena) ?? []), p]);
  for (const ps of byArena.values()) {
    ps.sort((a, c) => a.offset - c.offset);
    for (let i = 0; i < ps.length; i++)
      for (let j = i + 1; j < ps.length && ps[j].offset < ps[i].offset + ps[i].bytes; j++) {
        const [a, c] = [ps[i], ps[j]];
        if (a.b.start <= c.b.end && c.b.start <= a.b.end)
          out.push(`buffers ${a.b.id} and ${c.b.id} overlap in arena ${a.arena} while both are live`);
      }
  }
  for (const b of plan.buffers) {
    const total = b.pieces.reduce((s, p) => s + p.bytes, 0);
    if (total < b.bytes) out.push(`buffer ${b.id} has ${total} bytes of pieces for ${b.bytes} bytes of data`);
  }
  return out;
}
