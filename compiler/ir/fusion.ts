// Kernel groups: which scheduled nodes run as one dispatch. Made by passes/fuse.ts, read by the
// planner (values made and read inside one group need no storage) and by codegen.
import type { ValueId } from './types.ts';

export type GroupKind =
  /** One node, its own kernel(s). */
  | 'single'
  /** A chain of elementwise nodes evaluated per element in registers. */
  | 'elementwise'
  /** A matmul whose output goes through elementwise nodes before it is stored. */
  | 'matmulEpilogue'
  /** LOMO: a weight-gradient matmul and the update it feeds: the gradient never exists in memory. */
  | 'matmulUpdate'
  /** LOMO: the fused LM head's gradient and its weight's update, applied chunk by chunk: dW never exists whole. */
  | 'lossUpdate'
  /**
   * A gradient matmul and the sumSquares of its output (and the running sum's add of it, when
   * next): each workgroup's sum of squares is one partial, the partials are summed in a fixed
   * order. The output is stored only when something after the group reads it (SGD's update),
   * never in LOMO's norm pass.
   */
  | 'matmulNorm'
  /** A sumSquares and the running sum's add of it: the add folded into the reduction's store. */
  | 'normSum'
  /** LOMO: a reduction making a gradient (a bias's sum over rows) and the update it feeds, the same way. */
  | 'reduceUpdate'
  /** Consecutive updates of one rule and the same scalars: one multi-tensor kernel over all their elements. */
  | 'updateBatch';

export interface KernelGroup {
  readonly kind: GroupKind;
  /** Schedule positions, consecutive and ascending. */
  readonly nodes: readonly number[];
}

export interface Fusion {
  readonly groups: readonly KernelGroup[];
  /** Values made and read only inside one group: they live in registers, not in the plan. */
  readonly internal: readonly ValueId[];
}

/** Every node its own group: what the planner assumes when there is no fusion. */
export function noFusion(nodes: number): Fusion {
  return { groups: Array.from({ length: nodes }, (_, i) => ({ kind: 'single', nodes: [i] })), internal: [] };
}
