// `lomoc plan <model.ts>`: compile the training step once per optimizer, plan its memory, and print
// the bytes by category the way the paper's Table 1 does (beside the paper's own rows when the step
// is the one it measured), or one JSON object; `--timeline` also writes the memory timeline page.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LomocError, type Diagnostic } from '../compiler/diagnostics.ts';
import type { Config } from '../compiler/dsl/model.ts';
import { groupScratch } from '../compiler/codegen/wgsl/emitters.ts';
import { kernelTargets } from '../compiler/codegen/wgsl/target.ts';
import { loadModel } from '../compiler/load-model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import type { CheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';
import { compileStep, type CompiledStep, type StepConfig } from '../compiler/pipeline.ts';
import { memoryReport, type MemoryReport } from '../compiler/report/memory-report.ts';
import { timelineHtml } from '../compiler/report/timeline-html.ts';
import { optionChecks, parseCommandArgs, stepOptionSpecs, type CommandSpec, type OptionValue } from './args.ts';
import { fmtBytes } from './graph.ts';
import { formatPlanTable } from './plan-table.ts';
import type { PlanResult, PlanRow, StepFields } from './plan-result.ts';
import { printWarnings, type Io } from './report.ts';

export const planSpec: CommandSpec = {
  name: 'plan',
  summary: "Compile the training step, plan its memory, and print the bytes by category (the paper's Table 1).",
  positionals: [{ name: 'model.ts', help: 'a model file whose default export is model(...)' }],
  options: {
    ...stepOptionSpecs,
    // No adapter is asked here: auto plans for gpu (the scratch of the cpu target is printed when it differs).
    target: { type: 'string', value: 'auto|cpu|gpu', help: 'kernel shapes whose scratch the plan reserves: gpu or cpu (default auto: gpu)' },
    optimizer: { type: 'string', value: 'NAME', help: 'sgd, adamw, lomo, or all of them (default all)' },
    json: { type: 'boolean', help: 'print one JSON object on stdout instead of the table' },
    timeline: { type: 'string', value: 'FILE', help: "write the memory timeline page (HTML) to FILE, '-' for stdout" },
  },
  examples: [
    'lomoc plan models/gpt.ts --preset tiny --optimizer lomo',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --batch 8 --seq 512 --optimizer all',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --checkpoint blocks',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --optimizer lomo --checkpoint budget=14GiB',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --timeline plan.html',
  ],
};

export const allOptimizers: readonly OptimizerName[] = ['adamw', 'sgd', 'lomo'];

/**
 * The StepConfig fields that come from one command-line option each. Not options: the optimizer
 * (one row each), the plan's device limits, verification and `master` (it follows --dtype).
 */
export type { PlanResult, PlanRow, StepFields } from './plan-result.ts';

interface StepOption<T> {
  /** The command-line option (in planSpec.options). */
  readonly option: string;
  readonly parse: (text: string, option: string) => T;
  /** Printed as a top-level --json field (batch and seq are in `config` already), with this default. */
  readonly json?: { readonly default: T | null };
  /** How the value prints in --json and the table's settings line (default: as is). */
  readonly show?: (value: T) => string | number;
}

const checks = optionChecks('plan');
const positiveInteger = (text: string, option: string): number => checks.integer(text, option);
const positiveNumber = (text: string, option: string): number => checks.number(text, option);
const oneOf = <T extends string>(choices: readonly T[]) => (text: string, option: string): T => checks.oneOf(choices, text, option);
const checkpointPolicy = (text: string, option: string): CheckpointPolicy => checks.checkpoint(text, option);

/**
 * One entry per step option, in --json order. A new StepConfig field is a type error here until
 * it gets its entry (and its option in planSpec.options).
 */
export const stepOptions: { readonly [K in keyof Required<StepFields>]: StepOption<NonNullable<StepFields[K]>> } = {
  batch: { option: 'batch', parse: positiveInteger },
  seq: { option: 'seq', parse: positiveInteger },
  dtype: { option: 'dtype', parse: oneOf(['f32', 'f16', 'bf16'] as const), json: { default: 'f32' } },
  clipNorm: { option: 'clip-norm', parse: positiveNumber, json: { default: null } },
  clipValue: { option: 'clip-value', parse: positiveNumber, json: { default: null } },
  target: { option: 'target', parse: (text, option) => { const t = oneOf(['auto', 'cpu', 'gpu'] as const)(text, option); return t === 'auto' ? 'gpu' : t; } },
  checkpoint: {
    option: 'checkpoint',
    parse: checkpointPolicy,
    json: { default: { kind: 'none' } },
    show: (p) => (p.kind === 'budget' ? `budget=${p.bytes}B` : p.kind),
  },
};

export interface PlanRequest {
  readonly file: string;
  readonly preset?: string;
  readonly sets: readonly string[];
  readonly optimizers: readonly OptimizerName[];
  readonly step: StepFields;
  readonly json: boolean;
  /** Where to write the timeline page; '-' is stdout. */
  readonly timeline?: string;
}


/** Checks every option before anything is compiled. */
export function planRequest(positionals: readonly string[], values: Readonly<Record<string, OptionValue>>): PlanRequest {
  const step: Record<string, unknown> = {};
  for (const [field, o] of Object.entries(stepOptions) as [string, StepOption<unknown>][]) {
    const text = values[o.option];
    if (typeof text === 'string') step[field] = o.parse(text, o.option);
  }
  const optimizer = oneOf(['sgd', 'adamw', 'lomo', 'all'] as const)((values.optimizer as string | undefined) ?? 'all', 'optimizer');
  const timeline = values.timeline as string | undefined;
  if (values.json && timeline === '-')
    throw new LomocError("lomoc plan: --json and --timeline - cannot be combined (both write to stdout)");
  if (timeline !== undefined && timeline !== '-') {
    const dir = path.dirname(path.resolve(timeline));
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new LomocError(`lomoc plan: option '--timeline': cannot write '${timeline}': its folder does not exist`);
    if (existsSync(timeline) && statSync(timeline).isDirectory())
      throw new LomocError(`lomoc plan: option '--timeline': cannot write '${timeline}': it is a folder`);
  }
  return {
    file: positionals[0],
    preset: values.preset as string | undefined,
    sets: (values.set as string[] | undefined) ?? [],
    optimizers: optimizer === 'all' ? allOptimizers : [optimizer],
    step: step as StepFields,
    json: values.json === true,
    timeline,
  };
}

/** The pipeline behind `lomoc plan`, without printing: one compiled and planned step per optimizer. */
export async function planSteps(req: PlanRequest): Promise<PlanResult> {
  const def = await loadModel(req.file);
  const rows = req.optimizers.map((optimizer): PlanRow => {
    const t0 = performance.now();
    const compiled = compileStep(def, { ...req.step, target: req.step.target ?? 'gpu', preset: req.preset, sets: req.sets, optimizer });
    const planMs = performance.now() - t0;
    return { optimizer, compiled, report: memoryReport(compiled.plan), planMs };
  });
  return {
    model: def.name,
    file: path.relative(process.cwd(), path.resolve(req.file)) || req.file,
    preset: req.preset ?? def.defaultPreset,
    config: rows[0].compiled.config,
    step: req.step,
    rows,
    warnings: rows[0].compiled.warnings,
    targetNote: targetNote(rows),
  };
}

/** A line naming the kernel target when the other target's kernels would need other scratch (so another plan). */
function targetNote(rows: readonly PlanRow[]): string | undefined {
  const target = rows[0].compiled.target;
  const other = kernelTargets[target.name === 'cpu' ? 'gpu' : 'cpu'];
  const differs = rows.some(({ compiled: c }) => {
    const [mine, theirs] = [groupScratch(c.step, c.fusion, target), groupScratch(c.step, c.fusion, other)];
    return c.fusion.groups.some((_, k) => mine(k).join() !== theirs(k).join());
  });
  return differs ? `target      planned for the ${target.name} kernel target; the ${other.name} target's kernels need other scratch (--target ${other.name})` : undefined;
}

const shown = (o: StepOption<unknown>, v: unknown) => (o.show && v !== null ? o.show(v) : v);

/** "dtype f16; clip-norm 1": the step options that --json prints, as the command line names them. */
export function describeStep(step: StepFields): string {
  return (Object.entries(stepOptions) as [keyof StepFields, StepOption<unknown>][])
    .filter(([field, o]) => o.json && (step[field] !== undefined || o.json.default !== null))
    .map(([field, o]) => `${o.option} ${shown(o, step[field] ?? o.json!.default)}`)
    .join('; ');
}

/** The --json object: sizes in bytes, planMs in milliseconds. */
export function planJson(r: PlanResult) {
  const step = Object.fromEntries(
    (Object.entries(stepOptions) as [keyof StepFields, StepOption<unknown>][])
      .filter(([, o]) => o.json)
      .map(([field, o]) => [field, shown(o, r.step[field] ?? o.json!.default)]),
  );
  return {
    model: r.model,
    preset: r.preset,
    config: r.config,
    ...step,
    rows: r.rows.map(({ optimizer, report, planMs, compiled }) => ({
      optimizer,
      params: report.most.params,
      grads: report.most.grads,
      optimizerState: report.most.optimizerState,
      activations: report.most.activations,
      workspace: report.most.workspace,
      total: report.total,
      lowerBound: report.lowerBound,
      recomputeRatio: Math.round(compiled.recomputeRatio * 1e4) / 1e4,
      planMs: Math.round(planMs * 10) / 10,
    })),
  };
}

/** The timeline page for every plan computed. */
export function planTimeline(r: PlanResult): string {
  const config = Object.entries(r.config).map(([k, v]) => `${k}=${v}`).join(' ');
  return timelineHtml({
    title: `${r.model}, preset ${r.preset}`,
    details: [`${r.file}: ${config}; dtype ${r.step.dtype ?? 'f32'}`, `optimizers: ${r.rows.map((x) => x.optimizer).join(', ')}`],
    sections: r.rows.map(({ optimizer, compiled, report }) => ({ optimizer, step: compiled.step, plan: compiled.plan, report })),
  });
}

function writeTimeline(file: string, html: string): void {
  try {
    writeFileSync(file, html);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new LomocError(`lomoc plan: option '--timeline': cannot write '${file}': ${reason}`);
  }
}

export async function runPlan(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(planSpec, argv);
  const req = planRequest(positionals, values);
  const result = await planSteps(req);
  printWarnings(io, result.warnings);
  const html = req.timeline === undefined ? undefined : planTimeline(result);
  if (req.timeline === '-') {
    io.out(html!);
    io.err(formatPlanTable(result, describeStep(result.step)));
    return 0;
  }
  if (html !== undefined) writeTimeline(req.timeline!, html);
  const wrote = html === undefined ? [] : [`timeline    wrote ${req.timeline} (${fmtBytes(Buffer.byteLength(html))})`];
  if (req.json) {
    io.out(JSON.stringify(planJson(result)));
    wrote.forEach((l) => io.err(l));
  } else io.out([formatPlanTable(result, describeStep(result.step)), ...(result.targetNote ? [result.targetNote] : []), ...wrote].join('\n'));
  if (req.json && result.targetNote) io.err(result.targetNote);
  return 0;
}
