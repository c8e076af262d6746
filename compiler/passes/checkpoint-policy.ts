// Which segments to recompute. Policies:
//   none          keep every activation;
//   blocks        recompute every block the user marked with `block(...)`;
//   sqrt          Chen et al. 2016: group the n blocks (or, unmarked, the forward nodes) into runs
//                 of ceil(sqrt n); keep only the runs' boundaries, recompute each run once per
//                 backward pass (at most one extra forward);
//   budget=SIZE   the least recomputation whose planned peak fits SIZE: blocks ordered by saved
//                 bytes per recomputed FLOP, the fewest that fit found by bisection (the peak
//                 falls as more are recomputed), then every block with inputs kept every sqrt(n)
//                 blocks (as blocks,runs=K), then levels=3 and 4, then coarser runs if that is
//                 not enough either;
//                 a candidate that does not fit also tries its recomputed FFNs in 2, 4, 8, 16
//                 token chunks (passes/token-chunk.ts) before more units are recomputed, since
//                 chunking recomputes nothing more (coarser runs try only 1 and the best count).
//   ...,chunks=N  (after blocks, sqrt or budget=SIZE) run each recomputed FFN over N chunks of tokens.
//   ...,width=N   (instead of chunks=N) run each recomputed FFN over N slices of its hidden width
//                 (passes/width-chunk.ts): each weight-gradient window is complete and updated at
//                 once, so no partial sums of weight gradients; budget= tries 16 slices last.
//   ...,heads=N   (with or without chunks=N or width=N) run each recomputed attention over N slices
//                 of its heads, whole key/value groups (passes/head-chunk.ts): the recompute keeps
//                 only the attention's result and backward recomputes each slice again, so no whole
//                 q, k, v or o is alive during the FFN's backward; weight windows are updated at once.
//   blocks,runs=K recompute every block, keeping only the inputs of ceil(n/K) runs of blocks: a
//                 run is recomputed first, keeping its blocks' inputs (two-level recursion). The
//                 runs taper toward the top (taperedRuns), which backward reaches while every lower
//                 run's input is kept: LLaMA-7B runs=6 keeps 8 inputs at most, not 10 (-60 MiB).
//   blocks,levels=L  the same recursion L levels deep (Griewank's binomial checkpointing, each run
//                 split the same way one level down): the least bound b on inputs kept at once
//                 with C(b + L - 1, L) >= n, for about L - 1 more forwards (LLaMA-7B: 8, 5, 4 inputs
//                 for L = 2, 3, 4; 156%, 220%, 279% of a forward recomputed).
// Each candidate is judged by the real schedule and plan (`peakOf`), as XLA's rematerialization
// judges its choices by the real memory of the scheduled module.
// Cost: none, blocks, sqrt: O(n). budget: O(log u) schedules and plans of u units, each
// O(n log n); only when recomputing every unit is not enough does it try up to u coarser runs.
import { LomocError } from '../diagnostics.ts';
import { totalFlops } from '../ir/cost.ts';
import { byteSize } from '../ir/shape.ts';
import type { Graph, Node } from '../ir/types.ts';
import { recomputeSegments, type Segment } from './checkpoint.ts';
import { chunkHeads } from './head-chunk.ts';
import { chunkTokens } from './token-chunk.ts';
import { chunkWidth } from './width-chunk.ts';

/**
 * `chunks`: token chunks for each recomputed FFN, `width`: slices of its width (absent: 1, or
 * budget's choice; never both); `heads`: head slices of each recomputed attention (absent: 1).
 */
export type CheckpointPolicy =
  | { readonly kind: 'none' }
  | { readonly kind: 'blocks'; readonly chunks?: number; readonly width?: number; readonly heads?: number; readonly runs?: number; readonly levels?: number }
  | { readonly kind: 'sqrt'; readonly chunks?: number; readonly width?: number; readonly heads?: number }
  | { readonly kind: 'budget'; readonly bytes: number; readonly chunks?: number; readonly width?: number; readonly heads?: number };

/** How each recomputed FFN is split: over token chunks or over width slices (1 and 1: not at all); `heads`: attention head slices. */
export interface FfnSplit {
  readonly chunks: number;
  readonly width: number;
  readonly heads?: number;
}

/** The chunk counts budget= tries, fewest first. */
export const budgetChunkCounts: readonly number[] = [1, 2, 4, 8, 16];
/** The recursion depths budget= tries after two-level runs, when recomputing every unit is not enough. */
export const budgetLevels: readonly number[] = [3, 4];
/** The width slice counts budget= tries after the chunk counts (where the optimizer allows windows). */
export const budgetWidthCounts: readonly number[] = [16];

const units: Readonly<Record<string, number>> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** The most token chunks one FFN may be split into. */
export const maxChunks = 4096;
/** The deepest recursion `levels=L` takes (each level recomputes about one more forward). */
export const maxLevels = 6;

/** `none`, `blocks`, `sqrt` or `budget=14GiB` (units B, KB, MB, GB, KiB, MiB, GiB, TiB), then optionally `,chunks=N` or `,width=N`, `,heads=N` (and `,runs=K` after blocks). */
export function parseCheckpointPolicy(text: string): CheckpointPolicy {
  const [head, ...rest] = text.split(',');
  let policy = parseBase(head, text);
  const both = `--checkpoint: chunks=N and width=N cannot both split the FFNs (over tokens or over the width, not both), got '${text}'`;
  for (const option of rest) {
    const runs = /^runs=([0-9]+)$/.exec(option);
    if (runs && policy.kind === 'blocks' && policy.runs === undefined && policy.levels === undefined && Number(runs[1]) >= 1 && Number(runs[1]) <= maxChunks) {
      policy = { ...policy, runs: Number(runs[1]) };
      continue;
    }
    const levels = /^levels=([0-9]+)$/.exec(option);
    if (levels && policy.kind === 'blocks' && policy.runs === undefined && policy.levels === undefined && Number(levels[1]) >= 1 && Number(levels[1]) <= maxLevels) {
      policy = { ...policy, levels: Number(levels[1]) };
      continue;
    }
    const split = /^(chunks|width|heads)=([0-9]+)$/.exec(option);
    const key = split?.[1] as 'chunks' | 'width' | 'heads' | undefined;
    if (!split || !key || Number(split[2]) < 1 || Number(split[2]) > maxChunks || (policy.kind !== 'none' && policy[key] !== undefined))
      throw new LomocError(
        `--checkpoint: expected ${head === 'blocks' ? `chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to ${maxLevels})` : 'chunks=N, width=N or heads=N'} after the policy (N${head === 'blocks' ? ' and K' : ''} a whole number from 1 to ${maxChunks}, each once), got '${option}' in '${text}'`,
      );
    if (policy.kind === 'none') throw new LomocError(`--checkpoint: ${key}=N needs a policy that recomputes (blocks, sqrt or budget=SIZE), got '${text}'`);
    if (key !== 'heads' && policy[key === 'chunks' ? 'width' : 'chunks'] !== undefined) throw new LomocError(both);
    policy = { ...policy, [key]: Number(split[2]) };
  }
  return policy;
}

function parseBase(text: string, whole: string): CheckpointPolicy {
  if (text === 'none' || text === 'blocks' || text === 'sqrt') return { kind: text };
  const m = /^budget=([0-9]*\.?[0-9]+)\s*([A-Za-z]*)$/.exec(text);
  if (m && (m[2] === '' || m[2] in units) && Number(m[1]) > 0)
    return { kind: 'budget', bytes: Math.floor(Number(m[1]) * (units[m[2] || 'B'] ?? 1)) };
  throw new LomocError(`--checkpoint: expected none, blocks, sqrt or budget=SIZE (SIZE like 14GiB), got '${whole}'`);
}

export interface CheckpointChoice {
  readonly graph: Graph;
  readonly segments: readonly Segment[];
  /** Recomputed FLOPs as a fraction of one forward pass. */
  readonly recomputeRatio: number;
  /** How the choice was made, for reports. */
  readonly detail: string;
  /** Token chunks of each recomputed FFN (1: none). */
  readonly chunks: number;
  /** Width slices of each recomputed FFN (1: none). */
  readonly width: number;
  /** How the segments' inputs are themselves recomputed (absent: every input kept). */
  readonly nest?: Nest;
  /** Head slices of each recomputed attention (1: none). */
  readonly heads: number;
}

/** What the optimizer allows: window updates need states of the param's shape (not AdaLomo's factored ones). */
export interface CheckpointOptions {
  /** Updates inside backward (LOMO): a width slice's window updates run in the slice. */
  readonly inBackward?: boolean;
  /** The optimizer's name, for errors; absent: width slices are refused. */
  readonly optimizer?: string;
  /** Its update can update a window of a param (every state has the param's shape). */
  readonly windows?: boolean;
  /** Width slices were asked for (not tried by budget=): an FFN that cannot be sliced is an error. */
  readonly strict?: boolean;
}

/** Recompute units: the marked blocks, or else runs of about sqrt(n) forward nodes. */
function unitsOf(g: Graph): Segment[] {
  const forward = g.nodes.filter((n) => n.phase === 'forward');
  if (g.blocks?.length) {
    const byBlock = g.blocks.map((): number[] => []);
    for (const n of forward) if (n.block !== undefined) byBlock[n.block].push(n.id);
    return byBlock.filter((s) => s.length > 0);
  }
  return runs(forward.map((n) => [n.id]), Math.ceil(Math.sqrt(forward.length)));
}

/** Consecutive runs of `size` units, merged. */
const runs = (us: readonly Segment[], size: number): Segment[] =>
  Array.from({ length: Math.ceil(us.length / size) }, (_, i) => us.slice(i * size, (i + 1) * size).flat());

/**
 * About n/k runs for nested recompute, sized so the most checkpoints live at once is least: the
 * backward reaches the top run first, while every lower run's input is still kept, so a run t
 * places from the top may hold t - 1 more block inputs than the top one (sizes grow downward).
 */
export function taperedRuns(us: readonly Segment[], k: number): Segment[] {
  const n = us.length;
  const r = Math.ceil(n / k);
  // The least bound b on (runs below) + (inputs in the run) whose tapered sizes cover n.
  let b = r;
  while (r * (b - r) + (r * (r + 1)) / 2 < n) b++;
  const sizes = Array.from({ length: r }, (_, t) => b - r + t + 1); // t = 0 at the top
  let extra = sizes.reduce((a, c) => a + c, 0) - n;
  for (let t = r - 1; extra > 0; t = t === 0 ? r - 1 : t - 1) if (sizes[t] > 1) { sizes[t]--; extra--; }
  const out: Segment[] = [];
  let at = 0;
  for (const s of sizes.reverse()) { out.push(us.slice(at, at + s).flat()); at += s; }
  return out;
}

/** Nested recompute: `runs`: ceil(n/runs) tapered runs (two levels); `levels`: that deep a recursion, its runs sized for the fewest inputs kept. */
export interface Nest {
  readonly runs?: number;
  readonly levels?: number;
}

/** The most units an `levels`-deep recursion covers while keeping at most `b` inputs at once (Griewank's binomial bound: C(b + levels - 1, levels)). */
export function nestCapacity(b: number, levels: number): number {
  if (levels <= 1 || b <= 0) return Math.max(0, b);
  let sum = 0;
  for (let k = 1; k <= b; k++) sum += nestCapacity(k, levels - 1);
  return sum;
}

/**
 * The runs of an `levels`-deep recursion over `us`, finest first (one partition per level above the
 * units): the least bound b on inputs kept at once whose capacity covers n, then runs from the
 * bottom, the j-th from the bottom as large as b - j allows (j lower runs' inputs are live while it
 * is recomputed), each run split the same way one level down within its own bound.
 */
export function nestedRuns(us: readonly Segment[], levels: number): Segment[][] {
  if (levels <= 1 || us.length === 0) return [];
  let b = 1;
  while (nestCapacity(b, levels) < us.length) b++;
  // Finest first: [runs of units at level 2, ..., this depth's runs]; depth 1 has none.
  const split = (units: readonly Segment[], bound: number, depth: number): Segment[][] => {
    if (depth <= 1) return [];
    const here: Segment[][] = [];
    for (let j = 0, at = 0; at < units.length; j++) {
      const size = Math.max(1, Math.min(units.length - at, nestCapacity(bound - j, depth - 1)));
      here.push(units.slice(at, at + size));
      at += size;
    }
    const below = here.map((run, j) => split(run, bound - j, depth - 1));
    return [...Array.from({ length: depth - 2 }, (_, l) => below.flatMap((x) => x[l])), here.map((run) => run.flat())];
  };
  return split(us, b, levels);
}

/** The coarser partitions to recompute, finest first. */
function nestings(segments: readonly Segment[], nest: Nest): Segment[][] {
  if (nest.levels !== undefined) return nestedRuns(segments, nest.levels);
  if (nest.runs !== undefined && nest.runs > 1) return [taperedRuns(segments, nest.runs)];
  return [];
}

function ratio(g: Graph, out: Graph): number {
  const fwd = totalFlops(g, g.nodes.filter((n) => n.phase === 'forward'));
  const re = totalFlops(out, out.nodes.filter((n) => n.phase === 'recompute'));
  return fwd === 0 ? 0 : re / fwd;
}

/**
 * With `nest` each segment is recomputed from a checkpoint kept only at the start of its run, whose
 * run is recomputed first keeping just the segments' inputs (Chen et al. 2016's recursion; `levels`
 * deep, Griewank's binomial schedule): about one more forward a level, far fewer inputs kept.
 */
function choose(g: Graph, segments: readonly Segment[], detail: string, split: FfnSplit, opts: CheckpointOptions, nest: Nest = {}): CheckpointChoice {
  const coarser = nestings(segments, nest);
  const nested = coarser.reduce((h, runs) => recomputeSegments(h, runs), recomputeSegments(g, segments));
  const { chunks, width, heads = 1 } = split;
  const ffn = width > 1 ? chunkWidth(nested, width, { inBackward: opts.inBackward ?? false, strict: opts.strict }) : chunkTokens(nested, chunks);
  const graph = chunkHeads(ffn, heads, { inBackward: opts.inBackward ?? false, strict: opts.strict });
  const how = nest.levels !== undefined ? (nest.levels > 1 ? [`${nest.levels} levels of runs`] : []) : (nest.runs ?? 1) > 1 ? [`inputs kept every ${nest.runs}`] : [];
  const text = [detail, ...how, ...(chunks > 1 ? [`FFNs in ${chunks} token chunks`] : []), ...(width > 1 ? [`FFNs in ${width} width slices`] : []),
    ...(heads > 1 ? [`attention in ${heads} head slices`] : [])].join(', ');
  return { graph, segments, recomputeRatio: ratio(g, graph), detail: text, chunks, width, heads, ...(coarser.length ? { nest } : {}) };
}

/**
 * The choice `c` made for another graph, applied to `g` with the same forward nodes (the same
 * segments, splits and nesting; no search): a two-pass norm's sharing candidates are judged so.
 */
export function reapplyCheckpointing(g: Graph, c: CheckpointChoice, opts: CheckpointOptions = {}): CheckpointChoice {
  if (c.segments.length === 0) return { ...c, graph: g };
  return { ...choose(g, c.segments, '', c, opts, c.nest), detail: c.detail };
}

/** Bytes each unit stops keeping for backward, per FLOP it recomputes: one pass over the graph for all units. */
function benefits(g: Graph, us: readonly Segment[]): number[] {
  const readLater = new Set<number>();
  for (const n of g.nodes) if (n.phase !== 'forward') for (const x of n.inputs) readLater.add(x);
  return us.map((unit) => {
    const nodes: Node[] = unit.map((id) => g.nodes[id]);
    let bytes = 0;
    for (const n of nodes) for (const o of n.outputs) if (readLater.has(o)) bytes += byteSize(g.values[o].shape, g.values[o].dtype);
    return bytes / Math.max(1, totalFlops(g, nodes));
  });
}

/** Params and optimizer state: no checkpointing plan is smaller. */
function persistentBytes(g: Graph): number {
  const vs = [...g.params.map((p) => p.value), ...(g.state ?? []).map((s) => s.value)];
  return vs.reduce((a, v) => a + byteSize(g.values[v].shape, g.values[v].dtype), 0);
}

/** `what` names the step in errors (e.g. "the adamw step"). */
export function applyCheckpointing(g: Graph, policy: CheckpointPolicy, peakOf: (g: Graph) => number, what = 'the step', opts: CheckpointOptions = {}): CheckpointChoice {
  if (policy.kind === 'none') return { graph: g, segments: [], recomputeRatio: 0, detail: 'none', chunks: 1, width: 1, heads: 1 };
  if ((policy.width ?? 1) > 1 && !opts.windows)
    throw new LomocError(`--checkpoint ...,width=${policy.width}: ${opts.optimizer === undefined ? what : `the ${opts.optimizer} update`} cannot update a window of a weight (its state is not shaped like the weight); use chunks=N instead, or lomo, sgd or adamw`);
  if ((policy.heads ?? 1) > 1 && !opts.windows)
    throw new LomocError(`--checkpoint ...,heads=${policy.heads}: ${opts.optimizer === undefined ? what : `the ${opts.optimizer} update`} cannot update a window of a weight (its state is not shaped like the weight); use lomo, sgd or adamw`);
  const forced: FfnSplit = { chunks: policy.chunks ?? 1, width: policy.width ?? 1, heads: policy.heads ?? 1 };
  if (policy.width !== undefined || policy.heads !== undefined) opts = { ...opts, strict: true };
  const us = unitsOf(g);
  if (policy.kind === 'blocks') {
    if (!g.blocks?.length)
      throw new LomocError(`--checkpoint blocks: model '${g.name}' marks no blocks; mark them with block(name, () => ...) or use --checkpoint sqrt`);
    return choose(g, us, `${us.length} blocks`, forced, opts, { runs: policy.runs, levels: policy.levels });
  }
  if (policy.kind === 'sqrt') {
    const size = Math.ceil(Math.sqrt(us.length));
    return choose(g, runs(us, size), `runs of ${size} of ${us.length} units`, forced, opts);
  }
  // A forced chunk count, or the fewest chunks whose plan fits (else the one with the lowest peak).
  // (Not monotonic: under LOMO a chunked FFN holds its weight gradients' partial sums, so 2 chunks
  // can peak above 1 and 16 below it.)
  // Below the params and state alone nothing fits: only 1 and the most chunks are tried, for the message.
  const hopeless = policy.bytes < persistentBytes(g);
  const widths = opts.windows ? budgetWidthCounts.map((width) => ({ chunks: 1, width })) : [];
  const all: FfnSplit[] = [...budgetChunkCounts.map((chunks) => ({ chunks, width: 1 })), ...widths];
  const defaultCounts: readonly FfnSplit[] = policy.chunks || policy.width ? [forced] : (hopeless ? [all[0], all.at(-1)!] : all).map((c) => ({ ...c, heads: forced.heads }));
  const fit = (segments: readonly Segment[], detail: string, counts = defaultCounts, nest: Nest = {}): CheckpointChoice & { peak: number } => {
    let best: (CheckpointChoice & { peak: number }) | undefined;
    for (const split of segments.length === 0 ? [{ chunks: 1, width: 1, heads: 1 }] : counts) {
      const c = choose(g, segments, detail, split, opts, nest);
      const peak = peakOf(c.graph);
      if (peak <= policy.bytes) return { ...c, peak };
      if (!best || peak < best.peak) best = { ...c, peak };
    }
    return best!;
  };
  // budget: the fewest units (best first) whose plan fits, by bisection.
  const bs = benefits(g, us);
  const order = us.map((u, i) => ({ u, b: bs[i], i })).sort((a, c) => c.b - a.b || a.i - c.i);
  const first = (m: number) => order.slice(0, m).sort((a, c) => a.i - c.i).map((x) => x.u);
  const tried = new Map<number, CheckpointChoice & { peak: number }>();
  const attempt = (m: number) => {
    if (!tried.has(m)) tried.set(m, fit(first(m), `${m} of ${us.length} units`));
    return tried.get(m)!;
  };
  if (attempt(0).peak <= policy.bytes) return attempt(0);
  if (attempt(us.length).peak <= policy.bytes) {
    let [lo, hi] = [0, us.length]; // attempt(lo) does not fit, attempt(hi) does
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (attempt(mid).peak <= policy.bytes) hi = mid;
      else lo = mid;
    }
    return attempt(hi);
  }
  // Every unit recomputed is not enough: keep fewer checkpoints by recomputing runs of units.
  // (Below the params and state alone nothing fits: then only the sqrt runs are tried, for the message.)
  let best = attempt(us.length);
  const sqrt = Math.ceil(Math.sqrt(us.length));
  // First every unit with its input kept only every sqrt(n) units (two-level recursion).
  // Then deeper recursion (levels=3, 4: about one more forward each, far fewer inputs kept).
  if (us.length > 2)
    for (const nest of [{ runs: sqrt }, ...(hopeless ? [] : budgetLevels.map((levels) => ({ levels })))]) {
      const c = fit(us, `${us.length} units`, unsplitAnd(best), nest);
      if (c.peak <= policy.bytes) return c;
      if (c.peak < best.peak) best = c;
    }
  const sizes = hopeless ? [sqrt] : Array.from({ length: us.length - 1 }, (_, i) => i + 2);
  for (const size of sizes) {
    const c = fit(runs(us, size), `runs of ${size} of ${us.length} units`, unsplitAnd(best));
    if (c.peak <= policy.bytes) return c;
    if (c.peak < best.peak) best = c;
  }
  throw new LomocError(
    `--checkpoint budget=${fmtGiB(policy.bytes)}: ${what} cannot fit; the smallest peak lomoc can plan is ${fmtGiB(best.peak)} (${best.detail} recomputed): use --checkpoint budget=${atLeast(best.peak)} or more`,
  );
}

/** No split, and the split `c` chose (once when it is none). */
const unsplitAnd = (c: FfnSplit): FfnSplit[] => (c.chunks === 1 && c.width === 1 ? [c] : [{ chunks: 1, width: 1, heads: c.heads }, c]);

const fmtGiB = (b: number): string =>
  b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)}GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)}MiB` : `${(b / 2 ** 10).toFixed(2)}KiB`;
/** A budget that is at least `b` bytes, in round units. */
const atLeast = (b: number): string => (b >= 2 ** 30 ? `${Math.ceil(b / 2 ** 20)}MiB` : `${Math.ceil(b / 2 ** 10)}KiB`);
