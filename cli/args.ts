// Option parsing shared by every command, on node's util.parseArgs. Its own error messages are
// node's, so it runs non-strict and the checks below say what lomoc expected and what it got.
import { parseArgs } from 'node:util';
import { LomocError } from '../compiler/diagnostics.ts';
import { targetForAdapter, type AdapterInfoLike, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { StepConfig } from '../compiler/pipeline.ts';
import { optionChecks } from './option-checks.ts';
import { hyperFrom, hyperOptionSpec, optimizerFrom, optimizerOptionSpec } from './optimizer-options.ts';
import { stepOptionTable, stepOptionValues, type TargetChoice, type TuneChoice } from './step-options.ts';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's placeholder in help, e.g. NAME. */
  readonly value?: string;
  readonly help: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** Positional arguments, in order; all required. The last may repeat (`repeats`: one or more). */
  readonly positionals: readonly { readonly name: string; readonly help: string; readonly repeats?: boolean }[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Lines of examples for `lomoc help <command>`. */
  readonly examples?: readonly string[];
}

export type OptionValue = string | boolean | string[] | undefined;
export interface ParsedArgs {
  readonly positionals: readonly string[];
  readonly values: Readonly<Record<string, OptionValue>>;
}

const helpOption: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };
const seeHelp = (spec: CommandSpec) => `run 'lomoc help ${spec.name}' for its options`;

/** Parses a command's argv; every mistake is a LomocError naming the option. */
export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const options: Record<string, OptionSpec> = { ...spec.options, help: helpOption };
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, OptionValue> = {};
  const positionals: string[] = [];
  for (const tok of tokens) {
    if (tok.kind === 'positional') positionals.push(tok.value);
    if (tok.kind !== 'option') continue;
    const opt = options[tok.name];
    if (!opt) throw new LomocError(`lomoc ${spec.name}: unknown option '${tok.rawName}'; ${seeHelp(spec)}`);
    if (opt.type === 'boolean') {
      if (tok.value !== undefined)
        throw new LomocError(`lomoc ${spec.name}: option '--${tok.name}' takes no value, got '${tok.value}'`);
      values[tok.name] = true;
      continue;
    }
    // Non-strict parseArgs takes the next word as the value even when it is another option
    // ('-' alone is a value: stdout; so is a negative number, for the option's check to refuse).
    if (tok.value === undefined || (!tok.inlineValue && tok.value.startsWith('-') && tok.value !== '-' && !/^-[0-9.]/.test(tok.value)))
      throw new LomocError(`lomoc ${spec.name}: option '--${tok.name}' expects a value (${opt.value ?? 'VALUE'})`);
    if (opt.multiple) values[tok.name] = [...((values[tok.name] as string[] | undefined) ?? []), tok.value];
    else if (values[tok.name] !== undefined)
      throw new LomocError(`lomoc ${spec.name}: option '--${tok.name}' given twice`);
    else values[tok.name] = tok.value;
  }
  if (values.help) return { positionals, values };
  const want = spec.positionals.map((p) => `<${p.name}>${p.repeats ? '...' : ''}`).join(' ');
  if (positionals.length < spec.positionals.length)
    throw new LomocError(`lomoc ${spec.name}: expected ${want}, got ${positionals.length ? positionals.join(' ') : 'nothing'}; ${seeHelp(spec)}`);
  if (positionals.length > spec.positionals.length && !spec.positionals.at(-1)?.repeats)
    throw new LomocError(`lomoc ${spec.name}: expected ${want}, got an extra argument '${positionals[spec.positionals.length]}'`);
  return { positionals, values };
}

/** `lomoc help <command>`: usage, arguments, options, examples. */
export function formatHelp(spec: CommandSpec): string {
  const opts = Object.entries({ ...spec.options, help: helpOption });
  const usage = [`lomoc ${spec.name}`, ...spec.positionals.map((p) => `<${p.name}>${p.repeats ? '...' : ''}`), '[options]'].join(' ');
  const flag = (name: string, o: OptionSpec) =>
    `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
  const rows: [string, string][] = [
    ...spec.positionals.map((p): [string, string] => [`<${p.name}>`, p.help]),
    ...opts.map(([name, o]): [string, string] => [flag(name, o), o.help + (o.multiple ? ' (repeatable)' : '')]),
  ];
  const w = Math.max(...rows.map(([a]) => a.length));
  const lines = [`usage: ${usage}`, '', spec.summary, ''];
  lines.push(...rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`));
  if (spec.examples?.length) lines.push('', 'examples:', ...spec.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** Checks for option values: the one rule, in option-checks.ts. */
export { optionChecks } from './option-checks.ts';

/** The options that say which training step to compile: shared by the commands that compile one (cli/step-options.ts). */
export const stepOptionSpecs: Readonly<Record<string, OptionSpec>> = Object.fromEntries(
  [
    ...Object.values(stepOptionTable).map((e) => [e.option, { type: 'string', value: e.value, help: e.help, ...(e.multiple ? { multiple: true } : {}) } satisfies OptionSpec] as const),
    ['opt', hyperOptionSpec()] as const,
  ],
);

/**
 * The training step that stepOptionSpecs and --optimizer ask for, every value checked (errors name
 * `command`). The kernel target is not in it: `stepTarget` gives the choice, `resolveTarget` the target.
 */
export function stepConfigFrom(command: string, values: Readonly<Record<string, OptionValue>>): StepConfig {
  const check = optionChecks(command);
  const str = (k: string) => values[k] as string | undefined;
  const { target: _target, tune: _tune, checkpoint, dtype, ...step } = stepOptionValues(command, values, check);
  const optimizer = optimizerFrom(command, str('optimizer'));
  return {
    ...step,
    optimizer,
    hyper: hyperFrom(command, [optimizer], values.opt),
    checkpoint: checkpoint ?? { kind: 'none' },
    dtype: dtype ?? 'f32',
  };
}

export type { TargetChoice, TuneChoice } from './step-options.ts';

/** `--tune`: auto (default), off, or a budget in seconds. */
export function tuneChoice(command: string, text: string | undefined): TuneChoice {
  return text === undefined ? { mode: 'auto' } : stepOptionTable.tune.parse(text, 'tune', optionChecks(command));
}

/** `--target`: auto (default), cpu or gpu. */
export function targetChoice(command: string, text: string | undefined): TargetChoice {
  return optionChecks(command).oneOf<TargetChoice>(['auto', 'cpu', 'gpu'], text ?? 'auto', 'target');
}

/** What auto gives where no adapter is looked at: kernels for real GPUs, the machines bundles and plans are mostly for. */
export const defaultTarget: TargetName = 'gpu';

/**
 * The kernel target to compile for, the same rule on every command: `choice`, or with auto the one
 * targetForAdapter picks for `adapter` (the adapter the device will come from); where the command
 * looks at none (`adapter` is the reason, e.g. "lomoc plan asks no adapter"), or none was found,
 * the stated default, gpu. `how` says which, for the printed line.
 */
export function resolveTarget(choice: TargetChoice, adapter: { readonly info: AdapterInfoLike } | string | undefined): { target: TargetName; how: string } {
  if (choice !== 'auto') return { target: choice, how: '--target' };
  if (typeof adapter === 'string') return { target: defaultTarget, how: `auto: ${adapter}; the default, ${defaultTarget}` };
  if (!adapter) return { target: defaultTarget, how: `auto: no adapter found; the default, ${defaultTarget}` };
  const target = targetForAdapter(adapter.info);
  return { target, how: target === 'cpu' ? 'auto: software adapter' : 'auto: hardware adapter' };
}

/** `--optimizer` for the commands that compile one step (plan, which can take all, has its own). */
export const optimizerSpec: OptionSpec = optimizerOptionSpec();

/** `--subgroups` on run and train from a model file (compile has its own: the bundle's switch). */
export const subgroupsSpec: OptionSpec = {
  type: 'boolean',
  help: "reduce across threads with WGSL subgroup operations: faster on GPUs; needs the adapter feature subgroups, and a sum's order then follows the driver's subgroup size (off by default)",
};
