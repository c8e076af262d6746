// Which bytes of one arena are taken at which schedule positions: the planner's index, so that
// "the lowest offset where `size` bytes are free throughout [start, end]" costs O(log T) set
// look-ups instead of a scan over every piece placed so far (which made planning quadratic:
// 72 s for a 30k-node chain).
//
// A segment tree over schedule positions. A piece live over [start, end] is stored in the
// O(log T) canonical nodes covering that range (`here`) and in every ancestor of those (`below`).
// The pieces live somewhere in [s, e] are then exactly `below` of the query's canonical nodes
// plus `here` of their strict ancestors. Each set is kept as merged, sorted offset runs, so a
// stack of contiguous pieces is one run and the fit search jumps over it in one step.
// Exact: the answer is the same lowest fit a scan over all live pieces finds.

/** Disjoint [start, end) offset runs, sorted, with touching runs merged. */
interface Runs {
  readonly starts: number[];
  readonly ends: number[];
}

/** Index of the last run whose start is < x, or -1. */
function lastBefore(r: Runs, x: number): number {
  let [lo, hi] = [0, r.starts.length];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (r.starts[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

function addRun(r: Runs, a: number, b: number): void {
  let i = lastBefore(r, a + 1); // the last run starting at or before a
  if (i >= 0 && r.ends[i] >= a) {
    a = r.starts[i];
    b = Math.max(b, r.ends[i]);
  } else i++;
  let j = i;
  while (j < r.starts.length && r.starts[j] <= b) b = Math.max(b, r.ends[j++]);
  r.starts.splice(i, j - i, a);
  r.ends.splice(i, j - i, b);
}

/** The end of the run that overlaps [o, o + size), or undefined when that range is free. */
function conflictEnd(r: Runs, o: number, size: number): number | undefined {
  const i = lastBefore(r, o + size);
  return i >= 0 && r.ends[i] > o ? r.ends[i] : undefined;
}

export interface Occupancy {
  readonly leaves: number;
  readonly here: (Runs | undefined)[];
  readonly below: (Runs | undefined)[];
}

export function emptyOccupancy(steps: number): Occupancy {
  let leaves = 1;
  while (leaves < Math.max(steps, 1)) leaves *= 2;
  return { leaves, here: [], below: [] };
}

/** The tree nodes whose spans exactly tile positions [start, end]. */
function canonical(o: Occupancy, start: number, end: number): number[] {
  const out: number[] = [];
  for (let l = start + o.leaves, r = end + o.leaves + 1; l < r; l >>= 1, r >>= 1) {
    if (l & 1) out.push(l++);
    if (r & 1) out.push(--r);
  }
  return out;
}

const runsAt = (sets: (Runs | undefined)[], k: number): Runs => (sets[k] ??= { starts: [], ends: [] });

/** Marks bytes [offset, offset + size) taken over positions [start, end]. */
export function occupy(o: Occupancy, start: number, end: number, offset: number, size: number): void {
  const seen = new Set<number>();
  for (const c of canonical(o, start, end)) {
    addRun(runsAt(o.here, c), offset, offset + size);
    for (let k = c; k >= 1 && !seen.has(k); k >>= 1) {
      seen.add(k);
      addRun(runsAt(o.below, k), offset, offset + size);
    }
  }
}

/** The lowest offset where `size` bytes are free throughout positions [start, end]. */
export function lowestFree(o: Occupancy, start: number, end: number, size: number): number {
  const sets: Runs[] = [];
  const seen = new Set<number>();
  for (const c of canonical(o, start, end)) {
    if (o.below[c]) sets.push(o.below[c]!);
    for (let k = c >> 1; k >= 1 && !seen.has(k); k >>= 1) {
      seen.add(k);
      if (o.here[k]) sets.push(o.here[k]!);
    }
  }
  // Jump past whatever overlaps until a full round finds nothing: every jump skips only offsets
  // that overlap a live run, so the first free offset found is the lowest.
  let offset = 0;
  for (let moved = true; moved; ) {
    moved = false;
    for (const r of sets) {
      const end = conflictEnd(r, offset, size);
      if (end !== undefined) [offset, moved] = [end, true];
    }
  }
  return offset;
}
