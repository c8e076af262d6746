// Option parsing shared by every command, on node's util.parseArgs. Its own error messages are
// node's, so it runs non-strict and the checks below say what lomoc expected and what it got.
import { parseArgs } from 'node:util';
import { LomocError } from '../compiler/diagnostics.ts';
import { targetForAdapter, type AdapterInfoLike, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import { parseCheckpointPolicy, type CheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import type { StepConfig } from '../compiler/pipeline.ts';

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
    // ('-' alone is a value: stdout).
    if (tok.value === undefined || (!tok.inlineValue && tok.value.startsWith('-') && tok.value !== '-'))
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

/** Checks for option values, with errors that name the command, the option, what it expects and what it got. */
export function optionChecks(command: string) {
  const error = (option: string, expected: string, got: string) =>
    new LomocError(`lomoc ${command}: option '--${option}' expects ${expected}, got '${got}'`);
  return {
    error,
    /** An integer >= min (1: "a positive integer"). */
    integer(text: string, option: string, min = 1): number {
      if (!/^[0-9]+$/.test(text) || Number(text) < min) throw error(option, min > 0 ? 'a positive integer' : `an integer >= ${min}`, text);
      return Number(text);
    },
    /** A number above 0, or >= 0 when `zeroOk`. */
    number(text: string, option: string, zeroOk = false): number {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < 0 || (!zeroOk && n === 0))
        throw error(option, zeroOk ? 'a number >= 0' : 'a number above 0', text);
      return n;
    },
    checkpoint(text: string, option = 'checkpoint'): CheckpointPolicy {
      try {
        return parseCheckpointPolicy(text);
      } catch {
        throw error(option, 'none, blocks, sqrt or budget=SIZE (SIZE like 14GiB)', text);
      }
    },
    oneOf<T extends string>(choices: readonly T[], text: string, option: string): T {
      if (!(choices as readonly string[]).includes(text)) throw error(option, `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}`, text);
      return text as T;
    },
  };
}

/** The options that say which training step to compile: shared by the commands that compile one. */
export const stepOptionSpecs: Readonly<Record<string, OptionSpec>> = {
  preset: { type: 'string', value: 'NAME', help: "the model's preset (default: its first)" },
  set: { type: 'string', multiple: true, value: 'KEY=VALUE', help: 'override one config key of the preset' },
  batch: { type: 'string', value: 'B', help: 'batch size (sets the config key batch)' },
  seq: { type: 'string', value: 'T', help: 'sequence length (sets the config key seq)' },
  checkpoint: { type: 'string', value: 'POLICY', help: 'activation checkpointing: none, blocks, sqrt or budget=SIZE, e.g. budget=14GiB (default none)' },
  'clip-norm': { type: 'string', value: 'N', help: 'clip gradients to global L2 norm N (LOMO: two backward passes)' },
  'clip-value': { type: 'string', value: 'V', help: 'clamp each gradient element to [-V, V]' },
  dtype: { type: 'string', value: 'f32|f16|bf16', help: 'storage of params and activations; math stays f32 (default f32)' },
  target: { type: 'string', value: 'auto|cpu|gpu', help: 'kernel shapes: gpu, cpu (software adapters like lavapipe) or auto, from the adapter (default auto)' },
};

/**
 * The training step that stepOptionSpecs and --optimizer ask for, every value checked (errors name
 * `command`). The kernel target is not in it: each command resolves --target its own way.
 */
export function stepConfigFrom(command: string, values: Readonly<Record<string, OptionValue>>): StepConfig {
  const check = optionChecks(command);
  const str = (k: string) => values[k] as string | undefined;
  const opt = <T>(k: string, parse: (text: string, option: string) => T): T | undefined => (str(k) === undefined ? undefined : parse(str(k)!, k));
  return {
    preset: str('preset'),
    sets: (values.set as string[] | undefined) ?? [],
    batch: opt('batch', (t, o) => check.integer(t, o, 1)),
    seq: opt('seq', (t, o) => check.integer(t, o, 1)),
    optimizer: check.oneOf<OptimizerName>(['sgd', 'adamw', 'lomo'], str('optimizer') ?? 'lomo', 'optimizer'),
    checkpoint: check.checkpoint(str('checkpoint') ?? 'none'),
    clipNorm: opt('clip-norm', (t, o) => check.number(t, o)),
    clipValue: opt('clip-value', (t, o) => check.number(t, o)),
    dtype: check.oneOf(['f32', 'f16', 'bf16'] as const, str('dtype') ?? 'f32', 'dtype'),
  };
}

export type TargetChoice = 'auto' | TargetName;

/** `--target`: auto (default), cpu or gpu. */
export function targetChoice(command: string, text: string | undefined): TargetChoice {
  return optionChecks(command).oneOf<TargetChoice>(['auto', 'cpu', 'gpu'], text ?? 'auto', 'target');
}

/**
 * The kernel target to compile for: `choice`, or with auto the one targetForAdapter picks for
 * `adapter` (the adapter the device will come from; none: cpu, for the reference executor). `how`
 * says why, for the printed adapter line.
 */
export function resolveTarget(choice: TargetChoice, adapter: { readonly info: AdapterInfoLike } | undefined): { target: TargetName; how: string } {
  if (choice !== 'auto') return { target: choice, how: '--target' };
  if (!adapter) return { target: 'cpu', how: 'auto: no adapter' };
  const target = targetForAdapter(adapter.info);
  return { target, how: target === 'cpu' ? 'auto: software adapter' : 'auto: hardware adapter' };
}

/** `--optimizer` for the commands that compile one step (plan, which can take all, has its own). */
export const optimizerSpec: OptionSpec = { type: 'string', value: 'NAME', help: 'sgd, adamw or lomo (default lomo)' };
