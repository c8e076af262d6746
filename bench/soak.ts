// Soak: a long `lomoc train` run (gpt small on Moby Dick, validation every 50 steps, a checkpoint
// every 100), with the device bytes the trainer holds (from the run's log) and the process's
// resident host memory sampled at every step, printed per 100 steps. Flat columns mean nothing
// leaks; the last line names the growth per 100 steps after the first window, if any.
//   node bin/run-ts.js bench/soak.ts [--steps 1000]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { main } from '../cli/main.ts';

export interface SoakSample {
  readonly step: number;
  readonly deviceBytes: number;
  readonly rss: number;
  readonly heapUsed: number;
}

export async function benchSoak(steps = 1000): Promise<{ samples: SoakSample[]; seconds: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-soak-'));
  const rss: { rss: number; heapUsed: number }[] = [];
  const t0 = performance.now();
  try {
    const argv = ['train', 'models/gpt.ts', '--preset', 'small', '--data', 'moby-dick', '--optimizer', 'lomo', '--clip-norm', '1',
      '--lr', '0.3', '--warmup', String(Math.min(25, steps)), '--lr-schedule', 'cosine', '--steps', String(steps), '--eval-every', '50',
      '--save', dir, '--save-every', '100'];
    const err: string[] = [];
    // Not a terminal: train prints one line per step, where the host memory is sampled.
    const code = await main(argv, {
      out: (t) => {
        if (/^step\s+\d+\//.test(t)) {
          const m = process.memoryUsage();
          rss.push({ rss: m.rss, heapUsed: m.heapUsed });
        }
      },
      err: (t) => err.push(t),
    });
    if (code !== 0) throw new Error(`lomoc train failed: ${err.join('\n')}`);
    const log = readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    const stepLines = log.filter((e) => typeof e.loss === 'number' && typeof e.deviceBytes === 'number');
    const samples = stepLines.map((e, i) => ({ step: e.step, deviceBytes: e.deviceBytes, rss: rss[i]?.rss ?? NaN, heapUsed: rss[i]?.heapUsed ?? NaN }));
    return { samples, seconds: (performance.now() - t0) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(2);

export function formatSoakTable(samples: readonly SoakSample[], window = 100): string {
  const lines = ['| steps | device bytes (min - max) | host RSS MiB (first - last) | JS heap MiB (first - last) |', '|---|---:|---:|---:|'];
  for (let s = 0; s < samples.length; s += window) {
    const w = samples.slice(s, s + window);
    const dev = w.map((x) => x.deviceBytes);
    lines.push(`| ${w[0].step}-${w[w.length - 1].step} | ${Math.min(...dev).toLocaleString('en-US')} - ${Math.max(...dev).toLocaleString('en-US')} | ${mib(w[0].rss)} - ${mib(w[w.length - 1].rss)} | ${mib(w[0].heapUsed)} - ${mib(w[w.length - 1].heapUsed)} |`);
  }
  // Growth after the first window (shader caches, the JIT and the first checkpoint settle there):
  // a least-squares slope of RSS over the steps, per `window` steps.
  const tail = samples.slice(window);
  if (tail.length > 1) {
    const n = tail.length;
    const mx = tail.reduce((a, x) => a + x.step, 0) / n;
    const my = tail.reduce((a, x) => a + x.rss, 0) / n;
    const slope = tail.reduce((a, x) => a + (x.step - mx) * (x.rss - my), 0) / tail.reduce((a, x) => a + (x.step - mx) ** 2, 0);
    const devFlat = new Set(samples.map((x) => x.deviceBytes)).size === 1;
    lines.push('', `device bytes ${devFlat ? `flat at ${samples[0].deviceBytes.toLocaleString('en-US')} B` : 'changed during the run'}; host RSS after step ${samples[window - 1]?.step ?? window}: ${(slope * window / 2 ** 20).toFixed(3)} MiB per ${window} steps (least squares)`);
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(path.resolve(process.argv[1] ?? "")).href) {
  const i = process.argv.indexOf('--steps');
  const steps = i > 0 ? Number(process.argv[i + 1]) : 1000;
  const { samples, seconds } = await benchSoak(steps);
  console.log(`## soak: lomoc train models/gpt.ts --preset small, ${steps} steps, validation every 50, checkpoint every 100 (${seconds.toFixed(0)} s)\n`);
  console.log(formatSoakTable(samples));
}
