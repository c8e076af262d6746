// `lomoc graph <model.ts>`: trace a model, verify, differentiate, verify again, and report the
// graph's size and how long each stage took.
import { differentiate } from '../compiler/autodiff/index.ts';
import { formatDiagnostic, LomocError, type Diagnostic } from '../compiler/diagnostics.ts';
import { resolveConfig, traceModel, type Config } from '../compiler/dsl/model.ts';
import { countByPhase } from '../compiler/ir/analysis.ts';
import { printGraph } from '../compiler/ir/print.ts';
import { byteSize } from '../compiler/ir/shape.ts';
import { fmtBytes, numel } from '../contract/units.ts';
import type { Graph } from '../compiler/ir/types.ts';
import { verify } from '../compiler/ir/verify.ts';
import { loadModel } from '../compiler/load-model.ts';
import { optionChecks, parseCommandArgs, stepOptionSpecs, type CommandSpec } from './args.ts';
import { stepOptionValues } from './step-options.ts';
import { printWarnings, type Io } from './report.ts';

export const graphSpec: CommandSpec = {
  name: 'graph',
  summary: 'Trace a model, differentiate it, and print the size of its training graph.',
  positionals: [{ name: 'model.ts', help: 'a model file whose default export is model(...)' }],
  options: {
    preset: stepOptionSpecs.preset,
    set: stepOptionSpecs.set,
    print: { type: 'boolean', help: 'print the whole graph, forward and backward' },
    json: { type: 'boolean', help: 'print one JSON object on stdout instead of the table' },
  },
  examples: [
    'lomoc graph models/gpt.ts --preset tiny',
    'lomoc graph models/llama.ts --preset llama-7b --set layers=8 --json',
  ],
};

export interface GraphSummary {
  readonly model: string;
  readonly preset: string;
  readonly config: Config;
  readonly params: number;
  readonly paramBytes: number;
  readonly nodes: { readonly forward: number; readonly backward: number };
  /** Milliseconds per stage, in pipeline order, and their total. */
  readonly timings: Readonly<Record<string, number>>;
  readonly warnings: readonly string[];
}

export interface GraphResult {
  readonly summary: GraphSummary;
  readonly graph: Graph;
  readonly diagnostics: readonly Diagnostic[];
}

/** The pipeline behind `lomoc graph`, without printing: errors are thrown as LomocError. */
export async function compileGraph(file: string, preset?: string, sets: readonly string[] = []): Promise<GraphResult> {
  const timings: Record<string, number> = {};
  const time = <T>(stage: string, f: () => T): T => {
    const t0 = performance.now();
    const out = f();
    timings[stage] = performance.now() - t0;
    return out;
  };
  const t0 = performance.now();
  const def = await loadModel(file);
  timings.load = performance.now() - t0;
  const config = resolveConfig(def, preset, sets);
  const { graph: forward, warnings } = time('trace', () => traceModel(def, config));
  time('verify', () => verify(forward, 'trace'));
  const graph = time('differentiate', () => differentiate(forward));
  time('verifyBackward', () => verify(graph, 'differentiate'));
  timings.total = performance.now() - t0;
  const params = forward.params.reduce((acc, p) => acc + numel(forward.values[p.value].shape), 0);
  const paramBytes = forward.params.reduce((acc, p) => acc + byteSize(forward.values[p.value].shape, 'f32'), 0);
  const phases = countByPhase(graph);
  const summary: GraphSummary = {
    model: def.name,
    preset: preset ?? def.defaultPreset,
    config,
    params,
    paramBytes,
    nodes: { forward: phases.forward ?? 0, backward: phases.backward ?? 0 },
    timings,
    warnings: warnings.map(formatDiagnostic),
  };
  return { summary, graph, diagnostics: warnings };
}

const fmtCount = (n: number): string => n.toLocaleString('en-US');

const stageNames: Readonly<Record<string, string>> = {
  load: 'load model',
  trace: 'trace',
  verify: 'verify',
  differentiate: 'differentiate',
  verifyBackward: 'verify (with backward)',
  total: 'total',
};

export function formatSummary(s: GraphSummary): string {
  const config = Object.entries(s.config).map(([k, v]) => `${k}=${v}`).join(' ');
  const rows: [string, string][] = [
    ['model', s.model],
    ['preset', `${s.preset} (${config})`],
    ['nodes', `${fmtCount(s.nodes.forward)} forward, ${fmtCount(s.nodes.backward)} backward`],
    ['params', fmtCount(s.params)],
    ['param bytes', `${fmtCount(s.paramBytes)} (${fmtBytes(s.paramBytes)} in f32)`],
    ['warnings', String(s.warnings.length)],
  ];
  const lines = rows.map(([k, v]) => `${k.padEnd(12)}${v}`);
  const stages = Object.keys(stageNames).filter((k) => k in s.timings);
  const w = Math.max(...stages.map((k) => stageNames[k].length));
  lines.push('', `${'stage'.padEnd(w)}  ${'ms'.padStart(9)}`);
  for (const k of stages) lines.push(`${stageNames[k].padEnd(w)}  ${s.timings[k].toFixed(1).padStart(9)}`);
  return lines.join('\n');
}

export async function runGraph(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(graphSpec, argv);
  if (values.json && values.print) throw new LomocError('lomoc graph: --print and --json cannot be combined (both write to stdout)');
  const { preset, sets } = stepOptionValues('graph', values, optionChecks('graph'));
  const { summary, graph, diagnostics } = await compileGraph(positionals[0], preset, sets);
  printWarnings(io, diagnostics);
  if (values.json) {
    const timings = Object.fromEntries(Object.entries(summary.timings).map(([k, v]) => [k, Math.round(v * 100) / 100]));
    const { model, preset: name, params, paramBytes, nodes, warnings, config } = summary;
    io.out(JSON.stringify({ model, preset: name, params, paramBytes, nodes, timings, warnings, config }));
    return 0;
  }
  if (values.print) io.out(printGraph(graph) + '\n');
  io.out(formatSummary(summary));
  return 0;
}
