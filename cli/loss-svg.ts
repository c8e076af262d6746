// Loss curves as a self-contained SVG, shared by `lomoc train` (one run) and `lomoc plot` (several
// runs on one chart): training loss per step (a line), validation loss (dots), and each run's
// unigram entropy (dashed, over the steps the run covers). A run may start later on the step axis
// (`offset`), which is how `lomoc plot --concat` draws a fine-tune after its pretraining.
export interface Point {
  readonly step: number;
  readonly loss: number;
}

export interface Run {
  /** The legend's text; a chart of one unlabeled run gets the plain "training/validation loss" legend. */
  readonly label?: string;
  readonly train: readonly Point[];
  readonly val: readonly Point[];
  readonly baseline?: number;
  /** Step s of this run is drawn at offset + s (default 0). */
  readonly offset?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const finite = (ps: readonly Point[]) => ps.filter((p) => Number.isFinite(p.loss));

export function lossChartSvg(runs: readonly Run[], opts: { title?: string } = {}): string {
  const single = runs.length === 1 && runs[0].label === undefined;
  const W = 720, L = 60, R = 20, T = 40, B = 50;
  // Several runs: one legend row each plus a key row, below the plot so it never hides a curve.
  const legendH = single ? 0 : 18 * (runs.length + 1) + 8;
  const H = 420 + legendH;
  const bottom = H - B - legendH;
  const at = runs.map((r) => r.offset ?? 0);
  const steps = runs.flatMap((r, i) => [...finite(r.train), ...finite(r.val)].map((p) => at[i] + p.step));
  const ys = runs.flatMap((r) => [...finite(r.train), ...finite(r.val)].map((p) => p.loss).concat(r.baseline !== undefined ? [r.baseline] : []));
  const maxStep = Math.max(1, ...steps);
  let lo = ys.length ? Math.min(...ys) : 0;
  let hi = ys.length ? Math.max(...ys) : 1;
  if (hi - lo < 1e-9) (lo -= 0.5), (hi += 0.5);
  const x = (s: number) => L + (s / maxStep) * (W - L - R);
  const y = (v: number) => T + (1 - (v - lo) / (hi - lo)) * (bottom - T);
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  if (opts.title) out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = lo + ((hi - lo) * i) / 5;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#eee"/>`);
    out.push(`<text x="${L - 6}" y="${f(y(v) + 4)}" text-anchor="end">${v.toFixed(2)}</text>`);
    const s = Math.round((maxStep * i) / 5);
    out.push(`<text x="${f(x(s))}" y="${bottom + 18}" text-anchor="middle">${s}</text>`);
  }
  out.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${bottom}" stroke="#333"/><line x1="${L}" x2="${W - R}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${bottom + 38}" text-anchor="middle">step</text>`);
  out.push(`<text transform="translate(16 ${(T + bottom) / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`);
  runs.forEach((r, i) => {
    const lineColor = single ? '#1f77b4' : palette[i % palette.length];
    const dotColor = single ? '#d62728' : lineColor;
    const pts = [...finite(r.train), ...finite(r.val)];
    // Where a run placed after another begins: a dotted vertical line.
    if (at[i] > 0) out.push(`<line x1="${f(x(at[i]))}" x2="${f(x(at[i]))}" y1="${T}" y2="${bottom}" stroke="${lineColor}" stroke-dasharray="2 3"/>`);
    if (r.baseline !== undefined) {
      const [x0, x1] = single ? [L, W - R] : [x(at[i] + Math.min(...pts.map((p) => p.step), 1) - 1), x(at[i] + Math.max(...pts.map((p) => p.step), 1))];
      const yb = f(y(r.baseline));
      out.push(`<line x1="${f(x0)}" x2="${f(x1)}" y1="${yb}" y2="${yb}" stroke="${single ? '#888' : lineColor}" stroke-dasharray="6 4"/><text x="${f(x1 - 4)}" y="${f(y(r.baseline) - 5)}" text-anchor="end" fill="${single ? '#666' : lineColor}">unigram entropy ${r.baseline.toFixed(3)}</text>`);
    }
    const line = finite(r.train).map((p) => `${f(x(at[i] + p.step))},${f(y(p.loss))}`).join(' ');
    if (line) out.push(`<polyline fill="none" stroke="${lineColor}" stroke-width="1.5" points="${line}"/>`);
    for (const p of finite(r.val)) out.push(`<circle cx="${f(x(at[i] + p.step))}" cy="${f(y(p.loss))}" r="3.5" fill="${dotColor}"${single ? '' : ' stroke="#222"'}/>`);
  });
  if (single) {
    out.push(`<g transform="translate(${W - R - 150} ${T + 8})"><line x1="0" x2="18" y1="0" y2="0" stroke="#1f77b4" stroke-width="2"/><text x="24" y="4">training loss</text>`);
    out.push(`<circle cx="9" cy="18" r="3.5" fill="#d62728"/><text x="24" y="22">validation loss</text></g>`);
  } else {
    const top = bottom + 58;
    out.push(`<g transform="translate(${L} ${top})">`);
    runs.forEach((r, i) => {
      const c = palette[i % palette.length];
      out.push(`<line x1="0" x2="22" y1="${18 * i}" y2="${18 * i}" stroke="${c}" stroke-width="2"/><circle cx="11" cy="${18 * i}" r="3.5" fill="${c}" stroke="#222"/><text x="30" y="${18 * i + 4}">${esc(r.label ?? `run ${i + 1}`)}</text>`);
    });
    out.push(`<text x="0" y="${18 * runs.length + 4}" fill="#555">line: training loss per step; dots: validation loss; dashed: the run's unigram entropy</text></g>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** One run's chart, as `lomoc train` draws it. */
export function lossCurveSvg(train: readonly Point[], val: readonly Point[], opts: { title?: string; baseline?: number } = {}): string {
  return lossChartSvg([{ train, val, baseline: opts.baseline }], { title: opts.title });
}
