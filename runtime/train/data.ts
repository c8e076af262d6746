// Text to batches for training a language model, the same in Node (`lomoc train`) and in a page:
// the held-out tail, batches of contiguous windows drawn from a seeded stream (batch i depends only
// on the seed and i, so a resumed run draws exactly the batches an uninterrupted one would), the
// validation windows, and the unigram entropy baseline. Browser-safe: no Node APIs.
import { deriveSeed, mulberry32 } from '../../contract/random.ts';

export interface Split {
  readonly train: Int32Array;
  readonly val: Int32Array;
}

export type Batch = {
  readonly tokens: Int32Array;
  readonly targets: Int32Array;
};

/** The last 10% of the tokens held out for validation. */
export function splitTokens(tokens: Int32Array): Split {
  const cut = Math.floor(tokens.length * 0.9);
  return { train: tokens.subarray(0, cut), val: tokens.subarray(cut) };
}

/** Raw bytes as ids: the `bytes` tokenizer (256 ids). */
export const byteTokens = (text: string): Int32Array => Int32Array.from(new TextEncoder().encode(text));

/** Rows start at the given offsets: tokens[b, t] = ids[s_b + t], targets the next token. */
function windows(ids: Int32Array, starts: readonly number[], seq: number): Batch {
  const tokens = new Int32Array(starts.length * seq);
  const targets = new Int32Array(starts.length * seq);
  starts.forEach((s, b) => {
    tokens.set(ids.subarray(s, s + seq), b * seq);
    targets.set(ids.subarray(s + 1, s + seq + 1), b * seq);
  });
  return { tokens, targets };
}

/**
 * Training batch number `position` (0-based) of the stream `seed`: windows at uniform random offsets.
 * Under --accumulate K a step's inputs hold K micro-batches: `batch` is K x b rows and micro-batch
 * k is rows [k b, (k+1) b), so K micro-batches of b draw exactly the rows of one batch of K x b.
 */
export function trainBatch(train: Int32Array, batch: number, seq: number, seed: number, position: number): Batch {
  const u = mulberry32(deriveSeed(seed, `data.${position}`));
  const range = train.length - seq; // starts 0 .. length - seq - 1
  return windows(train, Array.from({ length: batch }, () => Math.floor(u() * range)), seq);
}

/** Up to `max` validation batches of consecutive non-overlapping windows from the start of the split. */
export function valBatches(val: Int32Array, batch: number, seq: number, max = 4): Batch[] {
  const rows = Math.floor((val.length - 1) / seq);
  const out: Batch[] = [];
  for (let i = 0; i < max; i++) {
    const starts = Array.from({ length: batch }, (_, b) => ((i * batch + b) % rows) * seq);
    out.push(windows(val, starts, seq));
    if ((i + 1) * batch >= rows) break;
  }
  return out;
}

/** The entropy (nats per token) of the tokens' unigram distribution: the loss of a model that learnt only their frequencies. */
export function unigramEntropy(ids: Int32Array): number {
  const counts = new Map<number, number>();
  for (const t of ids) counts.set(t, (counts.get(t) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) {
    const p = c / ids.length;
    h -= p * Math.log(p);
  }
  return h;
}
