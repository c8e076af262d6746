// The memory planner. Requires: a scheduled graph. Ensures: every value with storage has an
// offset in an arena; pieces live at the same time never overlap; offsets are aligned; no piece
// is larger than one binding may be; `peak` is what the device allocates.
//
// Lifetimes come from lifetimes.ts; placement is greedy by size (largest first, lowest free
// offset among pieces live at the same time, in the arena it grows least), as TFLite's
// and tinygrad's planners do. With several arenas it is done twice, the second time placing the
// pieces live for the whole step (params, state) first, and the smaller peak is kept: weights
// packed first fill each capped arena almost exactly, where interleaved with temporaries they left
// gaps at each arena's end that no temporary fits (LLaMA-7B, 7 arenas of at most 2 GiB: 36 MiB of
// gaps against 1 MiB). Arenas are capped at one device buffer; a tensor larger than one
// storage binding (WebGPU's default maxStorageBufferBindingSize is 128 MiB) is split into pieces,
// which kernels address one binding each.
// Cost: O(k log k) for k pieces, plus O(log T) merged-run look-ups per piece and arena
// (arena-occupancy.ts); measured linear on chains to 100k nodes (bench/scaling.ts).
import { LomocError } from '../diagnostics.ts';
import type { Lifetime, MemoryPlan, Piece, PlannedBuffer } from '../ir/memory-plan.ts';
import { fmtShape } from '../ir/shape.ts';
import type { Fusion } from '../ir/fusion.ts';
import type { Graph } from '../ir/types.ts';
import { emptyOccupancy, lowestFree, occupy, type Occupancy } from './arena-occupancy.ts';
import { lifetimes } from './lifetimes.ts';

export interface PlanOptions {
  /** Offset alignment: WebGPU's minStorageBufferOffsetAlignment is 256. */
  readonly alignment?: number;
  readonly maxBindingBytes?: number;
  /** One arena is one device buffer; adapters commonly allow 2 GiB and more, WebGPU's default is 256 MiB. */
  readonly maxBufferBytes?: number;
  /** Kernel groups (passes/fuse.ts): internal values get no storage. */
  readonly fusion?: Fusion;
  /** Scratch bytes each kernel group needs while it runs (codegen decides them). */
  readonly scratch?: (group: number) => readonly number[];
  /** Values to keep until the end of the step (read back by tests or the host). */
  readonly keep?: readonly number[];
}

export const defaultPlanOptions = { alignment: 256, maxBindingBytes: 128 * 2 ** 20, maxBufferBytes: 2 * 2 ** 30 } as const;

const alignUp = (x: number, a: number) => Math.ceil(x / a) * a;

export function planMemory(g: Graph, opts: PlanOptions = {}): MemoryPlan {
  const { alignment, maxBindingBytes, maxBufferBytes } = { ...defaultPlanOptions, ...opts };
  const maxPiece = Math.floor(Math.min(maxBindingBytes, maxBufferBytes) / alignment) * alignment;
  const { buffers: lives, bufferOf, scratchOf } = lifetimes(g, opts.fusion, opts.scratch, opts.keep);

  checkCounts(g, lives, maxPiece);
  // Split into pieces of at most one binding, each aligned.
  const pieces: { buffer: number; index: number; size: number; start: number; end: number }[] = [];
  lives.forEach((b, i) => {
    let left = Math.max(b.bytes, 1);
    let k = 0;
    while (left > 0) {
      const size = Math.min(alignUp(left, alignment), maxPiece);
      pieces.push({ buffer: i, index: k++, size, start: b.start, end: b.end });
      left -= size;
    }
  });

  const steps = pieces.reduce((m, p) => Math.max(m, p.end + 1), g.nodes.length);
  const bySize = (i: number, j: number) => {
    const [a, b] = [pieces[i], pieces[j]];
    return b.size - a.size || a.start - b.start || a.buffer - b.buffer || a.index - b.index;
  };
  const order = pieces.map((_, i) => i).sort(bySize);
  let best = place(pieces, order, steps, maxBufferBytes);
  if (best.arenaSize.length > 1) {
    const whole = (i: number) => pieces[i].start === 0 && pieces[i].end >= steps - 1;
    const wholeFirst = place(pieces, [...order.filter(whole), ...order.filter((i) => !whole(i))], steps, maxBufferBytes);
    const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
    if (sum(wholeFirst.arenaSize) < sum(best.arenaSize)) best = wholeFirst;
  }
  const { arenaSize, placement } = best;

  const piecesOf: Piece[][] = lives.map(() => []);
  pieces.forEach((p, i) => piecesOf[p.buffer].push(placement[i]));
  const buffers: PlannedBuffer[] = lives.map((b, id) => ({ id, ...b, pieces: piecesOf[id] }));
  return {
    alignment,
    maxBindingBytes,
    maxBufferBytes,
    arenas: arenaSize,
    buffers,
    bufferOf,
    scratchOf,
    peak: arenaSize.reduce((a, b) => a + b, 0),
    lowerBound: liveBytesBound(pieces, g.nodes.length),
    steps: g.nodes.length,
  };
}

/** Greedy placement in `order`: each piece at the lowest free offset of the arena it grows least (a new arena when none has room). */
function place(pieces: readonly { size: number; start: number; end: number }[], order: readonly number[], steps: number, maxBufferBytes: number): { arenaSize: number[]; placement: Piece[] } {
  const arenas: Occupancy[] = [];
  const arenaSize: number[] = [];
  const placement: Piece[] = [];
  for (const i of order) {
    const p = pieces[i];
    let best: { arena: number; offset: number; growth: number } | undefined;
    arenas.forEach((placed, a) => {
      const offset = lowestFree(placed, p.start, p.end, p.size);
      if (offset + p.size > maxBufferBytes) return;
      const growth = Math.max(0, offset + p.size - arenaSize[a]);
      if (!best || growth < best.growth) best = { arena: a, offset, growth };
    });
    if (!best) {
      arenas.push(emptyOccupancy(steps));
      arenaSize.push(0);
      best = { arena: arenas.length - 1, offset: 0, growth: p.size };
    }
    occupy(arenas[best.arena], p.start, p.end, best.offset, p.size);
    arenaSize[best.arena] = Math.max(arenaSize[best.arena], best.offset + p.size);
    placement[i] = { arena: best.arena, offset: best.offset, bytes: p.size };
  }
  return { arenaSize, placement };
}

/** Bindings past this per tensor (8 TiB at 128 MiB each), or this many in all, are no device's plan and would take long to place. */
export const maxPiecesPerTensor = 65536;
export const maxPiecesInAll = 2 ** 22;

/** Sizes a plan can hold exactly and place in reasonable time, or a user error at the tensor's line. */
function checkCounts(g: Graph, lives: readonly Lifetime[], maxPiece: number): void {
  let total = 0;
  let pieces = 0;
  for (const b of lives) {
    const v = b.values.length ? g.values[b.values[0]] : undefined;
    const what = v ? `a ${v.dtype}${fmtShape(v.shape)} tensor` : 'a kernel scratch buffer';
    const n = Math.ceil(Math.max(b.bytes, 1) / maxPiece);
    if (!Number.isSafeInteger(b.bytes) || n > maxPiecesPerTensor)
      throw new LomocError(`plan: ${what} takes ${b.bytes} bytes, ${n} storage bindings of at most ${maxPiece} bytes; lomoc plans at most ${maxPiecesPerTensor} per tensor`, v?.loc);
    total += b.bytes;
    pieces += n;
  }
  if (!Number.isSafeInteger(total) || pieces > maxPiecesInAll)
    throw new LomocError(`plan: the step's tensors take ${total} bytes in ${pieces} storage bindings of at most ${maxPiece} bytes; lomoc plans at most ${maxPiecesInAll} bindings and 2^53 - 1 bytes`);
}

/** The most aligned bytes live at one schedule position. */
function liveBytesBound(pieces: readonly { size: number; start: number; end: number }[], steps: number): number {
  const delta = new Array<number>(steps + 2).fill(0);
  for (const p of pieces) {
    delta[p.start] += p.size;
    delta[p.end + 1] -= p.size;
  }
  let live = 0;
  let most = 0;
  for (const d of delta) most = Math.max(most, (live += d));
  return most;
}
