// The memory timeline page: one self-contained file, small enough for LLaMA-7B, that a real browser
// (Debian's chromium, headless) renders into charts. Without chromium these tests fail: .ci/run
// installs it.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { planSteps, planTimeline } from '../cli/plan.ts';
import type { Io } from '../cli/report.ts';
import { sectionData } from '../compiler/report/timeline-data.ts';
import { categoryStyle } from '../compiler/report/timeline-html.ts';
import { optimizerNames } from '../compiler/optimizers/table.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-timeline-'));
const pages = {
  gpt: { file: path.join(dir, 'gpt-tiny.html'), argv: ['models/gpt.ts', '--preset', 'tiny'], sections: optimizerNames().length }, // a plan per optimizer
  llama: {
    file: path.join(dir, 'llama-7b-sgd.html'),
    argv: ['models/llama.ts', '--preset', 'llama-7b', '--dtype', 'f16', '--batch', '8', '--seq', '512', '--optimizer', 'sgd'],
    sections: 1,
  },
};
const quiet: Io = { out: () => {}, err: () => {} };

function chromium(): string {
  const found = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  if (found.status !== 0)
    throw new Error("chromium is not installed: run .ci/run (it installs Debian's chromium), or apt-get install -y chromium");
  return found.stdout.trim();
}

/** Runs headless chromium on a page; returns its stdout (the DOM with --dump-dom). */
async function browse(page: string, mode: string[], profile: string): Promise<string> {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, profile)}`, '--window-size=1400,1000',
    ...mode, pathToFileURL(page).href];
  const { stdout } = await promisify(execFile)(chromium(), args, { timeout: 60_000, maxBuffer: 256 * 2 ** 20 });
  return stdout;
}

const hex = (c: string) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));

describe('memory timeline page', () => {
  beforeAll(async () => {
    for (const p of Object.values(pages)) expect(await main(['plan', ...p.argv, '--timeline', p.file], quiet)).toBe(0);
  }, 30_000);

  it('is one self-contained file: nothing fetched, LLaMA-7B with all three optimizers under 3 MB', async () => {
    const result = await planSteps({ file: 'models/llama.ts', preset: 'llama-7b', sets: [], optimizers: ['adamw', 'sgd', 'lomo'],
      step: { dtype: 'f16', batch: 8, seq: 512 }, json: false });
    const html = planTimeline(result);
    expect(Buffer.byteLength(html)).toBeLessThan(3e6);
    expect(result.rows.reduce((a, r) => a + r.compiled.plan.buffers.length, 0)).toBeGreaterThan(6000);
    for (const page of [html, readFileSync(pages.gpt.file, 'utf8')]) {
      expect(page).not.toMatch(/<link|@import|url\(|\bsrc\s*=|fetch\(|XMLHttpRequest|WebSocket/i);
      expect([...page.matchAll(/\bhref="([^"]*)"/g)].map((m) => m[1]).every((h) => h.startsWith('#'))).toBe(true);
    }
  }, 30_000);

  it('samples the live bytes without losing the peak, and keeps every buffer', async () => {
    const [row] = (await planSteps({ file: 'models/llama.ts', preset: 'llama-7b', sets: [], optimizers: ['lomo'],
      step: { dtype: 'f16', batch: 8, seq: 512 }, json: false })).rows;
    const d = sectionData({ optimizer: 'lomo', step: row.compiled.step, plan: row.compiled.plan, report: row.report });
    expect(d.live.length).toBeLessThanOrEqual(1600);
    const peak = d.live.find((c) => c[0] === row.report.peakAt)!;
    expect(peak.slice(1).reduce((a, b) => a + b, 0)).toBe(d.peakLive);
    expect(d.buffers.start).toHaveLength(row.compiled.plan.buffers.length);
    expect(d.peakNode).toMatch(/^\w+ \((forward|backward|update|norm|recompute)\) at models\/llama\.ts:\d+:\d+$/);
  }, 30_000);

  it('renders in headless chromium: a screenshot of real charts in the category colours', async () => {
    const shots = await Promise.all(Object.entries(pages).map(async ([name, p]) => {
      const png = path.join(dir, `${name}.png`);
      await browse(p.file, [`--screenshot=${png}`], `profile-shot-${name}`);
      return png;
    }));
    for (const png of shots) {
      expect(statSync(png).size).toBeGreaterThan(20_000);
      const { data, width, height } = PNG.sync.read(readFileSync(png));
      expect([width, height]).toEqual([1400, 1000]);
      const count = new Map<number, number>();
      for (let i = 0; i < data.length; i += 4) {
        const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
        count.set(key, (count.get(key) ?? 0) + 1);
      }
      expect(count.size).toBeGreaterThan(100);
      // The stacked area chart fills params and activations in their own colours.
      for (const c of [categoryStyle.params.color, categoryStyle.activations.color]) {
        const [r, g, b] = hex(c);
        expect(count.get((r << 16) | (g << 8) | b) ?? 0, `pixels of ${c} in ${png}`).toBeGreaterThan(2000);
      }
    }
  }, 60_000);

  it('after its script ran, the DOM has both charts per plan and a bar for every buffer', async () => {
    const doms = await Promise.all(Object.entries(pages).map(([name, p]) => browse(p.file, ['--dump-dom'], `profile-dom-${name}`)));
    for (const [k, [name, p]] of Object.entries(pages).entries()) {
      const dom = doms[k];
      const html = readFileSync(p.file, 'utf8');
      const data = JSON.parse(/<script type="application\/json" id="lomoc-timeline-data">(.*?)<\/script>/s.exec(html)![1]);
      const buffers = data.sections.reduce((a: number, s: { buffers: { start: number[] } }) => a + s.buffers.start.length, 0);
      expect(dom, name).toContain(`data-rendered="${p.sections}"`);
      expect(dom.match(/<svg [^>]*class="area-chart"/g), name).toHaveLength(p.sections);
      expect(dom.match(/<svg [^>]*class="buffer-chart"/g), name).toHaveLength(p.sections);
      expect(dom.match(/<path [^>]*class="layer layer-activations"/g), name).toHaveLength(p.sections);
      expect(dom.match(/<g class="buf"/g), name).toHaveLength(buffers);
      expect(dom.match(/class="peakline"/g), name).toHaveLength(2 * p.sections);
      expect(dom, name).toMatch(/<text [^>]*class="peaklabel"[^>]*>peak [\d.]+ (KiB|MiB|GiB) at \d+: \w+ \(backward\) at models\//);
    }
  }, 60_000);
});
