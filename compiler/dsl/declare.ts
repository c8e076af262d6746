// Declarations: the step's inputs, the trainable params, and their initialisers.
import { reservedName } from '../../contract/names.ts';
import { LomocError, printable } from '../diagnostics.ts';
import type { Loc } from '../ir/types.ts';
import { fmtShape, sameShape } from '../ir/shape.ts';
import type { DType, Init, Shape } from '../ir/types.ts';
import { callerLoc } from './location.ts';
import { active, checkDtype, checkShape, describe, tensorOf } from './trace.ts';
import type { Tensor } from './tensor.ts';

/** normal(0, std) */
export const normal = (std = 0.02): Init => ({ kind: 'normal', std });
export const zeros = (): Init => ({ kind: 'zeros' });
export const ones = (): Init => ({ kind: 'ones' });
/** normal(0, gain / sqrt(fan_in)), fan_in = product of all but the last dimension. */
export const fanIn = (gain = 1): Init => ({ kind: 'fanIn', gain });

/** Rejects a name that would alias another tensor or an object's own property (contract/names.ts). */
function checkName(kind: 'param' | 'input', name: string, loc: Loc): void {
  const why = reservedName(name, kind);
  if (why !== undefined) throw new LomocError(`${kind} '${name}': this name is reserved: ${why}`, loc);
}

/**
 * A named input of the step (token ids, targets, features).
 * @example const ids = input('tokens', [cfg.batch, cfg.seq], 'i32')
 */
export function input(name: string, shape: Shape, dtype: DType = 'f32'): Tensor {
  const t = active('input');
  const loc = callerLoc();
  if (typeof name !== 'string' || name === '') throw new LomocError(`input: the name must be a non-empty string, got ${name === '' ? "''" : describe(name)}`, loc);
  checkName('input', name, loc);
  checkDtype(`input '${printable(name)}'`, dtype, loc);
  checkShape(`input '${printable(name)}'`, shape, loc, dtype);
  const prev = t.inputs.get(name);
  if (prev)
    throw new LomocError(`input '${printable(name)}': declared twice`, loc, [{ loc: prev.loc, message: 'first declared here' }]);
  const id = t.builder.value(shape, dtype, 'input', loc, name);
  t.builder.inputs.push({ name, value: id, loc });
  const tensor = tensorOf(t, id);
  t.inputs.set(name, { tensor, loc });
  return tensor;
}

const sameInit = (a: Init, b: Init): boolean => JSON.stringify(a) === JSON.stringify(b);
const fmtInit = (i: Init): string => JSON.stringify(i);

/**
 * A trainable parameter. Declaring the same name again with the same shape and init returns the
 * same tensor; using one param in two places ties the weights (its gradient is the sum).
 * @example const w = param('mlp.w1', [d, 4 * d], fanIn())
 */
export function param(name: string, shape: Shape, init: Init = normal()): Tensor {
  const t = active('param');
  const loc = callerLoc();
  if (typeof name !== 'string' || name === '') throw new LomocError(`param: the name must be a non-empty string, got ${name === '' ? "''" : describe(name)}`, loc);
  checkName('param', name, loc);
  checkShape(`param '${printable(name)}'`, shape, loc);
  if (!init || typeof init !== 'object' || !['normal', 'zeros', 'ones', 'fanIn'].includes((init as Init).kind))
    throw new LomocError(`param '${printable(name)}': init must be normal(std), zeros(), ones() or fanIn(gain), got ${describe(init)}`, loc);
  const prev = t.params.get(name);
  if (prev) {
    const notes = [{ loc: prev.loc, message: 'first declared here' }];
    if (!sameShape(prev.tensor.shape, shape))
      throw new LomocError(
        `param '${printable(name)}': declared twice with different shapes, expected ${fmtShape(prev.tensor.shape)}, got ${fmtShape(shape)}`,
        loc,
        notes,
      );
    if (!sameInit(prev.init, init))
      throw new LomocError(
        `param '${printable(name)}': declared twice with different initialisers, expected ${fmtInit(prev.init)}, got ${fmtInit(init)}`,
        loc,
        notes,
      );
    return prev.tensor;
  }
  const id = t.builder.value(shape, 'f32', 'param', loc, name);
  t.builder.params.push({ name, value: id, init, loc });
  const tensor = tensorOf(t, id);
  t.params.set(name, { tensor, init, loc });
  return tensor;
}

/**
 * Marks the ops traced inside `body` as one block: a unit that activation checkpointing may
 * recompute in backward instead of keeping its intermediate values. Blocks do not nest: ops in
 * an inner block belong to the outermost one.
 * @example x = block(`h.${i}`, () => transformerBlock(cfg, i, x))
 */
export function block<T>(name: string, body: () => T): T {
  const t = active('block');
  const loc = callerLoc();
  if (typeof body !== 'function') throw new LomocError(`block '${printable(name)}': expected a function to trace, got ${describe(body)}`, loc);
  if (t.builder.block !== undefined) return body();
  const prev = t.blockNames.get(name);
  if (prev) throw new LomocError(`block '${printable(name)}': declared twice`, loc, [{ loc: prev.loc, message: 'first declared here' }]);
  t.builder.block = t.blocks.length;
  t.blocks.push({ name, loc });
  t.blockNames.set(name, { name, loc });
  try {
    return body();
  } finally {
    t.builder.block = undefined;
  }
}

/**
 * Names a value the model computes, without adding a node: the training graph is unchanged, and
 * the inference program (`lomoc generate`) reads back the value named 'logits', [batch, seq, vocab].
 * @example output('logits', logits); return mean(crossEntropy(logits, targets));
 */
export function output(name: string, x: Tensor): Tensor {
  const t = active('output');
  const loc = callerLoc();
  if (typeof name !== 'string' || name === '') throw new LomocError(`output: the name must be a non-empty string, got ${describe(name)}`, loc);
  if (x === null || typeof x !== 'object' || typeof (x as Tensor).id !== 'number')
    throw new LomocError(`output '${name}': expected a tensor, got ${describe(x)}`, loc);
  if (x.trace !== t.id) throw new LomocError(`output '${name}': the tensor belongs to another model's trace`, loc);
  const prev = t.outputs.get(name);
  if (prev) throw new LomocError(`output '${name}': declared twice`, loc, [{ loc: prev.loc, message: 'first declared here' }]);
  t.outputs.set(name, { tensor: x, loc });
  return x;
}
