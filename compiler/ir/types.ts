// The IR: plain readonly data. Values are SSA tensors; nodes are ops in topological order.
// Everything derived (users, liveness, sizes) is computed by functions in analysis.ts.
import type { ParamInit } from '../../contract/program.ts';
import type { Op, OpAttrs } from './ops.ts';

export type { DType, Shape } from './dtype.ts';
import type { DType, Shape } from './dtype.ts';
export type ValueId = number;

/** Where the user wrote something: 1-based line and column, file relative to the working directory. */
export interface Loc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/**
 * What a value is for. `grad` marks a parameter's gradient (complete or partial sum);
 * `optstate` an optimizer moment; `update` a parameter's new value.
 */
export type Role = 'input' | 'param' | 'const' | 'activation' | 'grad' | 'optstate' | 'update' | 'loss';

export interface Value {
  readonly id: ValueId;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly role: Role;
  /** Where the value was made (its node's loc, or the declaration of an input or param). */
  readonly loc: Loc;
  readonly name?: string;
}

/**
 * Which part of the training step a node belongs to. `recompute` nodes re-run forward work
 * for backward (activation checkpointing); `norm` nodes are the clip-norm pass 1.
 */
export type Phase = 'forward' | 'backward' | 'update' | 'recompute' | 'norm';

export interface NodeOf<O extends Op> {
  readonly id: number;
  readonly op: O;
  readonly inputs: readonly ValueId[];
  readonly outputs: readonly ValueId[];
  readonly attrs: OpAttrs[O];
  readonly loc: Loc;
  readonly phase: Phase;
  /** The user-marked block (index into Graph.blocks) a forward node was traced in (recompute nodes keep it). */
  readonly block?: number;
}
/** A node of any op, discriminated on `op`. */
export type Node = { [O in Op]: NodeOf<O> }[Op];

/** A param's initialiser: the runtime's type (runtime/program.ts), since the runtime draws the values. */
export type Init = ParamInit;

export interface InputDecl {
  readonly name: string;
  readonly value: ValueId;
  readonly loc: Loc;
}
export interface ParamDecl {
  readonly name: string;
  readonly value: ValueId;
  readonly init: Init;
  readonly loc: Loc;
}

/** A segment the user marked with `block(name, ...)`: a unit for activation checkpointing. */
export interface BlockDecl {
  readonly name: string;
  readonly loc: Loc;
}

export interface Graph {
  readonly name: string;
  readonly values: readonly Value[]; // values[i].id === i
  readonly nodes: readonly Node[]; // topological order
  readonly inputs: readonly InputDecl[];
  readonly params: readonly ParamDecl[];
  /** The scalar loss. */
  readonly loss: ValueId;
  /** After differentiation: each param's complete gradient, by param name. */
  readonly grads?: Readonly<Record<string, ValueId>>;
  /** After the optimizer step is appended: each param's new value (and state), by name. */
  readonly updates?: Readonly<Record<string, ValueId>>;
  /** Optimizer state values read by the step and their new values, by state name. */
  readonly state?: readonly StateDecl[];
  /** Blocks marked in the DSL (forward nodes name theirs in `block`). */
  readonly blocks?: readonly BlockDecl[];
  /**
   * Values the model names with `output(name, t)` (the logits the loss is computed from): marks
   * only, no nodes; the inference program reads them back.
   */
  readonly outputs?: Readonly<Record<string, ValueId>>;
}

export interface StateDecl {
  readonly name: string;
  readonly param: string;
  readonly value: ValueId;
  readonly next: ValueId;
}
