// How much of the backward a two-pass clip-norm step shares between its passes (the `share` of
// optimizer-step.ts): pass 1 runs the top of the backward as the ordinary backward, storing those
// gradients for their updates, so pass 2 starts below them and computes them no second time.
// Requires: a differentiated graph and a way to plan the step with k gradients shared (the real
// schedule, fusion and memory plan, as checkpoint-policy.ts judges its choices).
// Ensures: the chosen k has a planned peak no higher than sharing none (k = 0), by construction:
// no k is chosen that was not planned. The rule: the candidates are the cuts where a block's
// gradients are all complete (in completion order; every gradient in a model without blocks). The
// longest prefix that fits: with at most `scanCuts` cuts, each is planned from the longest down;
// past that, every gradient shared is tried first (the plain clipped step's order: one backward),
// then the smallest cut, and between a cut that fits and one that does not, bisection. The peak
// need not be monotone in k (gpt small, --checkpoint blocks: +0.25 MiB for each block shared up to
// 3 of 4, then SGD's peak, 13 KiB over sharing none), so bisection finds a cut that fits, not
// always the longest; a scan costs a plan per cut (LLaMA-7B: 34). Where the smallest cut raises the
// peak nothing is shared (LLaMA-7B under --checkpoint blocks: the head's 0.49 GiB gradient would
// sit on pass 1's peak; 2 plans, +0.6 s).
// Cost: at most max(scanCuts, 2 + log2(cuts)) plans beside the one without sharing.
import type { Graph } from '../ir/types.ts';

export interface NormShare {
  /** Gradients shared (completion order), and how many the step has. */
  readonly shared: number;
  readonly of: number;
  /** The plans tried beside the one without sharing. */
  readonly tried: number;
}

/**
 * The cuts: k gradients such that the k-th and the (k+1)-th (completion order) are not in the same
 * block, a param's block being that of the first forward node reading it (-1: none).
 */
export function shareCuts(g: Graph): number[] {
  if (!g.grads) return [];
  const at = new Map<number, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => at.set(o, i)));
  const names = Object.keys(g.grads).sort((a, b) => (at.get(g.grads![a]) ?? -1) - (at.get(g.grads![b]) ?? -1));
  const blockOf = new Map<number, number>();
  for (const n of g.nodes) if (n.phase === 'forward') for (const x of n.inputs) if (!blockOf.has(x)) blockOf.set(x, n.block ?? -1);
  const byName = new Map(g.params.map((p) => [p.name, blockOf.get(p.value) ?? -1]));
  const marked = (g.blocks?.length ?? 0) > 0;
  const cuts: number[] = [];
  for (let k = 1; k <= names.length; k++)
    if (!marked || k === names.length || byName.get(names[k - 1]) !== byName.get(names[k])) cuts.push(k);
  return cuts;
}

/** Up to this many cuts each is planned (a scan); past it, bisection. */
export const scanCuts = 8;

/** The most gradients to share (one of `cuts`, or 0) whose peak (`peakAt(k)`) is at most `peakAt(0)`. */
export function chooseNormShare(cuts: readonly number[], of: number, peakAt: (k: number) => number): NormShare {
  let tried = 0;
  const base = peakAt(0);
  const fits = (i: number) => (tried++, peakAt(cuts[i]) <= base);
  if (cuts.length <= scanCuts) {
    for (let i = cuts.length - 1; i >= 0; i--) if (fits(i)) return { shared: cuts[i], of, tried };
    return { shared: 0, of, tried };
  }
  let hi = cuts.length - 1;
  if (fits(hi)) return { shared: cuts[hi], of, tried };
  if (hi === 0 || !fits(0)) return { shared: 0, of, tried };
  let lo = 0; // cuts[lo] fits, cuts[hi] does not
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return { shared: cuts[lo], of, tried };
}

/** The report line's text: "shares the top 12 of 36 gradients with pass 2: ...". */
export function describeNormShare(s: NormShare): string {
  if (s.shared === 0)
    return `shares none of its ${s.of} gradients with pass 2${s.tried > 0 ? ': sharing even the top would raise the planned peak' : ''}`;
  if (s.shared === s.of) return `shares all ${s.of} gradients with pass 2: the backward runs once, as in the clipped SGD step (planned peak no higher than cloning it)`;
  return `shares the top ${s.shared} of ${s.of} gradients with pass 2: computed once and stored for their updates (planned peak no higher than sharing none)`;
}
