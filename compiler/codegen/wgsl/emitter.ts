// What an op's WGSL emitter gets and returns. An emitter turns one scheduled node into one or
// more dispatches over the planned storage of its inputs and outputs. Its `key` names exactly
// what is baked into the WGSL text (tfjs-backend-webgpu's cache key rule); sizes that vary
// between calls of the same shader go into uniforms.
import type { Op } from '../../ir/ops.ts';
import type { DType, Graph, NodeOf, Shape, ValueId } from '../../ir/types.ts';
import type { BufferRef, Dispatch } from '../../../contract/program.ts';
import type { KernelTarget } from './target.ts';

export interface Slot {
  readonly value: ValueId;
  readonly ref: BufferRef;
  readonly shape: Shape;
  readonly dtype: DType;
}

/**
 * One kernel launch as an emitter returns it: the runtime's Dispatch (storage bindings 0..n-1, at
 * most 8, since browsers grant 8 to 10 per stage; u32 uniform words bound at n; workgroups) with
 * its WGSL and cache key, before lower.ts files the shader under its key and labels the dispatch.
 */
export interface KernelCall extends Omit<Dispatch, 'shader' | 'label'> {
  readonly key: string;
  readonly code: string;
}

export interface Limits {
  readonly maxWorkgroupSize: number;
  readonly maxWorkgroupsPerDimension: number;
  readonly maxWorkgroupStorageBytes: number;
}
export const defaultLimits: Limits = { maxWorkgroupSize: 256, maxWorkgroupsPerDimension: 65535, maxWorkgroupStorageBytes: 16384 };

export interface EmitContext {
  readonly g: Graph;
  readonly limits: Limits;
  /** The kernel shapes to emit (target.ts); the plan's scratch came from the same target. */
  readonly target: KernelTarget;
  /** The planned storage of a value (a CompilerBug when it has none). */
  slot(v: ValueId): Slot;
  /** The k-th scratch buffer of the node's group (see scratchRules). */
  scratch(k: number): BufferRef;
  /** Whether two values share storage (in-place updates, views): bind them once, read_write. */
  sameStorage(a: ValueId, b: ValueId): boolean;
  /**
   * The real ranges behind a slot's or scratch's ref: the ref itself, or, for a tensor split
   * across bindings (a stand-in ref, split-storage.ts), its pieces in order. Emitters that bind a
   * ref whole need not call it (lower.ts binds the pieces); one that runs as several dispatches
   * over element ranges (split-ranges.ts) binds parts of them. Absent: nothing is split.
   */
  pieces?(ref: BufferRef): readonly BufferRef[];
  /** Bytes one storage binding may span (the plan's maxBindingBytes); absent: WebGPU's default, 128 MiB. */
  readonly maxBindingBytes?: number;
}

export type Emitter<O extends Op> = (n: NodeOf<O>, c: EmitContext) => KernelCall[];

/** Bytes of scratch buffers a node's kernels need (row statistics and the like). */
export type ScratchRule<O extends Op> = (n: NodeOf<O>, g: Graph, target: KernelTarget) => readonly number[];

/** The bits of an f32, as a uniform word. */
export function f32bits(x: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, x, true);
  return b.getUint32(0, true);
}

/** Workgroups for `threads` invocations of `size` each, folded into 2D past the per-dimension limit. */
export function grid(threads: number, size: number, limits: Limits = defaultLimits): [number, number, number] {
  const groups = Math.max(1, Math.ceil(threads / size));
  const x = Math.min(groups, limits.maxWorkgroupsPerDimension);
  return [x, Math.ceil(groups / x), 1];
}
