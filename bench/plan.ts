// `lomoc plan` on LLaMA-7B (f16, batch 8, seq 512, all three optimizers), run in-process through
// the CLI's --json, beside the paper's Table 1 (without activation checkpointing): GiB per column,
// the difference from the paper, and the time to compile and plan each step.
import { main } from '../cli/main.ts';
import type { Io } from '../cli/report.ts';
import { paperTable1, paperTotal } from '../compiler/report/paper.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';

export const planArgv = ['plan', 'models/llama.ts', '--preset', 'llama-7b', '--dtype', 'f16', '--batch', '8', '--seq', '512',
  '--optimizer', 'all', '--json'];

interface JsonRow {
  readonly optimizer: OptimizerName;
  readonly params: number;
  readonly grads: number;
  readonly optimizerState: number;
  readonly activations: number;
  readonly workspace: number;
  readonly total: number;
  readonly lowerBound: number;
  readonly planMs: number;
}

export async function benchPlan(): Promise<readonly JsonRow[]> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t) };
  if ((await main(planArgv, io)) !== 0) throw new Error(`lomoc ${planArgv.join(' ')} failed:\n${err.join('\n')}`);
  return (JSON.parse(out.join('')) as { rows: JsonRow[] }).rows;
}

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);
const diff = (ours: number, paper: number) => {
  if (paper === 0) return ours === 0 ? '0.0%' : 'n/a';
  const d = Math.round(((ours / 2 ** 30 - paper) / paper) * 1000) / 10;
  return d === 0 ? '0.0%' : `${d > 0 ? '+' : ''}${d.toFixed(1)}%`;
};

export function formatPlanBench(rows: readonly JsonRow[]): string {
  const lines = [
    '| optimizer | | params | grads | optimizer states | activations | workspace | total | plan ms |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const p = paperTable1.rows[r.optimizer];
    const total = paperTotal(p, false);
    lines.push(
      `| ${r.optimizer} | lomoc | ${gib(r.params)} | ${gib(r.grads)} | ${gib(r.optimizerState)} | ${gib(r.activations)} | ${gib(r.workspace)} | ${gib(r.total)} | ${r.planMs.toFixed(0)} |`,
      `| | paper, no AC | ${p.params.toFixed(2)} | ${p.grads.toFixed(2)} | ${p.optimizerState.toFixed(2)} | ${p.activations.none.toFixed(2)} | | ${total.toFixed(2)} | |`,
      `| | difference | ${diff(r.params, p.params)} | ${diff(r.grads, p.grads)} | ${diff(r.optimizerState, p.optimizerState)} | ${diff(r.activations, p.activations.none)} | | ${diff(r.total, total)} | |`,
    );
  }
  return lines.join('\n');
}
