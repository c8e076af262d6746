// The prepared GPU check (scripts/gpu-check.ts) runs where no test can (a lent GPU), so here it
// runs the way gpu-check.sh runs it, end to end, with every shape shrunk (GPU_CHECK_SMALL=1):
// bundled by esbuild with webgpu external, started with node, its report read back. A section
// that throws, a step whose bytes differ from its plan, or an f32 parity mismatch fails it.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

interface Run { readonly bytesMatchPlan: boolean; readonly finite: boolean; readonly planPeak: number; readonly arenaBytes: number; readonly losses: number[] }

describe('scripts/gpu-check.ts', () => {
  it('runs end to end on this adapter with the small switch, every section reported', async () => {
    const kit = mkdtempSync(path.join(tmpdir(), 'gpu-kit-'));
    symlinkSync(path.join(root, 'node_modules'), path.join(kit, 'node_modules'));
    execFileSync(path.join(root, 'node_modules/.bin/esbuild'),
      ['scripts/gpu-check.ts', '--bundle', '--platform=node', '--format=esm', '--external:webgpu', `--outfile=${kit}/check.mjs`, '--log-level=error'], { cwd: root });
    // Asynchronously: a synchronous child would block this worker's messages to vitest for minutes.
    const status = await promisify(execFile)(process.execPath, [path.join(kit, 'check.mjs'), kit], { cwd: kit, env: { ...process.env, GPU_CHECK_SMALL: '1' }, timeout: 280_000, maxBuffer: 64 * 2 ** 20 })
      .then(() => 0, (e: { code?: number }) => e.code ?? -1);
    const report = JSON.parse(readFileSync(path.join(kit, 'gpu-check.json'), 'utf8'));
    const sections = ['matmul', 'checks', 'f16', 'step', 'dispatches', 'gpt2', 'largest', 'llama7b'];
    expect({ status, errors: sections.filter((s) => !report[s] || report[s].error).map((s) => `${s}: ${report[s]?.error ?? 'missing'}`) })
      .toEqual({ status: 0, errors: [] });
    expect(report.small).toBe(true);
    // f32 parity against the reference executor: 12 steps, none off (f16 has its own tolerances and a known drift).
    expect(report.checks).toHaveLength(12);
    expect(report.checks.flatMap((c: { mismatches: string[] }) => c.mismatches)).toEqual([]);
    expect(report.f16).toHaveLength(4);
    expect(report.step.rows.map((row: { dispatches: number }) => row.dispatches > 0)).toEqual([true, true, true, true]);
    expect(report.dispatches.every((d: { dispatches: number; kinds: Record<string, number> }) =>
      d.dispatches === Object.values(d.kinds).reduce((a, b) => a + b, 0))).toBe(true);
    // The runs: bytes allocated equal the plan's peak, losses finite; the 7B-shaped one ran (the small switch's memory fits it).
    const runs: Run[] = [...report.gpt2, report.largest.run, report.llama7b.run];
    for (const run of runs) expect({ match: run.bytesMatchPlan, finite: run.finite, bytes: run.arenaBytes }).toEqual({ match: true, finite: true, bytes: run.planPeak });
    expect(report.llama7b.checkpoint).toBe('2 blocks, inputs kept every 6, FFNs in 16 token chunks');
    // The ladder tries from the largest down and runs the first that fits.
    expect(report.largest.tried.map((t: { label: string }) => t.label)).toEqual(['gpt width 2048 (small switch), f16, lomo', 'gpt width 48 (small switch), f16, lomo']);
    expect(report.largest.tried[0].planPeak).toBeGreaterThan(0.85 * report.memoryBytes);
  }, 300_000);
});
