// A scratch pad for passes that make graphs: values and nodes are appended, types come from the
// shape rules, and `finish` hands back plain readonly data. Starting from an existing graph copies
// nothing but the arrays, so a pass can extend its input without mutating it.
import type { Op, OpAttrs } from './ops.ts';
import { inferTypes } from './shape-rules.ts';
import type { DType, Graph, InputDecl, Loc, Node, NodeOf, ParamDecl, Phase, Role, Shape, Value, ValueId } from './types.ts';

export class GraphBuilder {
  readonly values: Value[];
  readonly nodes: Node[];
  readonly inputs: InputDecl[];
  readonly params: ParamDecl[];
  /** Forward nodes made while this is set belong to that block (the DSL's `block` scope). */
  block: number | undefined;

  constructor(readonly name: string, from?: Graph) {
    this.values = from ? [...from.values] : [];
    this.nodes = from ? [...from.nodes] : [];
    this.inputs = from ? [...from.inputs] : [];
    this.params = from ? [...from.params] : [];
  }

  value(shape: Shape, dtype: DType, role: Role, loc: Loc, name?: string): ValueId {
    const id = this.values.length;
    this.values.push(name === undefined ? { id, shape, dtype, role, loc } : { id, shape, dtype, role, loc, name });
    return id;
  }

  /** Appends a node; throws the rule's ShapeError when the operands do not fit. */
  node<O extends Op>(
    op: O,
    inputs: readonly ValueId[],
    attrs: OpAttrs[O],
    loc: Loc,
    phase: Phase,
    role: Role | readonly Role[] = 'activation',
  ): ValueId[] {
    const types = inferTypes(op, inputs.map((i) => this.values[i]), attrs);
    const outputs = types.map((t, i) =>
      this.value(t.shape, t.dtype, typeof role === 'string' ? role : role[i] ?? 'activation', loc),
    );
    const node = { id: this.nodes.length, op, inputs, outputs, attrs, loc, phase };
    this.nodes.push((this.block === undefined || phase !== 'forward' ? node : { ...node, block: this.block }) as NodeOf<O> as Node);
    return outputs;
  }

  /** Renames or re-roles a value in place (only values this builder made). */
  setValue(id: ValueId, patch: Partial<Pick<Value, 'role' | 'name'>>): void {
    this.values[id] = { ...this.values[id], ...patch };
  }
}
