// Generation against the full forward: greedy decoding picks, token by token, the argmax of the
// full forward's logits at the last position of the sequence so far; seeded sampling gives the
// same tokens for the same seed; the sampler keeps to its top-k and top-p sets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { argmax, distribution, sample } from '../../runtime/generate/sample.ts';
import { generate } from '../../runtime/generate/generate.ts';
import { mulberry32 } from '../../contract/random.ts';
import { fullLogits, gpt, llama, reference, setup, smallConfig } from './support.ts';

const collect = async (it: AsyncIterable<number>): Promise<number[]> => {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
};

describe('generation', { timeout: 60_000 }, () => {
  for (const [name, load, ffn] of [['gpt', gpt, false], ['llama', llama, true]] as const)
    it(`${name}: greedy generation equals the argmax of the full forward, token by token`, async () => {
      const def = await load();
      await fc.assert(
        fc.asyncProperty(smallConfig(ffn), fc.integer({ min: 1, max: 3 }), fc.nat(1000), async (cfg, promptLen, seed) => {
          const s = setup(def, cfg, seed, 'f64');
          const prompt = Array.from({ length: Math.min(promptLen, cfg.seq) }, (_, i) => (seed + 7 * i) % cfg.vocab);
          const tokens = await collect(generate(reference(s, 'f64'), prompt, { maxTokens: cfg.seq, temperature: 0, topK: 0, topP: 1, seed: 0 }));
          // The sequence fills the context.
          expect(tokens).toHaveLength(cfg.seq - prompt.length);
          const seqSoFar = [...prompt];
          for (const t of tokens) {
            expect(t).toBe(argmax(fullLogits(s, seqSoFar, 'f64')[seqSoFar.length - 1]));
            seqSoFar.push(t);
          }
        }),
        { numRuns: 15 },
      );
    });

  it('gpt: sampling with a seed is reproducible, and the seed matters', async () => {
    const s = setup(await gpt(), { sets: ['vocab=29'] }, 5, 'f32');
    const opts = (seed: number) => ({ maxTokens: 6, temperature: 1.5, topK: 0, topP: 1, seed });
    const runs = await Promise.all([1, 1, 2, 3, 4].map((seed) => collect(generate(reference(s, 'f32'), [1, 2], opts(seed)))));
    expect(runs[1]).toEqual(runs[0]);
    expect(new Set(runs.map((r) => r.join(','))).size).toBeGreaterThan(1);
  });

  it('a prompt longer than the context, an empty prompt and an id outside the vocabulary are refused', async () => {
    const s = setup(await gpt(), {}, 0, 'f32');
    const o = { maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 0 };
    await expect(collect(generate(reference(s, 'f32'), Array(9).fill(1), o))).rejects.toThrow("the prompt has 9 tokens, more than the model's context of 8");
    await expect(collect(generate(reference(s, 'f32'), [], o))).rejects.toThrow('the prompt is empty: give at least one token');
    await expect(collect(generate(reference(s, 'f32'), [32], o))).rejects.toThrow('token id 32 is outside the vocabulary [0, 32)');
  });
});

describe('sampler', () => {
  const logitsArb = fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 1, maxLength: 20 });
  const optsArb = fc.record({ temperature: fc.double({ min: 0.05, max: 3, noNaN: true }), topK: fc.nat(25), topP: fc.double({ min: 0.01, max: 1, noNaN: true }) });

  it('temperature 0 and top-k 1 pick the argmax', () => {
    fc.assert(
      fc.property(logitsArb, optsArb, fc.nat(), (logits, o, seed) => {
        expect(sample(logits, { ...o, temperature: 0 }, mulberry32(seed))).toBe(argmax(logits));
        expect(sample(logits, { ...o, topK: 1 }, mulberry32(seed))).toBe(argmax(logits));
      }),
    );
  });

  it('a draw lies in the top-k and top-p set: the fewest most likely tokens whose probability reaches p', () => {
    fc.assert(
      fc.property(logitsArb, optsArb, fc.nat(), (logits, o, seed) => {
        const { ids, probs } = distribution(logits, o);
        expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        if (o.topK > 0) expect(ids.length).toBeLessThanOrEqual(o.topK);
        // The kept ids are the most likely ones, in order.
        const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
        expect(ids).toEqual(order.slice(0, ids.length));
        // Minimal: without its last id the set's mass (under the top-k distribution) is below p.
        const full = distribution(logits, { ...o, topP: 1 });
        const mass = (n: number) => full.probs.slice(0, n).reduce((a, b) => a + b, 0);
        if (ids.length < full.ids.length) expect(mass(ids.length)).toBeGreaterThanOrEqual(o.topP - 1e-12);
        expect(mass(ids.length - 1)).toBeLessThan(o.topP);
        expect(ids).toContain(sample(logits, o, mulberry32(seed)));
      }),
    );
  });

  it('the same seed draws the same tokens', () => {
    fc.assert(
      fc.property(logitsArb, optsArb, fc.nat(), (logits, o, seed) => {
        const draw = () => {
          const r = mulberry32(seed);
          return [0, 1, 2, 3].map(() => sample(logits, o, r));
        };
        expect(draw()).toEqual(draw());
      }),
    );
  });
});
