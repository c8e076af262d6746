// The memory timeline: one self-contained HTML page (inline CSS, data and script; nothing fetched)
// that shows, for each plan, the live bytes by category over the schedule with the peak marked,
// every buffer's lifetime and address, and what is live at the peak grouped by what made it.
// A pure function: plans in, a string out. The charts are drawn by timeline-script.ts in the page.
import { categories, type Category } from '../ir/memory-plan.ts';
import { peakGroups, phases, sectionData, type TimelineSection } from './timeline-data.ts';
import { timelineScript } from './timeline-script.ts';
import { fmtBytes } from '../../contract/units.ts';

export type { TimelineSection } from './timeline-data.ts';

export interface TimelinePage {
  /** "llama, preset llama-7b" */
  readonly title: string;
  /** Lines under the title: the config, the command. */
  readonly details: readonly string[];
  readonly sections: readonly TimelineSection[];
}

export const categoryStyle: Readonly<Record<Category, { readonly label: string; readonly color: string }>> = {
  params: { label: 'params', color: '#4e79a7' },
  grads: { label: 'grads', color: '#e15759' },
  optimizerState: { label: 'optimizer states', color: '#b07aa1' },
  activations: { label: 'activations (saved for backward)', color: '#59a14f' },
  workspace: { label: 'workspace (transient)', color: '#f28e2b' },
};
const phaseColors = ['#a0cbe8', '#ffbe7d', '#ff9d9a', '#8cd17d', '#d4a6c8'];

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);


const swatch = (color: string) => `<span class="sw" style="background:${color}"></span>`;

/** One unit for a whole table, the one its largest number needs. */
function unitOf(max: number): (n: number) => string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (max >= 1024 ** (i + 1) && i < units.length - 1) i++;
  return (n) => (i === 0 ? `${n} B` : `${(n / 1024 ** i).toFixed(2)} ${units[i]}`);
}

function totalsTable(sections: readonly TimelineSection[]): string {
  const head = ['optimizer', ...categories.map((c) => categoryStyle[c].label.replace(/ \(.*/, '')), 'total (peak)', 'lower bound', 'peak at'];
  const fmt = unitOf(Math.max(...sections.map((s) => s.plan.peak)));
  const rows = sections.map(({ optimizer, plan, report }) => [
    `<a href="#plan-${esc(optimizer)}">${esc(optimizer)}</a>`,
    ...categories.map((c) => fmt(report.most[c])),
    `<b>${fmt(plan.peak)}</b>`,
    fmt(plan.lowerBound),
    `${report.peakAt} of ${plan.steps}`,
  ]);
  return `<table class="totals"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** What is live at the peak: each category's bytes, then the largest groups within it. */
function groupsTable(s: TimelineSection, perCategory = 4): string {
  const groups = peakGroups(s);
  const fmt = unitOf(s.plan.peak);
  const row = (cls: string, cat: string, what: string, count: number, bytes: number) =>
    `<tr class="${cls}"><td>${cat}</td><td class="what">${what}</td><td>${count}</td><td>${fmt(bytes)}</td></tr>`;
  const body: string[] = [];
  const byCategory = categories
    .map((c) => ({ c, gs: groups.filter((g) => g.category === c) }))
    .filter(({ gs }) => gs.length > 0)
    .map(({ c, gs }) => ({ c, gs, bytes: gs.reduce((a, g) => a + g.bytes, 0), count: gs.reduce((a, g) => a + g.count, 0) }))
    .sort((a, b) => b.bytes - a.bytes);
  for (const { c, gs, bytes, count } of byCategory) {
    const st = categoryStyle[c];
    body.push(row('cat', `${swatch(st.color)}${esc(st.label)}`, '', count, bytes));
    for (const g of gs.slice(0, perCategory)) body.push(row('', '', esc(g.what), g.count, g.bytes));
    const rest = gs.slice(perCategory);
    if (rest.length)
      body.push(row('', '', `${rest.length} more kinds`, rest.reduce((a, g) => a + g.count, 0), rest.reduce((a, g) => a + g.bytes, 0)));
  }
  return `<table class="groups"><thead><tr><th>category</th><th>made by (op, shape, dtype, where)</th><th>buffers</th><th>bytes</th></tr></thead><tbody>${body.join('')}</tbody></table>`;
}

/** "activations 18.81 GiB, params 12.55 GiB, ...": what the peak is made of, largest first. */
function peakParts(s: TimelineSection): string {
  const at = s.report.atPeak;
  return [...categories].filter((c) => at[c] > 0).sort((a, b) => at[b] - at[a])
    .map((c) => `${esc(categoryStyle[c].label.replace(/ \(.*/, ''))} ${fmtBytes(at[c])}`).join(', ');
}

/** The phases this step has, as the strip under the chart colours them. */
function phaseLegend(s: TimelineSection): string {
  const present = new Set(s.step.nodes.map((n) => n.phase));
  const items = phases.filter((p) => present.has(p)).map((p) => `<span>${swatch(phaseColors[phases.indexOf(p)])}${p}</span>`);
  return `phase of each position: ${items.join(' ')}`;
}

function section(s: TimelineSection, index: number): string {
  const d = sectionData(s);
  return `<section id="plan-${esc(s.optimizer)}" data-index="${index}">
<h2>${esc(s.optimizer)} <small>peak ${fmtBytes(d.peak)} allocated, lower bound ${fmtBytes(d.lowerBound)}, ${d.steps} schedule positions, ${s.plan.buffers.length} buffers in ${d.arenas.length} arena${d.arenas.length === 1 ? "" : "s"}</small></h2>
<p class="peak">Peak: <b>${fmtBytes(d.peakLive)}</b> live at position ${d.peakAt}, <code>${esc(d.peakNode)}</code>: ${peakParts(s)}</p>
<h3>Live bytes by category over the step <label><input type="checkbox" class="hide"> hide params and optimizer states (live all step)</label></h3>
<div class="chart area"></div>
<div class="phases">${phaseLegend(s)}</div>
<div class="readout">Move the pointer over the chart to read one position.</div>
<h3>Every buffer: its lifetime (x) and its address (y, arenas stacked); buffers live at the peak are solid</h3>
<div class="chart buffers"></div>
<h3>Live at the peak, by what made it</h3>
${groupsTable(s)}
</section>`;
}

const css = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1340px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 4px}h2 small{font-weight:normal;color:#5b6475;font-size:13px;margin-left:8px}
h3{font-size:13px;font-weight:600;color:#3b4354;margin:14px 0 4px}
.details{color:#5b6475;margin:0 0 10px}.details div{margin:1px 0}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:14px 18px;margin:16px 0}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:8px 0}.legend span.item{white-space:nowrap}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;background:#fff}
th,td{padding:3px 10px;border-bottom:1px solid #e6e9ee;text-align:right;white-space:nowrap}
th{font-weight:600;color:#3b4354;background:#f0f2f5}td:first-child,th:first-child,td.what,th:nth-child(2){text-align:left}
table.groups tr.cat td{font-weight:600;background:#fafbfc}table.groups td.what{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.note{color:#5b6475;font-size:13px;max-width:1000px}
.peak{margin:2px 0 0}code{font-size:12.5px;background:#f0f2f5;padding:1px 4px;border-radius:3px}
.chart svg{display:block;width:100%;height:auto}.chart text{font:11px system-ui,sans-serif;fill:#3b4354}
.chart .grid{stroke:#e6e9ee}.chart .axis{stroke:#9aa3b2}.chart .peakline{stroke:#1d2330;stroke-dasharray:4 3}
.chart text.peaklabel{font-weight:600;font-size:12px}.chart .cursor{stroke:#1d2330;stroke-opacity:.5}
.phases{font-size:12px;color:#5b6475;margin:2px 0 0 78px}.phases span{margin-right:12px}
h3 label{font-weight:normal;color:#5b6475;margin-left:14px}
.readout{min-height:20px;color:#3b4354;font-size:12.5px;font-variant-numeric:tabular-nums}
`;

export function timelineHtml(page: TimelinePage): string {
  const data = { categories: categories.map((c) => ({ key: c, ...categoryStyle[c] })), phases, phaseColors,
    sections: page.sections.map(sectionData) };
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const legend = [
    ...categories.map((c) => `<span class="item">${swatch(categoryStyle[c].color)}${esc(categoryStyle[c].label)}</span>`),
  ].join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>lomoc memory timeline: ${esc(page.title)}</title><style>${css}</style></head>
<body><main>
<h1>Memory timeline: ${esc(page.title)}</h1>
<div class="details">${page.details.map((l) => `<div>${esc(l)}</div>`).join('')}</div>
<div class="legend">${legend}</div>
${totalsTable(page.sections)}
<p class="note">Each category column is the most bytes of that category live at one moment of the step; the moments differ, so the columns need not add up to the total, which is what the plan allocates (its arenas). The lower bound is the most bytes live at once: no plan of this schedule can be smaller.</p>
${page.sections.map(section).join('\n')}
</main>
<script type="application/json" id="lomoc-timeline-data">${json}</script>
<script>${timelineScript}</script>
</body></html>
`;
}
