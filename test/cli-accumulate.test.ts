// --accumulate K on the command line: its errors name the option; plan prints it; train on the
// reference executor with K micro-batches of b draws the same rows as --batch K*b and gives the same
// losses within f32 summation order; run counts K x batch x seq tokens per step.
import { describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './support/cli.ts';

// Property runs and whole CLI runs: seconds each on a loaded 2-core machine.
vi.setConfig({ testTimeout: 60_000 });

const gpt = ['models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--tokenizer', 'bytes', '--device', 'cpu', '--seed', '3'];

describe('--accumulate', () => {
  it('0, a fraction and too many: one whole message each, naming the option', async () => {
    const cases: [string, string][] = [
      ['0', "error: lomoc plan: option '--accumulate' must be positive, got '0'"],
      ['2.5', "error: lomoc plan: option '--accumulate' expects an integer from 1 to 4096, got '2.5'"],
      ['4097', "error: lomoc plan: option '--accumulate' expects an integer from 1 to 4096, got '4097'"],
    ];
    for (const [k, message] of cases) expect(await run('plan', 'models/mlp.ts', '--accumulate', k)).toEqual({ code: 1, stdout: '', stderr: message });
  });

  it('plan: --json has accumulate; the settings line names it; the step holds K micro-batches', async () => {
    const one = JSON.parse((await run('plan', 'models/mlp.ts', '--optimizer', 'lomo', '--json')).stdout);
    const four = JSON.parse((await run('plan', 'models/mlp.ts', '--optimizer', 'lomo', '--accumulate', '4', '--json')).stdout);
    expect([one.accumulate, four.accumulate]).toEqual([1, 4]);
    expect(four.config.batch).toBe(one.config.batch);
    const text = (await run('plan', 'models/mlp.ts', '--optimizer', 'lomo', '--accumulate', '4')).stdout;
    expect(text).toContain('; dtype f32; checkpoint none; accumulate 4\n');
  });

  it('train --batch 1 --accumulate 2 trains on the rows of --batch 2: the same losses within f32 summation order', async () => {
    const acc = await run('train', ...gpt, '--batch', '1', '--accumulate', '2', '--steps', '3', '--json');
    const big = await run('train', ...gpt, '--batch', '2', '--steps', '3', '--json');
    expect([acc.stderr, big.stderr]).toEqual(['', '']);
    const [a, b] = [JSON.parse(acc.stdout), JSON.parse(big.stdout)];
    expect(a.losses).toHaveLength(3);
    a.losses.forEach((l: { loss: number }, i: number) => expect(Math.abs(l.loss - b.losses[i].loss)).toBeLessThan(1e-5));
    a.val.forEach((v: { loss: number }, i: number) => expect(Math.abs(v.loss - b.val[i].loss)).toBeLessThan(1e-5));
  });

  it('train prints the micro-batches and the tokens per update', async () => {
    const r = await run('train', ...gpt, '--batch', '1', '--accumulate', '2', '--steps', '1');
    expect(r.stdout).toContain(', checkpoint none, accumulate 2 (micro-batches of 1: 2 x 8 = 16 tokens per update)\n');
  });

  it('run counts K x batch x seq tokens per step', async () => {
    const r = await run('run', 'models/gpt.ts', '--preset', 'tiny', '--steps', '1', '--device', 'cpu', '--accumulate', '3', '--json');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.tokensPerSecond).toBeCloseTo((3 * 2 * 8 * 1000) / out.msPerStep, 0);
  });

  it('compile records it in the manifest, with the inference program; the bundle fixes it for train', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'lomoc-accumulate-')), 'bundle');
    const r = await run('compile', 'models/gpt.ts', '--preset', 'tiny', '--accumulate', '3', '--target', 'cpu', '--out', out);
    expect(r.stderr).toBe('');
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(m.step.accumulate).toBe(3);
    expect(m.inference.program.inputs.find((i: { name: string }) => i.name === 'prefill.tokens').shape).toEqual([1, 8]); // generation: one sequence
    expect(m.config.batch).toBe(2);
    const data = m.program.inputs.filter((i: { name: string }) => i.name === 'tokens' || i.name === 'targets');
    expect(data.map((i: { shape: number[] }) => i.shape)).toEqual([[6, 8], [6, 8]]);
    expect(await run('train', out, '--accumulate', '2', '--steps', '1')).toEqual({
      code: 1, stdout: '',
      stderr: `error: lomoc train: option '--accumulate' cannot be given with a bundle: the bundle ${out} fixes it (compiled with accumulate 3); compile another bundle to change it`,
    });
  });
});
