// The inputs of an update node, by name. The optimizer-step pass builds the layout from the rule
// here; the shape rule, the reference executor and codegen read inputs only through `updateInput`,
// so no part of lomoc decodes an update by position.
import { CompilerBug } from '../diagnostics.ts';
import type { UpdateAttrs, UpdateSlot } from '../ir/ops.ts';
import type { UpdateRule } from './descriptor.ts';

export interface UpdateFlags {
  readonly clipValue: number | null;
  readonly scaled: boolean;
  readonly master: boolean;
  /** Every hyper-parameter (table.ts's resolveHyper); default: the rule's defaults. */
  readonly hyper?: Readonly<Record<string, number>>;
  /** Stochastic rounding of the stored bf16 param (needs the step count as an input). */
  readonly stochastic?: UpdateAttrs['stochastic'];
}

/** Attrs of an update node by `rule`; its inputs are then given in `updateInputOrder(attrs)`. */
export function updateAttrs(rule: UpdateRule, f: UpdateFlags): UpdateAttrs {
  const slots: UpdateSlot[] = ['p', 'g', 'lr', 'wd', ...(rule.usesStep || f.stochastic ? ['step' as const] : []), ...(f.scaled ? ['scale' as const] : [])];
  const states = [...rule.states.map((s) => s.name), ...(f.master ? ['master'] : [])];
  const names = [...slots, ...states];
  return {
    rule: rule.name,
    hyper: f.hyper ?? Object.fromEntries(Object.entries(rule.hyper).map(([k, h]) => [k, h.default])),
    inputs: Object.fromEntries(names.map((n, i) => [n, i])),
    states,
    clipValue: f.clipValue,
    scaled: f.scaled,
    master: f.master,
    ...(f.stochastic ? { stochastic: f.stochastic } : {}),
  };
}

/** The input names in input order. */
export function updateInputOrder(a: UpdateAttrs): string[] {
  return Object.entries(a.inputs).sort((x, y) => x[1] - y[1]).map(([n]) => n);
}

/** Orders named values as the node's inputs (each name of the layout must be given). */
export function updateInputs<T>(a: UpdateAttrs, byName: Readonly<Record<string, T>>): T[] {
  return updateInputOrder(a).map((n) => {
    if (byName[n] === undefined) throw new CompilerBug(`update node: input '${n}' not given`);
    return byName[n];
  });
}

/** The input named `name` of an update node (undefined when the layout has no such input). */
export function updateInput<T>(a: UpdateAttrs, inputs: readonly T[], name: UpdateSlot | (string & {})): T | undefined {
  const k = a.inputs[name];
  return k === undefined ? undefined : inputs[k];
}
