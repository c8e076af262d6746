// Picking the next token from logits on the host: greedy at temperature 0, else temperature,
// top-k and top-p (nucleus) filtering and one draw from a seeded PRNG. The same seed, logits and
// options always pick the same token.

export interface SampleOptions {
  /** 0: greedy (argmax, the lowest id on ties). */
  readonly temperature: number;
  /** Keep the k most likely tokens (0: all). */
  readonly topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: all). */
  readonly topP: number;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** The filtered, renormalised distribution: token ids and their probabilities, most likely first. */
export function distribution(logits: ArrayLike<number>, o: SampleOptions): { ids: number[]; probs: number[] } {
  const ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const kept = o.topK > 0 ? ids.slice(0, o.topK) : ids;
  const max = logits[kept[0]];
  let probs = kept.map((i) => Math.exp((logits[i] - max) / o.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  let n = probs.length;
  if (o.topP < 1) {
    let acc = 0;
    n = 0;
    while (n < probs.length && acc < o.topP) acc += probs[n++];
  }
  probs = probs.slice(0, n);
  total = probs.reduce((a, b) => a + b, 0);
  return { ids: kept.slice(0, n), probs: probs.map((p) => p / total) };
}

/** One token: argmax at temperature 0, else a draw u = random() from the filtered distribution. */
export function sample(logits: ArrayLike<number>, o: SampleOptions, random: () => number): number {
  if (o.temperature === 0) return argmax(logits);
  const { ids, probs } = distribution(logits, o);
  const u = random();
  let acc = 0;
  for (let i = 0; i < ids.length; i++) {
    acc += probs[i];
    if (u < acc) return ids[i];
  }
  return ids[ids.length - 1];
}
