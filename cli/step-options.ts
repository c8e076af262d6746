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
import { lossScaleDefaults, type LossScaleSpec } from '../contract/loss-scale.ts';
import { clipModes, type ClipMode } from '../compiler/passes/optimizer-step.ts';

export type TargetChoice = 'auto' | TargetName;

/** `--tune`: auto (on for hardware adapters, off for software ones), off (the target's fixed tiles), or on within a budget. */
export type TuneChoice = { readonly mode: 'auto' | 'off' } | { readonly mode: 'on'; readonly budgetMs: number };
/** The budget of `--tune auto` where it tunes. */
export const defaultTuneBudgetMs = 20_000;

function parseTune(text: string, option: string, check: OptionChecks): TuneChoice {
  if (text === 'auto' || text === 'off') return { mode: text };
  if (!/^[0-9.]+s?$/.test(text)) throw check.error(option, 'auto, off or a time budget in seconds like 20s', text);
  return { mode: 'on', budgetMs: 1000 * check.number(text.replace(/s$/, ''), option) };
}

/** What the step options say, every value checked. Absent: not given (each field's default applies). */
export interface StepOptionValues {
  readonly preset?: string;
  readonly sets: readonly string[];
  readonly batch?: number;
  readonly seq?: number;
  readonly dtype?: 'f32' | 'f16' | 'bf16';
  readonly clipNorm?: number;
  readonly clipMode?: ClipMode;
  readonly clipValue?: number;
  readonly lossScale?: LossScaleSpec;
  readonly lossScaleInterval?: number;
  readonly checkpoint?: CheckpointPolicy;
  readonly accumulate?: number;
  readonly target?: TargetChoice;
  readonly rounding?: Rounding;
  readonly fuseLoss?: boolean;
  readonly tune?: TuneChoice;
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
  const chunks = (p.kind === 'blocks' && p.runs !== undefined ? `,runs=${p.runs}` : '') + (p.kind === 'blocks' && p.levels !== undefined ? `,levels=${p.levels}` : '') + (p.kind !== 'none' && p.chunks !== undefined ? `,chunks=${p.chunks}` : '') + (p.kind !== 'none' && p.width !== undefined ? `,width=${p.width}` : '') + (p.kind !== 'none' && p.heads !== undefined ? `,heads=${p.heads}` : '');
  if (p.kind !== 'budget') return p.kind + chunks;
  for (const [unit, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const)
    if (p.bytes % size === 0) return `budget=${p.bytes / size}${unit}${chunks}`;
  return `budget=${p.bytes}B${chunks}`;
}

const text = (t: string) => t;

/** The step graph holds K copies of the forward: past a few thousand it is a mistake, not a plan. */
export const maxAccumulate = 4096;

/** One entry per step option, in help and --json order. A new field is a type error here until it has its entry. */
export const stepOptionTable: Table = {
  preset: { option: 'preset', value: 'NAME', help: "the model's preset (default: its first)", parse: text },
  sets: { option: 'set', value: 'KEY=VALUE', multiple: true, help: 'override one config key of the preset', parse: text },
  batch: { option: 'batch', value: 'B', help: 'batch size (sets the config key batch)', parse: (t, o, c) => c.integer(t, o, 1, maxSize) },
  seq: { option: 'seq', value: 'T', help: 'sequence length (sets the config key seq)', parse: (t, o, c) => c.integer(t, o, 1, maxSize) },
  dtype: { option: 'dtype', value: 'f32|f16|bf16', help: 'storage of params and activations; math stays f32 (default f32)', parse: (t, o, c) => c.oneOf(['f32', 'f16', 'bf16'] as const, t, o), json: { default: 'f32' } },
  clipNorm: { option: 'clip-norm', value: 'N', help: 'clip gradients to global L2 norm N (LOMO: two backward passes)', parse: (t, o, c) => c.number(t, o), json: { default: null } },
  clipMode: {
    option: 'clip-mode', value: 'exact|previous',
    help: "how --clip-norm finds the norm: exact (LOMO: two backward passes) or previous, approximate and one pass: by max(the previous step's norm, this step's norm so far) (default exact)",
    parse: (t, o, c) => c.oneOf(clipModes, t, o), json: { default: null },
  },
  clipValue: { option: 'clip-value', value: 'V', help: 'clamp each gradient element to [-V, V]', parse: (t, o, c) => c.number(t, o), json: { default: null } },
  lossScale: {
    option: 'loss-scale', value: 'dynamic|N',
    help: `f16 loss scaling: dynamic (start at ${lossScaleDefaults.init}, halve and skip the step on an overflow, double after --loss-scale-interval clean steps) or a fixed scale N; LOMO adds the norm pass to find an overflow before the first update`,
    parse: (t, o, c) => (t === 'dynamic' ? { kind: 'dynamic', init: lossScaleDefaults.init, interval: lossScaleDefaults.interval } : { kind: 'static', scale: c.number(t, o) }),
    json: { default: null }, show: (v) => (v.kind === 'dynamic' ? `dynamic (interval ${v.interval})` : v.scale),
  },
  lossScaleInterval: {
    option: 'loss-scale-interval', value: 'K', help: `clean steps before --loss-scale dynamic doubles the scale (default ${lossScaleDefaults.interval})`,
    parse: (t, o, c) => c.integer(t, o, 1, maxSize),
  },
  checkpoint: {
    option: 'checkpoint', value: 'POLICY', help: 'activation checkpointing: none, blocks, sqrt or budget=SIZE, e.g. budget=14GiB; after blocks ,runs=K (inputs kept for ceil(n/K) runs) or ,levels=L (runs nested L deep); then optionally ,chunks=N: recomputed FFNs over N token chunks, or ,width=N: over N slices of their width (default none)',
    parse: (t, o, c) => c.checkpoint(t, o), json: { default: { kind: 'none' } }, show: checkpointText,
  },
  accumulate: {
    option: 'accumulate', value: 'K',
    help: 'K micro-batches of --batch per update: gradients summed, one update (LOMO: layer-major, one block of gradients live) (default 1)',
    parse: (t, o, c) => c.integer(t, o, 1, maxAccumulate), json: { default: 1 },
  },
  target: {
    option: 'target', value: 'auto|cpu|gpu',
    help: 'kernel shapes: gpu, cpu (software adapters like lavapipe) or auto: from the adapter where the command acquires one, else gpu (default auto)',
    parse: (t, o, c) => c.oneOf(['auto', 'cpu', 'gpu'] as const, t, o), json: { default: 'auto' },
  },
  rounding: {
    option: 'rounding', value: 'nearest|stochastic',
    help: 'how updates store bf16 and f16 params (default: stochastic for bf16 under an in-backward optimizer without a master copy, LOMO; else nearest)',
    parse: (t, o, c) => c.oneOf(roundings, t, o),
  },
  fuseLoss: {
    option: 'fuse-loss', value: 'on|off',
    help: 'the LM head and the loss as one kernel region that never stores the [tokens, vocab] logits (default on); off: matmul + cross-entropy',
    parse: (t, o, c) => c.oneOf(['on', 'off'] as const, t, o) === 'on',
    show: (v) => (v ? 'on' : 'off'),
  },
  tune: {
    option: 'tune', value: 'auto|off|SECONDS',
    help: 'time candidate matmul tiles on the adapter, keep the fastest per shape (cached per adapter): 20s, any budget in seconds; off: the target\'s fixed tiles; auto: 20s on hardware adapters, off on software ones (default auto)',
    parse: parseTune,
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
  return withLossScale(command, out as unknown as StepOptionValues);
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

/**
 * Loss scaling is for f16 storage (bf16 has f32's range, f32 needs none): any other --dtype is an
 * error, as is --loss-scale-interval without --loss-scale dynamic, and a scale that is not positive.
 * The interval lands in the dynamic spec.
 */
function withLossScale(command: string, v: StepOptionValues): StepOptionValues {
  const { lossScale: spec, lossScaleInterval: interval } = v;
  if (interval !== undefined && spec?.kind !== 'dynamic')
    throw new LomocError(`lomoc ${command}: --loss-scale-interval: it sets how often --loss-scale dynamic grows the scale; give --loss-scale dynamic too`);
  if (spec === undefined) return v;
  if ((v.dtype ?? 'f32') !== 'f16')
    throw new LomocError(`lomoc ${command}: --loss-scale: loss scaling is for f16 storage (--dtype f16), got --dtype ${v.dtype ?? 'f32 (the default)'}, whose range needs none`);
  if (spec.kind === 'static' && !(spec.scale > 0 && Number.isFinite(spec.scale)))
    throw new LomocError(`lomoc ${command}: --loss-scale: expected dynamic or a positive number, got ${spec.scale}`);
  return interval === undefined || spec.kind !== 'dynamic' ? v : { ...v, lossScale: { ...spec, interval } };
}
