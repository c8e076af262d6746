// The state of one trace: the graph being built and the params declared so far. The DSL
// functions append to it; `traceModel` (model.ts) opens and closes it.
import { GraphBuilder } from '../ir/builder.ts';
import type { Op, OpAttrs } from '../ir/ops.ts';
import { ShapeError } from '../ir/shape-rules.ts';
import { fmtShape, sizeProblem } from '../ir/shape.ts';
import type { BlockDecl, DType, Init, Loc, Shape } from '../ir/types.ts';
import { LomocError, type Note } from '../diagnostics.ts';
import { callerChain, callerLoc, unknownLoc } from './location.ts';
import type { Tensor } from './tensor.ts';

export interface TraceState {
  readonly id: number;
  readonly builder: GraphBuilder;
  readonly params: Map<string, { tensor: Tensor; init: Init; loc: Loc }>;
  readonly inputs: Map<string, { tensor: Tensor; loc: Loc }>;
  /** Blocks marked with `block(name, ...)`, for activation checkpointing. */
  readonly blocks: BlockDecl[];
  /** Values named with `output(name, t)`. */
  readonly outputs: Map<string, { tensor: Tensor; loc: Loc }>;
  /** The same blocks by name (a look-up per block, not a scan). */
  readonly blockNames: Map<string, BlockDecl>;
}

let current: TraceState | undefined;
let traces = 0;

export function openTrace(name: string): TraceState {
  current = { id: ++traces, builder: new GraphBuilder(name), params: new Map(), inputs: new Map(), blocks: [], outputs: new Map(), blockNames: new Map() };
  return current;
}
export function closeTrace(): void {
  current = undefined;
}

/** The open trace; a DSL call outside `model(...)`'s build function is a user error. */
export function active(what: string): TraceState {
  if (!current)
    throw new LomocError(`${what}: called outside a model; DSL calls run only inside model(name, build)`, callerLoc());
  return current;
}

const operandNames = (n: number, i: number): string =>
  n === 1 ? 'the operand' : n === 2 ? (i === 0 ? 'the left operand' : 'the right operand') : `operand ${i + 1}`;

/** Appends one op to the trace and returns its outputs; shape errors become user diagnostics. */
export function emit<O extends Op>(op: O, ins: readonly Tensor[], attrs: OpAttrs[O], name: string = op): Tensor[] {
  const t = active(name);
  const [loc = unknownLoc, calledFrom] = callerChain();
  ins.forEach((x, i) => {
    if (x === null || typeof x !== 'object' || typeof (x as Tensor).id !== 'number')
      throw new LomocError(`${name}: ${operandNames(ins.length, i)} must be a tensor, got ${describe(x)}`, loc);
    if (x.trace !== t.id)
      throw new LomocError(`${name}: ${operandNames(ins.length, i)} belongs to another model's trace`, loc);
  });
  let ids: number[];
  try {
    ids = t.builder.node(op, ins.map((x) => x.id), attrs, loc, 'forward');
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    const notes: Note[] = [];
    if (e.operand !== undefined && ins[e.operand]) {
      const v = t.builder.values[ins[e.operand].id];
      notes.push({ loc: v.loc, message: `${operandNames(ins.length, e.operand)} was created here` });
    }
    if (calledFrom) notes.push({ loc: calledFrom, message: 'called from here' });
    throw new LomocError(`${name}: ${e.message}`, loc, notes);
  }
  return ids.map((id) => tensorOf(t, id));
}

export function tensorOf(t: TraceState, id: number): Tensor {
  const v = t.builder.values[id];
  return { id, shape: v.shape, dtype: v.dtype, trace: t.id };
}

export function describe(x: unknown): string {
  if (x === undefined) return 'undefined';
  if (x === null) return 'null';
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  return typeof x === 'object' ? 'an object' : `${typeof x} ${String(x)}`;
}

/** A shape of positive integers whose element count and bytes (as `dtype`) are safe integers. */
export function checkShape(what: string, shape: unknown, loc: Loc, dtype: DType = 'f32'): Shape {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 1))
    throw new LomocError(`${what}: shape must be an array of positive integers, got ${Array.isArray(shape) ? fmtShape(shape) : describe(shape)}`, loc);
  const problem = sizeProblem(shape, dtype);
  if (problem) throw new LomocError(`${what}: ${problem}`, loc);
  return shape as Shape;
}

export function checkDtype(what: string, d: unknown, loc: Loc): DType {
  if (d !== 'f32' && d !== 'f16' && d !== 'i32')
    throw new LomocError(`${what}: dtype must be 'f32', 'f16' or 'i32', got ${describe(d)}`, loc);
  return d;
}
