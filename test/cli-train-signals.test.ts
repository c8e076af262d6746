// SIGINT and SIGTERM during `lomoc train`: the running step finishes, a checkpoint of every step
// done is saved (--save), the log gets its end line, the plot is drawn, and the command exits 130 or
// 143; the checkpoint then resumes. The reference executor (--device cpu) keeps the test off the GPU.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { loadCheckpoint } from '../runtime/checkpoint/node.ts';

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-signals-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const args = ['models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--device', 'cpu', '--lr', '0.05', '--seed', '2'];

const logLines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter((l) => l).map((l) => JSON.parse(l) as Record<string, unknown>) : []);

/** Runs lomoc train in a child, sends `signal` once 3 steps are logged, and resolves to its exit code and output. */
function interrupt(dir: string, signal: NodeJS.Signals): Promise<{ code: number | null; out: string }> {
  const log = path.join(dir, 'log.jsonl');
  const p = spawn(process.execPath, ['bin/lomoc.js', 'train', ...args, '--steps', '1000000', '--save', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  const timer = setInterval(() => {
    if (logLines(log).filter((e) => typeof e.loss === 'number').length >= 3) {
      clearInterval(timer);
      p.kill(signal);
    }
  }, 50);
  return new Promise((resolve) => p.on('exit', (code) => {
    clearInterval(timer);
    resolve({ code, out });
  }));
}

describe('lomoc train stops cleanly on SIGINT and SIGTERM', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal}: the steps done are saved, the log ends, the plot is drawn; exit ${code}; the checkpoint resumes`, async () => {
      const dir = path.join(root, signal);
      const r = await interrupt(dir, signal);
      expect(r.code, r.out).toBe(code);
      const log = logLines(path.join(dir, 'log.jsonl'));
      const steps = log.filter((e) => typeof e.loss === 'number').map((e) => e.step as number);
      const last = steps[steps.length - 1];
      expect(log[log.length - 1]).toMatchObject({ event: 'end', step: last, interrupted: signal });
      expect(r.out).toContain(`  ${signal}: stopping after this step and saving a checkpoint (again to quit at once)`);
      expect(r.out).toMatch(new RegExp(`stopped by ${signal} after ${last} steps`));
      const ckpt = loadCheckpoint(path.join(dir, 'checkpoint.safetensors'));
      expect(Number(ckpt.metadata.step)).toBe(last);
      expect(readFileSync(path.join(dir, 'loss.svg'), 'utf8')).toMatch(/^<svg/);

      // The checkpoint continues: two more steps, numbered after it.
      const out: string[] = [];
      const err: string[] = [];
      const again = await main(['train', ...args, '--steps', '1000000', '--stop-at', String(last + 2), '--resume', dir, '--json'], { out: (t) => out.push(t), err: (t) => err.push(t) });
      expect(again, err.join('\n')).toBe(0);
      expect((JSON.parse(out.join('\n')) as { losses: { step: number }[] }).losses.map((p) => p.step)).toEqual([last + 1, last + 2]);
    }, 120_000);
  }
});
