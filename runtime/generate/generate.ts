// The generation loop: the prompt in prefill chunks, then one decode step per new token, each
// token picked on the host from the logits read back (sample.ts). Stops after `maxTokens` or
// when the sequence fills the context.
import type { Decoder, Logits } from '../../contract/decoder.ts';
import { mulberry32 } from '../../contract/random.ts';
import { sample, type SampleOptions } from './sample.ts';

export interface GenerateOptions extends SampleOptions {
  readonly maxTokens: number;
  readonly seed: number;
}

export interface GenerateTiming {
  /** Milliseconds spent in prefill and in decode steps, and how many tokens each ran. */
  prefillMs: number;
  prefillTokens: number;
  decodeMs: number;
  decodeTokens: number;
}

/** Prompt tokens that fit: the caller reports a prompt longer than the context as a user error. */
export function checkPrompt(prompt: readonly number[], dec: Pick<Decoder, 'context' | 'vocab'>): string | undefined {
  if (prompt.length === 0) return 'the prompt is empty: give at least one token';
  if (prompt.length > dec.context) return `the prompt has ${prompt.length} tokens, more than the model's context of ${dec.context}`;
  const bad = prompt.find((t) => !(Number.isInteger(t) && t >= 0 && t < dec.vocab));
  if (bad !== undefined) return `token id ${bad} is outside the vocabulary [0, ${dec.vocab})`;
  return undefined;
}

/** Yields each new token as soon as it is picked. `timing` (when given) is filled in as it goes. */
export async function* generate(dec: Decoder, prompt: readonly number[], o: GenerateOptions, timing?: GenerateTiming): AsyncGenerator<number> {
  const why = checkPrompt(prompt, dec);
  if (why) throw new RangeError(why);
  const t = timing ?? { prefillMs: 0, prefillTokens: 0, decodeMs: 0, decodeTokens: 0 };
  const random = mulberry32(o.seed);
  let t0 = performance.now();
  let logits: Logits | undefined;
  for (let p = 0; p < prompt.length; p += dec.chunk) logits = await dec.prefill(prompt.slice(p, p + dec.chunk), p);
  t.prefillMs += performance.now() - t0;
  t.prefillTokens += prompt.length;
  const room = Math.min(o.maxTokens, dec.context - prompt.length);
  for (let pos = prompt.length, made = 0; made < room; pos++) {
    const token = sample(logits!, o, random);
    made++;
    yield token;
    if (made === room) break;
    t0 = performance.now();
    logits = await dec.decode(token, pos);
    t.decodeMs += performance.now() - t0;
    t.decodeTokens++;
  }
}
