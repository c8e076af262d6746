// `lomoc plan <model.ts>`: compile the training step once per optimizer, plan its memory, and print
// the bytes by category the way the paper's Table 1 does (beside the paper's own rows when the step
// is the one it measured), or one JSON object; `--timeline` also writes the memory timeline page.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import { groupScratch } from '../compiler/codegen/wgsl/emitters.ts';
import { kernelTargets } from '../compiler/codegen/wgsl/target.ts';
import { loadModel } from '../compiler/load-model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import { compileStep, updatesWindows } from '../compiler/pipeline.ts';
import { memoryReport } from '../compiler/report/memory-report.ts';
import { timelineHtml } from '../compiler/report/timeline-html.ts';
import { defaultTarget, optionChecks, parseCommandArgs, resolveTarget, stepOptionSpecs, type CommandSpec, type OptionValue } from './args.ts';
import { describeStepOptions, stepJson, stepOptionValues } from './step-options.ts';
import { fmtBytes } from '../contract/units.ts';
import { inferencePlan } from './plan-inference.ts';
import { hyperFor, hyperFrom, optimizerFrom } from './optimizer-options.ts';
import { formatPlanTable } from './plan-table.ts';
import { optimizerDescriptor, optimizerNames } from '../compiler/optimizers/table.ts';
import { paperTable1 } from '../compiler/report/paper.ts';
import type { PlanResult, PlanRow, StepFields } from './plan-result.ts';
import { printWarnings, type Io } from './report.ts';

export const planSpec: CommandSpec = {
  name: 'plan',
  summary: "Compile the training step, plan its memory, and print the bytes by category (the paper's Table 1).",
  positionals: [{ name: 'model.ts', help: 'a model file whose default export is model(...)' }],
  options: {
    ...stepOptionSpecs,
    optimizer: { type: 'string', value: 'NAME', help: `${optimizerNames().join(', ')}, or all of them (default all)` },
    json: { type: 'boolean', help: 'print one JSON object on stdout instead of the table' },
    timeline: { type: 'string', value: 'FILE', help: "write the memory timeline page (HTML) to FILE, '-' for stdout" },
    inference: { type: 'boolean', help: 'plan the inference program (prefill, decode, key/value cache) instead of training' },
  },
  examples: [
    'lomoc plan models/gpt.ts --preset tiny --optimizer lomo',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --batch 8 --seq 512 --optimizer all',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --checkpoint blocks',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --optimizer lomo --checkpoint budget=14GiB',
    'lomoc plan models/llama.ts --preset llama-7b --dtype f16 --timeline plan.html',
    'lomoc plan models/gpt.ts --preset gpt2 --inference',
  ],
};

/** `--optimizer all`: Table 1's rows in its order (most memory first), then any other optimizer. */
export const allOptimizers = (): OptimizerName[] => {
  const paper = Object.keys(paperTable1.rows);
  return [...paper.filter((n) => optimizerNames().includes(n)), ...optimizerNames().filter((n) => !paper.includes(n))];
};

const checks = optionChecks('plan');

export type { PlanResult, PlanRow, StepFields } from './plan-result.ts';

export interface PlanRequest {
  readonly file: string;
  readonly preset?: string;
  readonly sets: readonly string[];
  readonly optimizers: readonly OptimizerName[];
  /** --opt: each optimizer gets the keys it has. */
  readonly hyper?: Readonly<Record<string, number>>;
  readonly step: StepFields;
  /** How the kernel target was chosen, for the target line (default: --target). */
  readonly targetHow?: string;
  readonly json: boolean;
  /** Where to write the timeline page; '-' is stdout. */
  readonly timeline?: string;
  /** Printed with the compiler's warnings (what --optimizer all left out). */
  readonly notes?: readonly string[];
}


/** Checks every option before anything is compiled. */
export function planRequest(positionals: readonly string[], values: Readonly<Record<string, OptionValue>>): PlanRequest {
  // --tune changes no plan (matmul tiles take no scratch): plan runs nothing, so it tunes nothing.
  const { preset, sets, target: choice, tune: _tune, ...fields } = stepOptionValues('plan', values, checks);
  // plan asks no adapter (it runs nothing): auto is the stated default, and the target line says so.
  const { target, how } = resolveTarget(choice ?? 'auto', 'lomoc plan asks no adapter');
  const optimizer = optimizerFrom('plan', (values.optimizer as string | undefined) ?? 'all', ['all']);
  // --optimizer all with width slices plans the optimizers that can update a window, and says which it left out.
  const split = fields.checkpoint as { width?: number; heads?: number } | undefined;
  const width = Math.max(split?.width ?? 1, split?.heads ?? 1);
  const every = optimizer === 'all' ? allOptimizers() : [optimizer];
  const optimizers = optimizer === 'all' && width > 1 ? every.filter((o) => updatesWindows(optimizerDescriptor(o))) : every;
  const left = every.filter((o) => !optimizers.includes(o));
  const hyper = hyperFrom('plan', optimizers, values.opt);
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
    preset,
    sets,
    optimizers,
    hyper,
    step: { ...fields, target },
    targetHow: how,
    json: values.json === true,
    timeline,
    ...(left.length ? { notes: [`--checkpoint ...,width=${width}: ${left.join(', ')} not planned (${left.length > 1 ? 'their states are' : 'its state is'} not shaped like the weight, so ${left.length > 1 ? 'they' : 'it'} cannot update a window of it)`] } : {}),
  };
}

/** The pipeline behind `lomoc plan`, without printing: one compiled and planned step per optimizer. */
export async function planSteps(req: PlanRequest): Promise<PlanResult> {
  const def = await loadModel(req.file);
  const rows = req.optimizers.map((optimizer): PlanRow => {
    const t0 = performance.now();
    const compiled = compileStep(def, { ...req.step, target: req.step.target ?? defaultTarget, preset: req.preset, sets: req.sets, optimizer, hyper: hyperFor(optimizer, req.hyper ?? {}) });
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
    warnings: [...rows[0].compiled.warnings, ...(req.notes ?? []).map((message) => ({ severity: 'warning' as const, message, notes: [] }))],
    targetNote: targetNote(rows, req.targetHow ?? '--target'),
  };
}

/** The line naming the kernel target and how it was chosen, and whether the other target's kernels would need other scratch (so another plan). */
function targetNote(rows: readonly PlanRow[], how: string): { line: string; differs: boolean } {
  const target = rows[0].compiled.target;
  const other = kernelTargets[target.name === 'cpu' ? 'gpu' : 'cpu'];
  const differs = rows.some(({ compiled: c }) => {
    const [mine, theirs] = [groupScratch(c.step, c.fusion, target), groupScratch(c.step, c.fusion, other)];
    return c.fusion.groups.some((_, k) => mine(k).join() !== theirs(k).join());
  });
  const line = `target      planned for the ${target.name} kernel target (${how})${differs ? `; the ${other.name} target's kernels need other scratch (--target ${other.name})` : ''}`;
  return { line, differs };
}

/**
 * "dtype f16; clip-norm 1; checkpoint none": the step options that --json prints, as the command
 * line names them (the target has its own line; accumulate only when it is not 1).
 */
export function describeStep(step: StepFields): string {
  return describeStepOptions(step, (step.accumulate ?? 1) > 1 ? ['target'] : ['target', 'accumulate']);
}

/** The --json object: sizes in bytes, planMs in milliseconds. */
export function planJson(r: PlanResult) {
  const step = stepJson({ ...r.step, target: r.rows[0].compiled.target.name });
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
      // A two-pass clip-norm's gradients computed once, by pass 1 (passes/norm-share.ts).
      ...(compiled.normShare ? { normShare: { shared: compiled.normShare.shared, of: compiled.normShare.of } } : {}),
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
  if (values.inference) return inferencePlan(await loadModel(positionals[0]), values, io);
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
  } else io.out([formatPlanTable(result, describeStep(result.step)), result.targetNote.line, ...wrote].join('\n'));
  if (req.json && result.targetNote.differs) io.err(result.targetNote.line);
  return 0;
}
