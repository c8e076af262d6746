// The memory plan as data: where every value lives during one training step. Made by
// passes/plan-memory.ts, read by the executors (reference and WebGPU) and the reports.
import type { ValueId } from './types.ts';

/** Byte categories, as in the paper's Table 1 (plus transient workspace). */
export type Category = 'params' | 'grads' | 'optimizerState' | 'activations' | 'workspace';
export const categories: readonly Category[] = ['params', 'grads', 'optimizerState', 'activations', 'workspace'];

/** A contiguous part of a buffer: no binding is larger than the device allows. */
export interface Piece {
  readonly arena: number;
  readonly offset: number;
  readonly bytes: number;
}

/** One storage and when it is live (passes/lifetimes.ts finds these; the planner places them). */
export interface Lifetime {
  /** The values stored here: the first made it; the rest are views or in-place updates of it. */
  readonly values: readonly ValueId[];
  readonly category: Category;
  /** Size of the data in bytes (unaligned). */
  readonly bytes: number;
  /** First and last schedule positions (node indices) at which it is live, inclusive. */
  readonly start: number;
  readonly end: number;
  /** Outlives the step (params, optimizer state). */
  readonly persistent: boolean;
}

export interface PlannedBuffer extends Lifetime {
  readonly id: number;
  readonly pieces: readonly Piece[];
}

export interface MemoryPlan {
  readonly alignment: number;
  readonly maxBindingBytes: number;
  readonly maxBufferBytes: number;
  /** Size of each arena (one device buffer each). */
  readonly arenas: readonly number[];
  readonly buffers: readonly PlannedBuffer[];
  /** For each value id, the index of its buffer (-1 for values with no storage). */
  readonly bufferOf: readonly number[];
  /** For each kernel group (when planned with a fusion), its scratch buffers' indices. */
  readonly scratchOf: readonly (readonly number[])[];
  /** Sum of the arenas: what the device allocates. */
  readonly peak: number;
  /** The most aligned bytes live at one moment: no plan can be smaller. */
  readonly lowerBound: number;
  /** Number of schedule positions (nodes). */
  readonly steps: number;
}
