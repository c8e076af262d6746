// Every optimizer lomoc knows, by name. The built-in ones are a typed table; `registerOptimizer`
// adds one at run time (a plugin or a test), before anything is compiled with it. Everything that
// needs an optimizer's facts, or the list of names, asks here.
import { CompilerBug, LomocError } from '../diagnostics.ts';
import { adalomo } from './adalomo.ts';
import { adamw } from './adamw.ts';
import type { OptimizerDescriptor, UpdateRule } from './descriptor.ts';
import { lomo } from './lomo.ts';
import { sgd } from './sgd.ts';

export const builtinOptimizers = { sgd, adamw, lomo, adalomo } as const satisfies Readonly<Record<string, OptimizerDescriptor>>;
export type BuiltinOptimizer = keyof typeof builtinOptimizers;

const table = new Map<string, OptimizerDescriptor>(Object.entries(builtinOptimizers));

/** Adds an optimizer (its name must be new; its rule's name new too unless it is the same rule). */
export function registerOptimizer(d: OptimizerDescriptor): OptimizerDescriptor {
  if (table.has(d.name)) throw new LomocError(`registerOptimizer: an optimizer named '${d.name}' already exists`);
  if (!/^[a-z][a-zA-Z0-9]*$/.test(d.rule.name))
    throw new LomocError(`registerOptimizer: the update rule's name must be letters and digits starting lower case, got '${d.rule.name}'`);
  const other = [...table.values()].find((o) => o.rule.name === d.rule.name && o.rule !== d.rule);
  if (other) throw new LomocError(`registerOptimizer: optimizer '${other.name}' already has an update rule named '${d.rule.name}'`);
  table.set(d.name, d);
  return d;
}

/** The names --optimizer accepts, built-in ones first. */
export const optimizerNames = (): string[] => [...table.keys()];

/** The descriptor of `name`; a LomocError listing the known names when there is none (starting with `where`). */
export function optimizerDescriptor(name: string, where = 'optimizer'): OptimizerDescriptor {
  const d = table.get(name);
  if (!d) {
    const names = optimizerNames();
    throw new LomocError(`${where}: expected ${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}, got '${name}'`);
  }
  return d;
}

/** The update rule an update node names (`attrs.rule`); the IR only ever holds registered ones. */
export function updateRule(name: string): UpdateRule {
  for (const d of table.values()) if (d.rule.name === name) return d.rule;
  throw new CompilerBug(`no registered optimizer has the update rule '${name}'`);
}

/**
 * Every hyper-parameter of `d`: `given` checked against its descriptor (unknown keys, values out of
 * range), defaults for the rest. Errors start with `where` (an option or a field).
 */
export function resolveHyper(d: OptimizerDescriptor, given: Readonly<Record<string, number>> = {}, where = 'hyper-parameters'): Record<string, number> {
  const keys = Object.keys(d.rule.hyper);
  for (const [key, value] of Object.entries(given)) {
    const spec = d.rule.hyper[key];
    if (!spec)
      throw new LomocError(`${where}: optimizer '${d.name}' has no hyper-parameter '${key}'; ${keys.length ? `its keys: ${keys.join(', ')}` : 'it has none'}`);
    if (!Number.isFinite(value) || (spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) {
      const range = spec.min !== undefined && spec.max !== undefined ? `a number from ${spec.min} to ${spec.max}` : spec.min !== undefined ? `a number >= ${spec.min}` : 'a finite number';
      throw new LomocError(`${where}: ${key} of optimizer '${d.name}' must be ${range}, got ${value}`);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, given[k] ?? d.rule.hyper[k].default]));
}
