// The memory panel: the plan's bytes by category (as manifest.json records them) beside the bytes
// actually allocated on the device, for this bundle and for any other bundle opened to compare.

import { fmtBytes } from '../../contract/units.ts';

export interface PlanSummary {
  readonly label: string;
  readonly optimizer: string;
  readonly peak: number;
  readonly byCategory: Readonly<Record<string, number>>;
  /** Bytes the trainer holds on the device (null until a trainer exists, or for a compared bundle). */
  readonly allocated: number | null;
}

const rows: readonly [string, string][] = [
  ['params', 'params'], ['grads', 'gradients'], ['optimizerState', 'optimizer state'], ['activations', 'activations'], ['workspace', 'workspace'],
];

export { fmtBytes };

/** The table's HTML: one column per bundle; each category is its most bytes live at one moment of the step. */
export function memoryTable(plans: readonly PlanSummary[]): string {
  const esc = (t: string) => t.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const head = `<tr><th>bytes</th>${plans.map((p) => `<th>${esc(p.label)}<br>${esc(p.optimizer)}</th>`).join('')}</tr>`;
  const body = rows.map(([k, name]) => `<tr><td>${name} (most live at once)</td>${plans.map((p) => `<td>${fmtBytes(p.byCategory[k] ?? 0)}</td>`).join('')}</tr>`);
  body.push(`<tr><td><b>plan's peak</b></td>${plans.map((p) => `<td><b>${fmtBytes(p.peak)}</b></td>`).join('')}</tr>`);
  body.push(`<tr><td>allocated on the device</td>${plans.map((p) => `<td>${p.allocated === null ? '-' : fmtBytes(p.allocated)}</td>`).join('')}</tr>`);
  return head + body.join('');
}
