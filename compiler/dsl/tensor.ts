// A traced tensor: a handle on one SSA value of the graph being built. It holds no data.
import type { DType, Shape, ValueId } from '../ir/types.ts';

export interface Tensor {
  readonly id: ValueId;
  readonly shape: Shape;
  readonly dtype: DType;
  /** Which trace made it; a tensor from another model's trace is an error. */
  readonly trace: number;
}
