// What a VJP rule may do: append backward nodes (carrying the forward node's loc) and read types.
import type { GraphBuilder } from '../ir/builder.ts';
import type { Op, OpAttrs } from '../ir/ops.ts';
import { broadcastAxes, sameShape } from '../ir/shape.ts';
import type { Loc, Shape, ValueId } from '../ir/types.ts';

export class VjpContext {
  constructor(private readonly b: GraphBuilder, readonly loc: Loc) {}

  shape(v: ValueId): Shape {
    return this.b.values[v].shape;
  }

  emit<O extends Op>(op: O, inputs: readonly ValueId[], attrs: OpAttrs[O]): ValueId[] {
    return this.b.node(op, inputs, attrs, this.loc, 'backward');
  }

  one<O extends Op>(op: O, inputs: readonly ValueId[], attrs: OpAttrs[O]): ValueId {
    return this.emit(op, inputs, attrs)[0];
  }

  /** Sums `dx` over the axes it was broadcast along, so it takes the operand's shape again. */
  unbroadcast(dx: ValueId, to: Shape): ValueId {
    const from = this.shape(dx);
    if (sameShape(from, to)) return dx;
    const axes = broadcastAxes(to, from);
    const summed = axes.length ? this.one('sum', [dx], { axes, keepDims: false }) : dx;
    return sameShape(this.shape(summed), to) ? summed : this.one('reshape', [summed], { shape: to });
  }

  reshape(x: ValueId, shape: Shape): ValueId {
    return sameShape(this.shape(x), shape) ? x : this.one('reshape', [x], { shape });
  }
}
