// Option parsing shared by every command, on node's util.parseArgs. Its own error messages are
// node's, so it runs non-strict and the checks below say what lomoc expected and what it got.
import { parseArgs } from 'node:util';
import { LomocError } from '../compiler/diagnostics.ts';

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
  /** Positional arguments, in order; all required. */
  readonly positionals: readonly { readonly name: string; readonly help: string }[];
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
  const want = spec.positionals.map((p) => `<${p.name}>`).join(' ');
  if (positionals.length < spec.positionals.length)
    throw new LomocError(`lomoc ${spec.name}: expected ${want}, got ${positionals.length ? positionals.join(' ') : 'nothing'}; ${seeHelp(spec)}`);
  if (positionals.length > spec.positionals.length)
    throw new LomocError(`lomoc ${spec.name}: expected ${want}, got an extra argument '${positionals[spec.positionals.length]}'`);
  return { positionals, values };
}

/** `lomoc help <command>`: usage, arguments, options, examples. */
export function formatHelp(spec: CommandSpec): string {
  const opts = Object.entries({ ...spec.options, help: helpOption });
  const usage = [`lomoc ${spec.name}`, ...spec.positionals.map((p) => `<${p.name}>`), '[options]'].join(' ');
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
