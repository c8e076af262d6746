// What a reference kernel is, and the few helpers the kernel files share.
import type { Op, OpAttrs } from '../ir/ops.ts';
import type { TensorType } from '../ir/shape-rules.ts';
import { numel } from '../ir/shape.ts';
import type { Shape } from '../ir/types.ts';
import { type HostTensor, type Precision, store } from './tensor.ts';

/**
 * One op on host tensors. `out` holds the output types the shape rule gave (the executor takes
 * them from the graph), so a kernel never re-derives shapes or dtypes. Inputs are assumed to
 * follow the op's shape rule; the verifier checks graphs, not kernels.
 */
export type Kernel<O extends Op> = (
  ins: readonly HostTensor[],
  attrs: OpAttrs[O],
  out: readonly TensorType[],
  precision: Precision,
) => HostTensor[];

/** Rounds a kernel's exact results into the storage of output type `t`. */
export const result = (t: TensorType, precision: Precision, values: ArrayLike<number>): HostTensor =>
  store(t.shape, t.dtype, precision, values);

/** A shape seen as rows over its last axis: `rows` rows of `n` contiguous elements. */
export function lastAxisRows(shape: Shape): { rows: number; n: number } {
  const n = shape[shape.length - 1];
  const total = numel(shape);
  return { rows: n === 0 ? 0 : total / n, n };
}

/** A shape seen as a batch of [T, D] matrices over its last two axes. */
export function matrices(shape: Shape): { batch: number; t: number; d: number } {
  const t = shape[shape.length - 2];
  const d = shape[shape.length - 1];
  const total = numel(shape);
  return { batch: t * d === 0 ? 0 : total / (t * d), t, d };
}
