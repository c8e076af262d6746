// The key/value-cache steps compute what the full forward computes: at every position, the
// logits of prefill (in chunks) and of each decode step equal the full forward's row at that
// position, on the reference executor, over random small configs of gpt and llama.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gpt, llama, fullLogits, reference, setup, smallConfig, stepLogits } from './support.ts';

/** Every position's logits from the steps against the full forward's; returns the largest difference. */
async function maxDifference(def: Awaited<ReturnType<typeof gpt>>, cfg: { sets: string[]; chunk: number; seq: number; vocab: number }, tokensAt: number[], prefillAt: number, seed: number): Promise<number> {
  const s = setup(def, cfg, seed, 'f64');
  const len = 1 + (tokensAt.length % cfg.seq);
  const tokens = tokensAt.slice(0, len).map((t) => t % cfg.vocab);
  while (tokens.length < len) tokens.push(0);
  const prefilled = 1 + Math.floor(prefillAt * len) % len;
  const full = fullLogits(s, tokens, 'f64');
  const steps = await stepLogits(reference(s, 'f64'), tokens, prefilled);
  let worst = 0;
  for (const [p, row] of steps) row.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - full[p][i]))));
  // Every position after the prefill, and the last of each prefill chunk, was compared.
  expect([...steps.keys()].filter((p) => p >= prefilled)).toEqual(Array.from({ length: len - prefilled }, (_, i) => prefilled + i));
  return worst;
}

describe('inference: key/value-cache steps equal the full forward', { timeout: 60_000 }, () => {
  for (const [name, load, ffn] of [['gpt', gpt, false], ['llama', llama, true]] as const)
    it(`${name}: prefill chunks and decode steps give the full forward's logits at every position (f64, bit for bit)`, async () => {
      const def = await load();
      await fc.assert(
        fc.asyncProperty(smallConfig(ffn), fc.array(fc.nat(), { minLength: 7, maxLength: 7 }), fc.double({ min: 0, max: 0.999, noNaN: true }), fc.nat(1000), async (cfg, tokens, prefillAt, seed) => {
          expect(await maxDifference(def, cfg, tokens, prefillAt, seed)).toBe(0);
        }),
        { numRuns: 25 },
      );
    });

  it('gpt tiny in f32: every position within 1e-6 of the full forward', async () => {
    const def = await gpt();
    const s = setup(def, {}, 3, 'f32');
    const tokens = [1, 5, 9, 2, 31, 7, 0, 4];
    const full = fullLogits(s, tokens, 'f32');
    const steps = await stepLogits(reference(s, 'f32'), tokens, 3);
    for (const [p, row] of steps) row.forEach((x, i) => expect(Math.abs(x - full[p][i])).toBeLessThan(1e-6));
    expect(steps.size).toBe(6);
  });
});
