// `lomoc plan --inference`: the inference plan by category. The kv cache is exactly
// layers x 2 x context x width x bytes; params are the training step's params; the total is the
// plan's peak, which holds both steps' activations in one arena.
import { describe, expect, it } from 'vitest';
import { run } from '../support/cli.ts';

describe('lomoc plan --inference', { timeout: 60_000 }, () => {
  it('gpt small: params, kv cache, activations and workspace; the kv cache has its exact size', async () => {
    const r = await run('plan', 'models/gpt.ts', '--preset', 'small', '--inference', '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    const j = JSON.parse(r.stdout) as Record<string, number> & { training: { total: number } };
    // 4 layers, a key and a value cache each of [1, 4 heads, 128, 32] f32.
    expect(j.kvCache).toBe(4 * 2 * 128 * 128 * 4);
    // wte 256x128, wpe 128x128, per layer 12 d^2 + 13 d, final norm 2d.
    const d = 128;
    expect(j.params).toBe(4 * (256 * d + 128 * d + 4 * (12 * d * d + 13 * d) + 2 * d));
    expect(j.total).toBeGreaterThanOrEqual(j.params + j.kvCache + j.activations);
    expect(j.total).toBeLessThan(j.training.total);
    expect([j.context, j.chunk, j.caches]).toEqual([128, 64, 8]);
  });

  it('prints the categories as a table; training options are refused', async () => {
    const r = await run('plan', 'models/gpt.ts', '--preset', 'tiny', '--inference');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').map((l) => l.slice(0, 12).trim())).toEqual(['inference', 'params', 'kv cache', 'activations', 'workspace', 'total', 'training']);
    const bad = await run('plan', 'models/gpt.ts', '--inference', '--optimizer', 'lomo');
    expect([bad.code, bad.stderr]).toEqual([1, "error: lomoc plan: option '--optimizer' is for the training step; --inference plans generation (batch 1)"]);
  });
});
