// The text `lomoc plan` prints: the paper's Table 1 columns per optimizer (each category's own
// maximum over the step, and the plan's peak), the paper's rows beside ours when the step is the
// one it measured, the breakdown at the moment of the peak, and the lines that say how to read them.
import { fmtLoc } from '../compiler/diagnostics.ts';
import { categories, type Category } from '../compiler/ir/memory-plan.ts';
import { describeNormShare } from '../compiler/passes/norm-share.ts';
import { isPaperSetting, paperTable1, paperTotal, percentDiff } from '../compiler/report/paper.ts';
import type { PlanResult, PlanRow } from './plan-result.ts';

const columnNames: Readonly<Record<Category, string>> = {
  params: 'params',
  grads: 'grads',
  optimizerState: 'optimizer states',
  activations: 'activations',
  workspace: 'workspace',
};

/** The unit the table prints in: GiB for real models, smaller for toy ones. */
function unitFor(bytes: number): { name: string; size: number } {
  for (const [name, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const)
    if (bytes >= size) return { name, size };
  return { name: 'bytes', size: 1 };
}

const count = (n: number) => n.toLocaleString('en-US');

function peakWhere(row: PlanRow): string {
  const { step } = row.compiled;
  const n = step.nodes[row.report.peakAt];
  const at = `${count(row.report.peakAt)} of ${count(step.nodes.length)}`;
  return n ? `${at}: ${n.op} (${n.phase}) at ${fmtLoc(n.loc)}` : at;
}

/** `settings`: the step options, as `describeStep` in plan.ts writes them ("dtype f16; clip-norm 1"). */
export function formatPlanTable(r: PlanResult, settings: string): string {
  const unit = unitFor(Math.max(...r.rows.map((x) => x.report.total)));
  const num = (bytes: number) => (unit.size === 1 ? String(bytes) : (bytes / unit.size).toFixed(2));
  const dtype = r.step.dtype ?? 'f32';
  // The paper's rows are one batch of 8: a step of K micro-batches is not its setting.
  const paper = unit.name === 'GiB' && isPaperSetting(r.model, r.config, dtype) && (r.step.accumulate ?? 1) === 1;
  // With checkpointing: the recomputed FLOPs as a share of one forward, and the paper's AC rows.
  const ac = (r.step.checkpoint?.kind ?? 'none') !== 'none';
  const extra = (cells: string[]) => (ac ? cells : []);

  const table: string[][] = [['optimizer', ...categories.map((c) => columnNames[c]), 'total', ...extra(['recompute'])]];
  for (const row of r.rows) {
    const recompute = `${(row.compiled.recomputeRatio * 100).toFixed(0)}% fwd`;
    table.push([row.optimizer, ...categories.map((c) => num(row.report.most[c])), num(row.report.total), ...extra([recompute])]);
    if (!paper || !(row.optimizer in paperTable1.rows)) continue; // the paper has rows for adamw, sgd and lomo only
    const p = paperTable1.rows[row.optimizer];
    const paperBytes = { params: p.params, grads: p.grads, optimizerState: p.optimizerState, activations: ac ? p.activations.checkpointed : p.activations.none };
    table.push([ac ? '  paper, AC' : '  paper, no AC', ...categories.map((c) => (c === 'workspace' ? '-' : paperBytes[c].toFixed(2))), paperTotal(p, ac).toFixed(2), ...extra([''])]);
    table.push(['  lomoc vs paper', ...categories.map((c) => (c === 'workspace' || (c === 'activations' && !ac) ? '' : percentDiff(row.report.most[c], paperBytes[c]))), ac ? percentDiff(row.report.total, paperTotal(p, ac)) : '', ...extra([''])]);
  }
  const peaks: string[][] = [['at the peak', ...categories.map((c) => columnNames[c]), 'live', ...extra(['']), 'position']];
  for (const row of r.rows) {
    const live = categories.reduce((a, c) => a + row.report.atPeak[c], 0);
    peaks.push([row.optimizer, ...categories.map((c) => num(row.report.atPeak[c])), num(live), ...extra(['']), peakWhere(row)]);
  }
  // Columns 0 to 6 line up across both tables; the peak's position is free text after them.
  const widths = table[0].map((_, k) => Math.max(...[...table, ...peaks].map((line) => line[k].length)));
  const render = (line: string[]) =>
    line.map((cell, k) => (k === 0 ? cell.padEnd(widths[0]) : k < widths.length ? cell.padStart(widths[k]) : cell)).join('  ').trimEnd();

  const config = Object.entries(r.config).map(([k, v]) => `${k}=${v}`).join(' ');
  const bound = r.rows.map((x) => `${x.optimizer} ${num(x.report.lowerBound)} (peak/lower bound ${(x.report.total / x.report.lowerBound).toFixed(4)})`);
  const ms = r.rows.map((x) => `${x.optimizer} ${x.planMs.toFixed(0)} ms`);
  const lines = [
    ...table.map(render),
    '',
    ...peaks.map(render),
    '',
    `model       ${r.model} (${r.file}), preset ${r.preset}: ${config}; ${settings}`,
    `lower bound ${bound.join(', ')}`,
    `planned in  ${ms.join(', ')} (trace to memory plan, once per optimizer)`,
    // A two-pass clip-norm (LOMO's exact clip, loss scaling): how much of its backward pass 1 shares.
    ...r.rows.flatMap((x) => (x.compiled.normShare ? [`norm pass   ${x.optimizer} ${describeNormShare(x.compiled.normShare)}`] : [])),
    `note        sizes in ${unit.name}. Each category column is that category's own maximum over the step; the maxima`,
    `            fall at different moments, so they need not add up to total, the plan's peak (what the device`,
    `            allocates). "at the peak" is the breakdown at the moment the most bytes are live.`,
  ];
  if (paper && ac) {
    lines.push(
      `paper       ${paperTable1.source}, with activation checkpointing (AC): its totals add up`,
      `            and count no workspace; lomoc's totals are the planned peak, workspace included.`,
    );
  } else if (paper) {
    const inPaper = r.rows.filter((x) => x.optimizer in paperTable1.rows);
    const ac = inPaper.map((x) => paperTotal(paperTable1.rows[x.optimizer], true).toFixed(2)).join(' / ');
    lines.push(
      `paper       ${paperTable1.source}, without activation checkpointing`,
      `            (AC). Its no-AC totals here are the sums of its columns (it prints each 1.00 higher); with AC`,
      `            its activations are ${paperTable1.rows.lomo.activations.checkpointed.toFixed(2)} and its totals ${ac} (${inPaper.map((x) => x.optimizer).join(' / ')}).`,
    );
  }
  return lines.join('\n');
}
