// `model(name, build, { presets })` declares a model; `traceModel` runs its build function once
// to make the forward graph. Configs are plain objects; presets name complete configs.
// Tracing costs O(n) in DSL calls, each capturing a bounded (30-frame) stack for its location.
import { inspect } from 'node:util';
import { LomocError, printable, warning, type Diagnostic } from '../diagnostics.ts';
import { ancestors } from '../ir/analysis.ts';
import { fmtShape } from '../ir/shape.ts';
import type { Graph, Loc } from '../ir/types.ts';
import { callerLoc, userFrame } from './location.ts';
import { closeTrace, describe, openTrace } from './trace.ts';
import type { Tensor } from './tensor.ts';

export type ConfigValue = number | string | boolean;
export type Config = Readonly<Record<string, ConfigValue>>;

export interface ModelDef<C extends Config = Config> {
  readonly kind: 'lomoc-model';
  readonly name: string;
  readonly presets: Readonly<Record<string, C>>;
  readonly defaultPreset: string;
  // Method syntax: a ModelDef<SpecificConfig> is usable wherever a ModelDef is expected.
  build(cfg: C): Tensor;
  readonly loc: Loc;
}

/**
 * Declares a model. `build` receives a config and returns the scalar loss.
 * @example
 * export default model('mlp', (cfg) => {
 *   const x = input('x', [cfg.batch, cfg.width]);
 *   ...
 *   return mean(crossEntropy(logits, labels));
 * }, { presets: { tiny: { batch: 4, width: 8 } } });
 */
export function model<C extends Config>(
  name: string,
  build: (cfg: C) => Tensor,
  opts: { readonly presets: Readonly<Record<string, C>>; readonly default?: string },
): ModelDef<C> {
  const loc = callerLoc();
  const names = Object.keys(opts?.presets ?? {});
  if (names.length === 0) throw new LomocError(`model '${printable(String(name))}': at least one preset is needed`, loc);
  const defaultPreset = opts.default ?? names[0];
  if (!names.includes(defaultPreset))
    throw new LomocError(`model '${printable(String(name))}': the default preset must be one of ${names.map(printable).join(', ')}, got '${printable(String(defaultPreset))}'`, loc);
  return { kind: 'lomoc-model', name, presets: opts.presets, defaultPreset, build, loc };
}

export const isModelDef = (x: unknown): x is ModelDef =>
  typeof x === 'object' && x !== null && (x as ModelDef).kind === 'lomoc-model';

function parseValue(text: string): ConfigValue {
  if (text === 'true' || text === 'false') return text === 'true';
  const n = Number(text);
  return text.trim() !== '' && Number.isFinite(n) ? n : text;
}

/** A preset with `key=value` overrides applied; unknown presets and keys are user errors. */
export function resolveConfig<C extends Config>(def: ModelDef<C>, preset?: string, sets: readonly string[] = []): C {
  const name = preset ?? def.defaultPreset;
  const base = def.presets[name];
  if (!base)
    throw new LomocError(
      `model '${printable(def.name)}': unknown preset '${printable(name)}', expected one of: ${Object.keys(def.presets).map(printable).join(', ')}`,
      def.loc,
    );
  const cfg: Record<string, ConfigValue> = { ...base };
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new LomocError(`--set: expected key=value, got '${printable(s)}'`);
    const key = s.slice(0, eq);
    const value = parseValue(s.slice(eq + 1));
    if (!(key in base))
      throw new LomocError(
        `model '${printable(def.name)}': unknown config key '${printable(key)}', expected one of: ${Object.keys(base).map(printable).join(', ')}`,
        def.loc,
      );
    if (typeof value !== typeof base[key])
      throw new LomocError(
        `model '${printable(def.name)}': config key '${printable(key)}' expects a ${typeof base[key]}, got ${describe(value)}`,
        def.loc,
      );
    cfg[key] = value;
  }
  return cfg as C;
}

/** A thrown value as the user would write it: a string quoted, an object as a literal, on one line. */
function renderThrown(e: unknown): string {
  const text = inspect(e, { depth: 2, breakLength: Infinity, maxArrayLength: 10, maxStringLength: 200 });
  return printable(text.length > 300 ? `${text.slice(0, 300)}...` : text);
}

export interface Traced {
  readonly graph: Graph;
  readonly warnings: readonly Diagnostic[];
}

/** Runs the build function once; the result is the forward graph with its scalar loss. */
export function traceModel<C extends Config>(def: ModelDef<C>, cfg: C): Traced {
  const t = openTrace(def.name);
  let loss: Tensor;
  try {
    loss = def.build(cfg);
  } catch (e) {
    if (e instanceof LomocError) throw e;
    // An exception in the user's own code: point at the user's line, not at lomoc. A thrown
    // non-Error carries no stack, so the best place known is the model's declaration.
    if (e instanceof Error) throw new LomocError(`model '${printable(def.name)}': the build function threw: ${printable(e.message)}`, userFrame(e.stack) ?? def.loc);
    throw new LomocError(`model '${printable(def.name)}': the build function threw ${renderThrown(e)}, not an Error (so no line of its own is known)`, def.loc);
  } finally {
    closeTrace();
  }
  if (!loss || typeof loss !== 'object' || typeof loss.id !== 'number' || loss.trace !== t.id)
    throw new LomocError(`model '${printable(def.name)}': the build function must return the loss tensor, got ${describe(loss)}`, def.loc);
  const lossValue = t.builder.values[loss.id];
  if (lossValue.shape.length !== 0)
    throw new LomocError(`model '${printable(def.name)}': the loss must be a scalar, got shape ${fmtShape(lossValue.shape)}`, lossValue.loc, [
      { message: 'reduce it to a scalar, for example with mean(...)' },
    ]);
  if (lossValue.dtype === 'i32')
    throw new LomocError(`model '${printable(def.name)}': the loss must be a float scalar, got i32`, lossValue.loc);
  const graph: Graph = {
    name: def.name,
    values: t.builder.values,
    nodes: t.builder.nodes,
    inputs: t.builder.inputs,
    params: t.builder.params,
    loss: loss.id,
    ...(t.blocks.length ? { blocks: t.blocks } : {}),
    ...(t.outputs.size ? { outputs: Object.fromEntries([...t.outputs].map(([k, o]) => [k, o.tensor.id])) } : {}),
  };
  const reach = ancestors(graph, [loss.id]);
  const warnings = graph.params
    .filter((p) => !reach.has(p.value))
    .map((p) => warning(`param '${printable(p.name)}' does not reach the loss; its gradient is zero`, p.loc));
  return { graph, warnings };
}
