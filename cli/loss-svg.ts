// The loss curve of `lomoc train` as a self-contained SVG: training loss per step (a line),
// validation loss (dots), and an optional dashed baseline (the unigram entropy).
export interface Point {
  readonly step: number;
  readonly loss: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lossCurveSvg(train: readonly Point[], val: readonly Point[], opts: { title?: string; baseline?: number } = {}): string {
  const W = 720, H = 420, L = 60, R = 20, T = 40, B = 50;
  const all = [...train, ...val].filter((p) => Number.isFinite(p.loss));
  const ys = [...all.map((p) => p.loss), ...(opts.baseline !== undefined ? [opts.baseline] : [])];
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  let lo = ys.length ? Math.min(...ys) : 0;
  let hi = ys.length ? Math.max(...ys) : 1;
  if (hi - lo < 1e-9) (lo -= 0.5), (hi += 0.5);
  const x = (s: number) => L + ((s - 0) / maxStep) * (W - L - R);
  const y = (v: number) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
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
    out.push(`<text x="${f(x(s))}" y="${H - B + 18}" text-anchor="middle">${s}</text>`);
  }
  out.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">step</text>`);
  out.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`);
  if (opts.baseline !== undefined)
    out.push(`<line x1="${L}" x2="${W - R}" y1="${f(y(opts.baseline))}" y2="${f(y(opts.baseline))}" stroke="#888" stroke-dasharray="6 4"/><text x="${W - R - 4}" y="${f(y(opts.baseline) - 5)}" text-anchor="end" fill="#666">unigram entropy ${opts.baseline.toFixed(3)}</text>`);
  const line = train.filter((p) => Number.isFinite(p.loss)).map((p) => `${f(x(p.step))},${f(y(p.loss))}`).join(' ');
  if (line) out.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line}"/>`);
  for (const p of val.filter((q) => Number.isFinite(q.loss))) out.push(`<circle cx="${f(x(p.step))}" cy="${f(y(p.loss))}" r="3.5" fill="#d62728"/>`);
  out.push(`<g transform="translate(${W - R - 150} ${T + 8})"><line x1="0" x2="18" y1="0" y2="0" stroke="#1f77b4" stroke-width="2"/><text x="24" y="4">training loss</text>`);
  out.push(`<circle cx="9" cy="18" r="3.5" fill="#d62728"/><text x="24" y="22">validation loss</text></g>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
