// The options that say which training step to compile, in one table: name, placeholder, help and
// parser of each, and how plan's --json shows it. plan, run, train and compile take them from here
// (graph the ones it uses), so an option means the same on every command. Contradictions are
// errors naming both options: a config key set twice (`--batch 4 --set batch=8`, `--set batch=4
// --set batch=9`), like any other single-valued option given twice.
import { LomocError } from '../compiler/diagnostics.ts';
import type { CheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';
import type { TargetName } from '../compiler/codegen/wgsl/target.ts';
import { maxSize, type OptionChecks } from './option-checks.ts';
import { roundings, type Rounding } from '../contract/stochastic-round.ts';

export type TargetChoice = 'auto' | TargetName;

/** What the step options say, every value checked. Absent: not given (each field's default applies). */
export interface StepOptionValues {
  readonly preset?: string;
  readonly sets: readonly string[];
  readonly batch?: number;
  readonly seq?: number;
  readonly dtype?: 'f32' | 'f16' | 'bf16';
  readonly clipNorm?: number;
  readonly clipValue?: number;
  readonly checkpoint?: CheckpointPolicy;
  readonly target?: TargetChoice;
  readonly rounding?: Rounding;
  readonly maxBinding?: number;
}

interface StepOptionEntry<T> {
  /** The command-line name, without '--'. */
  readonly option: string;
  /** The value's placeholder in help. */
  readonly value: string;
  readonly help: string;
  readonly multiple?: boolean;
  readonly parse: (text: string, option: string, check: OptionChecks) => T;
  /** A top-level field of plan's --json (batch and seq are in its `config` already), with this default. */
  readonly json?: { readonly default: T | null };
  /** How the value prints in --json and plan's settings line (default: as is). */
  readonly show?: (value: T) => string | number;
}

type Table = { readonly [K in keyof StepOptionValues]-?: StepOptionEntry<NonNullable<StepOptionValues[K]> extends readonly (infer E)[] ? E : NonNullable<StepOptionValues[K]>> };

/**
 * The canonical text of a checkpointing policy: what the manifest, the run identity and the
 * checkpoint metadata record, whether the step came from a model file or a bundle. A budget is
 * written in the largest binary unit that holds it exactly, so 15GiB and 16106127360 agree.
 */
export function checkpointText(p: CheckpointPolicy): string {
  if (p.kind !== 'budget') return p.kind;
  for (const [unit, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const)
    if (p.bytes % size === 0) return `budget=${p.bytes / size}${unit}`;
  return `budget=${p.bytes}B`;
}

const text = (t: string) => t;

/** One entry per step option, in help and --json order. A new field is a type error here until it has its entry. */
export const stepOptionTable: Table = {
  preset: { option: 'preset', value: 'NAME', help: "the model's preset (default: its first)", parse: text },
  sets: { option: 'set', value: 'KEY=VALUE', multiple: true, help: 'override one config key of the preset', parse: text },
  batch: { option: 'batch', value: 'B', help: 'batch size (sets the config key batch)', parse: (t, o, c) => c.integer(t, o, 1, maxSize) },
  seq: { option: 'seq', value: 'T', help: 'sequence length (sets the config key seq)', parse: (t, o, c) => c.integer(t, o, 1, maxSize) },
  dtype: { option: 'dtype', value: 'f32|f16|bf16', help: 'storage of params and activations; math stays f32 (default f32)', parse: (t, o, c) => c.oneOf(['f32', 'f16', 'bf16'] as const, t, o), json: { default: 'f32' } },
  clipNorm: { option: 'clip-norm', value: 'N', help: 'clip gradients to global L2 norm N (LOMO: two backward passes)', parse: (t, o, c) => c.number(t, o), json: { default: null } },
  clipValue: { option: 'clip-value', value: 'V', help: 'clamp each gradient element to [-V, V]', parse: (t, o, c) => c.number(t, o), json: { default: null } },
  checkpoint: {
    option: 'checkpoint', value: 'POLICY', help: 'activation checkpointing: none, blocks, sqrt or budget=SIZE, e.g. budget=14GiB (default none)',
    parse: (t, o, c) => c.checkpoint(t, o), json: { default: { kind: 'none' } }, show: checkpointText,
  },
  target: {
    option: 'target', value: 'auto|cpu|gpu',
    help: 'kernel shapes: gpu, cpu (software adapters like lavapipe) or auto: from the adapter where the command acquires one, else gpu (default auto)',
    parse: (t, o, c) => c.oneOf(['auto', 'cpu', 'gpu'] as const, t, o), json: { default: 'auto' },
  },
  rounding: {
    option: 'rounding', value: 'nearest|stochastic',
    help: 'how updates store bf16 params (default: stochastic for bf16 under an in-backward optimizer without a master copy, LOMO; else nearest)',
    parse: (t, o, c) => c.oneOf(roundings, t, o),
  },
  maxBinding: {
    option: 'max-binding', value: 'SIZE',
    help: 'bytes of one storage binding at most, e.g. 64KiB (a multiple of 256; default 128MiB, WebGPU\'s default): larger tensors are split across bindings',
    parse: (t, o, c) => c.bindingSize(t, o),
  },
};

/** Config keys each set at most once, whichever option sets them. */
function checkConfigKeys(command: string, batch: string | undefined, seq: string | undefined, sets: readonly string[]): void {
  const setBy = new Map<string, string>();
  const claim = (key: string, how: string) => {
    const first = setBy.get(key);
    if (first !== undefined) throw new LomocError(`lomoc ${command}: options '${first}' and '${how}' both set the config key '${key}'; give it once`);
    setBy.set(key, how);
  };
  if (batch !== undefined) claim('batch', `--batch ${batch}`);
  if (seq !== undefined) claim('seq', `--seq ${seq}`);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq > 0) claim(s.slice(0, eq), `--set ${s}`);
  }
}

/** The step options among `values`, each parsed by its entry; errors name `command`. */
export function stepOptionValues(command: string, values: Readonly<Record<string, unknown>>, check: OptionChecks): StepOptionValues {
  const out: Record<string, unknown> = {};
  for (const [field, e] of Object.entries(stepOptionTable) as [string, StepOptionEntry<unknown>][]) {
    const v = values[e.option];
    if (e.multiple) out[field] = ((v as string[] | undefined) ?? []).map((t) => e.parse(t, e.option, check));
    else if (typeof v === 'string') out[field] = e.parse(v, e.option, check);
  }
  checkConfigKeys(command, values.batch as string | undefined, values.seq as string | undefined, out.sets as string[]);
  return out as unknown as StepOptionValues;
}

const shown = (e: StepOptionEntry<unknown>, v: unknown) => (e.show && v !== null ? e.show(v) : v);

/** The step options plan's --json prints as top-level fields, defaults filled in. */
export function stepJson(step: Partial<Record<keyof StepOptionValues, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    (Object.entries(stepOptionTable) as [keyof StepOptionValues, StepOptionEntry<unknown>][])
      .filter(([, e]) => e.json)
      .map(([field, e]) => [field, shown(e, step[field] ?? e.json!.default)]),
  );
}

/** "dtype f16; clip-norm 1; checkpoint none": the --json step options given or with a default, as the command line names them. */
export function describeStepOptions(step: Partial<Record<keyof StepOptionValues, unknown>>, skip: readonly (keyof StepOptionValues)[] = []): string {
  return (Object.entries(stepOptionTable) as [keyof StepOptionValues, StepOptionEntry<unknown>][])
    .filter(([field, e]) => e.json && !skip.includes(field) && (step[field] !== undefined || e.json.default !== null))
    .map(([field, e]) => `${e.option} ${shown(e, step[field] ?? e.json!.default)}`)
    .join('; ');
}
