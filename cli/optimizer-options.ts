// `--optimizer NAME` and `--opt KEY=VALUE` (repeatable): the optimizer and its hyper-parameters,
// both checked against the optimizer descriptors (compiler/optimizers/), so a new optimizer needs
// no edit here: its name joins --optimizer and its keys --opt.
import { LomocError } from '../compiler/diagnostics.ts';
import { optimizerDescriptor, optimizerNames, resolveHyper } from '../compiler/optimizers/table.ts';

/** An option's help entry (args.ts's OptionSpec; not imported: args.ts imports this file). */
interface StringOption {
  readonly type: 'string';
  readonly multiple?: boolean;
  readonly value: string;
  readonly help: string;
}

const listed = (names: readonly string[], last = 'or') => (names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} ${last} ${names[names.length - 1]}`);

/** `--optimizer` for the commands that compile one step. */
export const optimizerOptionSpec = (): StringOption => ({ type: 'string', value: 'NAME', help: `${listed(optimizerNames())} (default lomo)` });

/** `--opt` for every command that compiles a step. */
export const hyperOptionSpec = (): StringOption => {
  const keys = optimizerNames().flatMap((name) => {
    const hyper = Object.entries(optimizerDescriptor(name).rule.hyper);
    return hyper.length ? [`${name}: ${hyper.map(([k, h]) => `${k} (default ${h.default})`).join(', ')}`] : [];
  });
  return { type: 'string', multiple: true, value: 'KEY=VALUE', help: `an optimizer hyper-parameter; ${[...new Set(keys)].join('; ')}` };
};

/** The optimizer --optimizer names (default lomo); an error lists the known ones. */
export function optimizerFrom(command: string, text: string | undefined, extra: readonly string[] = []): string {
  const name = text ?? 'lomo';
  const names = [...optimizerNames(), ...extra];
  if (!names.includes(name)) throw new LomocError(`lomoc ${command}: option '--optimizer' expects ${listed(names)}, got '${name}'`);
  return name;
}

/**
 * The --opt values as numbers by key, each key one of `optimizer`'s hyper-parameters; with several
 * optimizers (`lomoc plan --optimizer all`) each key must belong to at least one of them.
 */
export function hyperFrom(command: string, optimizers: readonly string[], value: unknown): Record<string, number> {
  const given: Record<string, number> = {};
  for (const text of (value as string[] | undefined) ?? []) {
    const m = /^([A-Za-z][A-Za-z0-9_]*)=(.*)$/.exec(text);
    if (!m) throw new LomocError(`lomoc ${command}: option '--opt' expects KEY=VALUE, got '${text}'`);
    const [, key, num] = m;
    const n = Number(num);
    if (num.trim() === '' || !Number.isFinite(n)) throw new LomocError(`lomoc ${command}: option '--opt ${key}' expects a number, got '${num}'`);
    if (key in given) throw new LomocError(`lomoc ${command}: option '--opt ${key}' given twice`);
    given[key] = n;
  }
  const owners = optimizers.map((name) => optimizerDescriptor(name));
  for (const key of Object.keys(given))
    if (!owners.some((d) => key in d.rule.hyper)) {
      if (owners.length === 1) resolveHyper(owners[0], { [key]: given[key] }, `lomoc ${command}: option '--opt'`);
      throw new LomocError(`lomoc ${command}: option '--opt': none of the optimizers ${listed(optimizers, 'and')} has a hyper-parameter '${key}'`);
    }
  for (const d of owners) resolveHyper(d, hyperFor(d.name, given), `lomoc ${command}: option '--opt'`);
  return given;
}

/** The keys of `hyper` that optimizer `name` has (plan compiles several optimizers with one --opt list). */
export function hyperFor(name: string, hyper: Readonly<Record<string, number>>): Record<string, number> {
  const own = optimizerDescriptor(name).rule.hyper;
  return Object.fromEntries(Object.entries(hyper).filter(([k]) => k in own));
}
