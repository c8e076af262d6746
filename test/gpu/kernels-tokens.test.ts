// The embedding gather and its deterministic gradient match the reference executor (invariant 7):
// random vocabularies (tiny ones force repeated ids; large ones spread the bucket scan), widths
// that are not multiples of the workgroup size, more positions than one 256-position chunk.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { numel } from '../../compiler/ir/shape.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute } from '../../compiler/reference/execute.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { TestGraph } from '../reference/graphs.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { expectWithin, random, runs, seed } from './kernel-check.ts';

/** The gather copies f32 values: bit for bit. */
const exact = { abs: 0, rel: 0 };
/**
 * The gradient sums each id's rows in f32, in position order; the reference sums in doubles and
 * rounds once. For n summed values the f32 error is below n * 2^-24 * sum|dy|: with |dy| ~ 1 and
 * at most a few hundred repeats of an id, under 1e-4 absolute. (Bit-exactness against an f32
 * sum in the same order is checked separately.)
 */
const summed = { abs: 1e-4, rel: 1e-5 };

const zero: HostTensor = { shape: [], data: Float32Array.of(0) };

function embeddingGraph(vocab: number, d: number, idShape: readonly number[]): { g: Graph; y: ValueId } {
  const g = new TestGraph('embedding');
  const y = g.one('embedding', [g.input('table', [vocab, d]), g.input('ids', idShape, 'i32')], {});
  return { g: g.finish(g.input('zero', [])), y };
}

function gradGraph(vocab: number, d: number, idShape: readonly number[]): { g: Graph; dt: ValueId } {
  const g = new TestGraph('embeddingGrad');
  const dt = g.one('embeddingGrad', [g.input('ids', idShape, 'i32'), g.input('dy', [...idShape, d])], { vocab });
  return { g: g.finish(g.input('zero', [])), dt };
}

/** The gradient summed in f32, position by position: what the kernel must produce bit for bit. */
function f32Sums(ids: Int32Array, dy: ArrayLike<number>, vocab: number, d: number): Float32Array {
  const out = new Float32Array(vocab * d);
  ids.forEach((id, n) => {
    if (id < 0 || id >= vocab) return;
    for (let c = 0; c < d; c++) out[id * d + c] = Math.fround(out[id * d + c] + dy[n * d + c]);
  });
  return out;
}

const vocabs = fc.constantFrom(1, 2, 3, 7, 64, 255, 257, 1000);
const widths = fc.constantFrom(1, 2, 3, 5, 16, 63, 65, 130);
const idShapes = fc.array(fc.constantFrom(1, 2, 3, 7, 31, 64, 65, 300), { minLength: 1, maxLength: 3 }).filter((s) => numel(s) <= 2000);

describe('token kernels', () => {
  it('embedding: rows of the table for random ids, repeated ids included', async () => {
    await fc.assert(fc.asyncProperty(vocabs, widths, idShapes, seed, async (vocab, d, shape, s) => {
      const { g, y } = embeddingGraph(vocab, d, shape);
      const feeds = { inputs: { table: random([vocab, d], s), ids: randomTokens(shape, vocab, s + 1), zero }, params: {} };
      const gpu = await runOnGpu(g, feeds, [y]);
      expectWithin(gpu.get(y)!, execute(g, feeds, 'f32').values[y]!.data, exact, `embedding V=${vocab} D=${d} ids [${shape}]`);
    }), runs(12));
  });

  it('embedding: an id outside [0, V) reads nothing and writes NaN', async () => {
    const [vocab, d] = [5, 3];
    const ids = Int32Array.of(0, -1, 4, 5, 2 ** 31 - 1, 3, -(2 ** 31));
    const table = random([vocab, d], 1);
    const { g, y } = embeddingGraph(vocab, d, [ids.length]);
    const gpu = (await runOnGpu(g, { inputs: { table, ids: { shape: [ids.length], data: ids }, zero }, params: {} }, [y])).get(y)!;
    const expected = Array.from(ids).flatMap((id) => Array.from({ length: d }, (_, c) => (id >= 0 && id < vocab ? table.data[id * d + c] : NaN)));
    expectWithin(gpu, expected, exact, 'embedding with ids out of range');
  });

  it('embeddingGrad: dy rows summed per id match the reference, and an f32 sum in position order bit for bit', async () => {
    await fc.assert(fc.asyncProperty(vocabs, widths, idShapes, seed, async (vocab, d, shape, s) => {
      const { g, dt } = gradGraph(vocab, d, shape);
      const ids = randomTokens(shape, vocab, s + 1);
      const dy = random([...shape, d], s);
      const feeds = { inputs: { ids, dy, zero }, params: {} };
      const gpu = (await runOnGpu(g, feeds, [dt])).get(dt)!;
      const what = `embeddingGrad V=${vocab} D=${d} ids [${shape}]`;
      expectWithin(gpu, execute(g, feeds, 'f32').values[dt]!.data, summed, what);
      expectWithin(gpu, f32Sums(ids.data as Int32Array, dy.data, vocab, d), exact, `${what} (f32, position order)`);
    }), runs(12));
  });

  it('embeddingGrad: every position with one id (one bucket of 700) and ids out of range skipped', async () => {
    const [vocab, d] = [4, 9];
    const same = new Int32Array(700).fill(2);
    const mixed = Int32Array.from({ length: 300 }, (_, n) => (n % 7 === 0 ? -1 : n % 11 === 0 ? vocab : n % vocab));
    for (const ids of [same, mixed]) {
      const { g, dt } = gradGraph(vocab, d, [ids.length]);
      const dy = random([ids.length, d], ids.length);
      const gpu = (await runOnGpu(g, { inputs: { ids: { shape: [ids.length], data: ids }, dy, zero }, params: {} }, [dt])).get(dt)!;
      expectWithin(gpu, f32Sums(ids, dy.data, vocab, d), exact, `embeddingGrad over ${ids.length} positions`);
    }
  });

  it('embeddingGrad: the same bits on every run (no float atomics)', async () => {
    const { g, dt } = gradGraph(50, 33, [4, 130]);
    const feeds = { inputs: { ids: randomTokens([4, 130], 50, 3), dy: random([4, 130, 33], 4), zero }, params: {} };
    const first = (await runOnGpu(g, feeds, [dt])).get(dt)!;
    const second = (await runOnGpu(g, feeds, [dt])).get(dt)!;
    expect(Buffer.from(second.buffer).equals(Buffer.from(first.buffer))).toBe(true);
  });

  it('embeddingGrad: scratch is O(V + N) u32, never V x N', () => {
    const { g } = gradGraph(1000, 8, [2, 300]);
    const f = noFusion(g.nodes.length);
    expect(scratchFor(g, f)(0)).toEqual([1000 * 4, 600 * 4]);
  });

});
