// Token-id kernels: the embedding gather and its gradient. (crossEntropy and its gradient are
// row kernels, in emit-rows.ts.)
//
// embeddingGrad is deterministic without float atomics, in two dispatches:
//   1. bucket (one workgroup): a stable counting sort of the N positions by id into a scratch
//      index list, so bucket v holds v's positions in increasing order. The workgroup walks the
//      positions in chunks of WG; within a chunk each position finds its rank among equal ids by
//      comparing with the chunk in workgroup memory. O(N * WG + V) work, O(N + V) scratch.
//   2. gather: one thread per (v, d) sums dy over bucket v in position order: O(V * D + N * D),
//      the same order as the reference's scatter-add, and the same bits on every run.
// An id outside [0, V) reads nothing: the gather writes NaN for it; the gradient skips it.
import { numel } from '../../ir/shape.ts';
import type { NodeOf } from '../../ir/types.ts';
import { type Emitter, grid, type ScratchRule } from './emitter.ts';
import { floatStorage } from './f16-storage.ts';

const WG = 256;
const nanBits = 0x7fc00000;


/** The flat index of this thread over grid()'s 2D fold. */
const flatIndex = `let e = gid.x + gid.y * nwg.x * WG;`;
const entry = `@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  ${flatIndex}`;

/** The gather over a table and output of storage type `e` (f32 or f16; see f16-storage.ts). */
const gatherCode = (e: string) => `@group(0) @binding(0) var<storage, read> table: array<${e}>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<${e}>;
struct U { total: u32, d: u32, vocab: u32, nan: u32 }
@group(0) @binding(3) var<uniform> u: U;
const WG = ${WG}u;
${entry}
  if (e >= u.total) { return; }
  let id = ids[e / u.d];
  if (id < 0 || u32(id) >= u.vocab) {
    y[e] = bitcast<f32>(u.nan);
  } else {
    y[e] = table[u32(id) * u.d + e % u.d];
  }
}
`;

const bucketCode = `@group(0) @binding(0) var<storage, read> ids: array<i32>;
// Per id: first its count, then (after the scan) its bucket's start, finally its bucket's end.
@group(0) @binding(1) var<storage, read_write> ends: array<u32>;
@group(0) @binding(2) var<storage, read_write> order: array<u32>;
struct U { n: u32, vocab: u32 }
@group(0) @binding(3) var<uniform> u: U;
const WG = ${WG}u;
var<workgroup> chunk: array<i32, WG>;
var<workgroup> partial: array<u32, WG>;

// This thread's id for position n (-1 when n is past the end or the id is out of range).
fn idAt(n: u32) -> i32 {
  if (n >= u.n) { return -1; }
  let id = ids[n];
  return select(-1, id, id >= 0 && u32(id) < u.vocab);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32) {
  for (var v = t; v < u.vocab; v += WG) { ends[v] = 0u; }
  storageBarrier();
  // Counts: in each chunk, the last occurrence of an id adds the chunk's occurrences (no races).
  for (var n0 = 0u; n0 < u.n; n0 += WG) {
    let id = idAt(n0 + t);
    chunk[t] = id;
    workgroupBarrier();
    if (id >= 0) {
      var rank = 0u;
      var later = false;
      for (var s = 0u; s < WG; s++) {
        if (chunk[s] == id) { if (s < t) { rank++; } else if (s > t) { later = true; } }
      }
      if (!later) { ends[u32(id)] += rank + 1u; }
    }
    storageBarrier();
    workgroupBarrier();
  }
  // Exclusive scan of the counts: each thread owns a contiguous segment of ids.
  let seg = (u.vocab + WG - 1u) / WG;
  let lo = min(t * seg, u.vocab);
  let hi = min(lo + seg, u.vocab);
  var sum = 0u;
  for (var v = lo; v < hi; v++) { sum += ends[v]; }
  partial[t] = sum;
  workgroupBarrier();
  if (t == 0u) {
    var run = 0u;
    for (var s = 0u; s < WG; s++) { let c = partial[s]; partial[s] = run; run += c; }
  }
  workgroupBarrier();
  var run = partial[t];
  for (var v = lo; v < hi; v++) { let c = ends[v]; ends[v] = run; run += c; }
  storageBarrier();
  // Stable scatter: a position's slot is its bucket's cursor plus its rank in the chunk.
  for (var n0 = 0u; n0 < u.n; n0 += WG) {
    let id = idAt(n0 + t);
    chunk[t] = id;
    workgroupBarrier();
    var rank = 0u;
    var later = false;
    if (id >= 0) {
      for (var s = 0u; s < WG; s++) {
        if (chunk[s] == id) { if (s < t) { rank++; } else if (s > t) { later = true; } }
      }
      order[ends[u32(id)] + rank] = n0 + t;
    }
    storageBarrier();  // every cursor read above happens before the cursor moves
    if (id >= 0 && !later) { ends[u32(id)] += rank + 1u; }
    storageBarrier();
    workgroupBarrier();
  }
}
`;

const sumCode = (e: string) => `@group(0) @binding(0) var<storage, read> ends: array<u32>;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read> dy: array<${e}>;
@group(0) @binding(3) var<storage, read_write> dtable: array<${e}>;
struct U { total: u32, d: u32 }
@group(0) @binding(4) var<uniform> u: U;
const WG = ${WG}u;
${entry}
  if (e >= u.total) { return; }
  let v = e / u.d;
  let c = e % u.d;
  var first = 0u;
  if (v > 0u) { first = ends[v - 1u]; }  // buckets are contiguous in id order
  let last = ends[v];
  var acc = 0.0;
  for (var s = first; s < last; s++) { acc += dy[order[s] * u.d + c]; }
  dtable[e] = acc;
}
`;

const embedding: Emitter<'embedding'> = (n, c) => {
  const [table, ids] = n.inputs.map((v) => c.slot(v));
  const y = c.slot(n.outputs[0]);
  const [vocab, d] = table.shape;
  const total = numel(y.shape);
  if (total === 0) return [];
  return [{
    key: `embedding.wg${WG}`,
    code: gatherCode(floatStorage(table.dtype)),
    bindings: [{ ...table.ref, write: false }, { ...ids.ref, write: false }, { ...y.ref, write: true }],
    uniforms: [total, d, vocab, nanBits],
    workgroups: grid(total, WG, c.limits),
  }];
};

const embeddingGrad: Emitter<'embeddingGrad'> = (n, c) => {
  const [ids, dy] = n.inputs.map((v) => c.slot(v));
  const out = c.slot(n.outputs[0]);
  const [vocab, d] = out.shape;
  const positions = numel(ids.shape);
  const total = vocab * d;
  if (total === 0) return [];
  const [ends, order] = [c.scratch(0), c.scratch(1)];
  return [
    {
      key: `embeddingGrad.bucket.wg${WG}`,
      code: bucketCode,
      bindings: [{ ...ids.ref, write: false }, { ...ends, write: true }, { ...order, write: true }],
      uniforms: [positions, vocab],
      workgroups: [1, 1, 1],
    },
    {
      key: `embeddingGrad.sum.wg${WG}`,
      code: sumCode(floatStorage(dy.dtype)),
      bindings: [{ ...ends, write: false }, { ...order, write: false }, { ...dy.ref, write: false }, { ...out.ref, write: true }],
      uniforms: [total, d],
      workgroups: grid(total, WG, c.limits),
    },
  ];
};

export const tokenEmitters = { embedding, embeddingGrad } satisfies { readonly [O in 'embedding' | 'embeddingGrad']: Emitter<O> };

/** embeddingGrad: bucket ends per id, then positions sorted by id (u32 each). */
export const tokenScratch: { readonly [O in 'embeddingGrad']?: ScratchRule<O> } = {
  embeddingGrad: (n, g) => [Math.max(1, n.attrs.vocab) * 4, Math.max(1, numel(g.values[n.inputs[0]].shape)) * 4],
};
