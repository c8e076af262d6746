// The fused LM head and loss (emit-linear-ce.ts) match the reference executor (invariant 7): the
// forward's loss and lse and the backward's dh and dW, both W layouts, vocabularies that are not
// a multiple of the chunk (and a chunk of 1, and one chunk for all), token counts and widths that
// straddle the 32 x 32 matmul tile, f32 and 16-bit storage (native and packed f16, bf16).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { TestGraph } from '../reference/graphs.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { anyTarget, expectWithin, random, runs, seed } from './kernel-check.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { gpu } from './harness.ts';
import { runBoth, stepMismatches, toleranceFor } from './step-compare.ts';

/**
 * f32: each logit is an f32 dot product of d terms (the reference: doubles, rounded once), the
 * log-sum-exp merges chunks in f32, and dh sums over V, dW over the tokens, in f32: a few hundred
 * terms of |x| <= a few, so 1e-4 absolute and relative is tens of f32 ulps of those sums.
 */
const f32Tol = { abs: 1e-4, rel: 1e-4 };
/** 16-bit storage rounds each stored result once: half an ulp of f16 (2^-11) or bf16 (2^-8), plus the f32 error. */
const halfTol = { f16: { abs: 2e-3, rel: 2e-3 }, bf16: { abs: 1.6e-2, rel: 1.6e-2 } } as const;

interface Case {
  readonly tokens: readonly number[];
  readonly d: number;
  readonly v: number;
  readonly chunk: number;
  readonly transW: boolean;
}

/** Forward and backward over the same inputs: lse feeds the gradient, as in a training step. */
function headGraph(k: Case, dtype: 'f32' | 'f16' | 'bf16'): { g: Graph; outs: ValueId[] } {
  const g = new TestGraph('linearCrossEntropy');
  const h = g.input('h', [...k.tokens, k.d], dtype);
  const w = g.input('w', k.transW ? [k.v, k.d] : [k.d, k.v], dtype);
  const ids = g.input('ids', k.tokens, 'i32');
  const attrs = { transW: k.transW, chunk: k.chunk };
  const [loss, lse] = g.op('linearCrossEntropy', [h, w, ids], attrs);
  const [dh, dw] = g.op('linearCrossEntropyGrad', [h, w, ids, lse, g.input('dloss', k.tokens, dtype)], attrs);
  return { g: g.finish(g.input('zero', [])), outs: [loss, lse, dh, dw] };
}

const zero: HostTensor = { shape: [], data: Float32Array.of(0) };

function feedsFor(k: Case, s: number): Feeds {
  const w = k.transW ? [k.v, k.d] : [k.d, k.v];
  return { inputs: { h: random([...k.tokens, k.d], s), w: random(w, s + 1, undefined, 0.5), ids: randomTokens(k.tokens, k.v, s + 2), dloss: random(k.tokens, s + 3), zero }, params: {} };
}

async function compare(k: Case, s: number, dtype: 'f32' | 'f16' | 'bf16' = 'f32', target = kernelTargets.cpu): Promise<void> {
  const { g, outs } = headGraph(k, dtype);
  const feeds = feedsFor(k, s);
  const ref = execute(g, feeds, 'f32');
  const gpu = await runOnGpu(g, feeds, outs, undefined, undefined, target);
  const tol = dtype === 'f32' ? f32Tol : halfTol[dtype];
  ['loss', 'lse', 'dh', 'dW'].forEach((name, i) =>
    expectWithin(gpu.get(outs[i])!, ref.values[outs[i]]!.data, tol, `${name}: ${dtype} ${JSON.stringify(k)} seed ${s} (${target.name} target)`));
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    tokens: fc.array(fc.constantFrom(1, 2, 3, 5, 7, 33), { minLength: 1, maxLength: 2 }),
    d: fc.constantFrom(1, 3, 8, 17, 33),
    v: fc.constantFrom(2, 5, 13, 31, 64, 100),
    chunkOf: fc.double({ min: 0, max: 1, noNaN: true }),
    transW: fc.boolean(),
  })
  .map(({ chunkOf, ...k }) => ({ ...k, chunk: Math.max(1, Math.ceil(chunkOf * k.v)) }));

describe('fused linear cross-entropy kernels', () => {
  it('loss, lse, dh and dW match the reference: random shapes, both W layouts, ragged last chunks, both kernel targets', async () => {
    await fc.assert(fc.asyncProperty(caseArb, seed, anyTarget, async (k, s, target) => compare(k, s, 'f32', target)), runs(10));
  });

  it('a chunk of 1, one chunk for the whole vocabulary, and more tokens than one row workgroup loop', async () => {
    await compare({ tokens: [1], d: 4, v: 7, chunk: 1, transW: false }, 1);
    await compare({ tokens: [3, 5], d: 6, v: 37, chunk: 37, transW: true }, 2);
    await compare({ tokens: [1100], d: 3, v: 9, chunk: 4, transW: true }, 3);
  });

  // The head's matmuls are the ordinary matmul's kernel over ranges (matmul-stored.ts): B as vec4s
  // where the chunk's layout allows, a float at a time where not, in the same node.
  it('B read as vec4s where the layout allows: the untied forward and dW, the tied dh and dW; 33 tokens straddle the 16-row tile', async () => {
    const cases: [Case, string[]][] = [
      // 64 columns in chunks of 12: 5 chunks of vec4s and a last one of 4; dh reads W across its rows.
      [{ tokens: [3, 11], d: 8, v: 64, chunk: 12, transW: false }, ['NV|store', 'NT|acc', 'TV|store']],
      // Tied, D = 12 <= 33 tokens: each chunk of W copied transposed first, then read as vec4s; dh and dW read 3 vec4s a row.
      [{ tokens: [33], d: 12, v: 40, chunk: 12, transW: true }, ['NV|store', 'NV|acc', 'TV|store']],
      // Tied, D = 8 > 3 tokens: the forward reads W's rows transposed (a copy would outgrow the workspace).
      [{ tokens: [3], d: 8, v: 20, chunk: 8, transW: true }, ['NT|store', 'NV|acc', 'TV|store']],
      // Chunks of 6 columns: the untied B is a float at a time.
      [{ tokens: [33], d: 8, v: 30, chunk: 6, transW: false }, ['NN|store', 'NT|acc', 'TN|store']],
    ];
    for (const [i, [k, kinds]] of cases.entries()) {
      const { g } = headGraph(k, 'f32');
      const fusion = noFusion(g.nodes.length);
      const program = lowerStep(g, planMemory(g, { fusion, scratch: scratchFor(g, fusion) }), fusion, kernelTargets.cpu);
      // The matmul shaders used, each once (the forward and the recompute share one).
      const matmuls = [...new Set(program.dispatches.map((d) => d.shader).filter((key) => key.startsWith('matmul.stored')))];
      expect(matmuls.map((key) => /\.(\w\w\|\w+)\|/.exec(key)![1]).sort(), JSON.stringify(k)).toEqual([...kinds].sort());
      await compare(k, 20 + i);
    }
  });

  // Each shader compiles once per storage format (tens of seconds on lavapipe): native f16 with the
  // tied layout, packed f16 with [D, V] (dW's stores land in column ranges, half words apart), bf16 both.
  const transposed: Case = { tokens: [2, 5], d: 9, v: 23, chunk: 6, transW: true };
  const columns: Case = { tokens: [7], d: 5, v: 30, chunk: 8, transW: false };
  for (const [dtype, target, cases] of [
    ['f16', kernelTargets.cpu, [transposed]],
    ['f16', { ...kernelTargets.cpu, half: 'packed' as const }, [columns]],
    ['bf16', kernelTargets.cpu, [transposed, columns]],
  ] as const)
    it(`${dtype} storage${target.half === 'packed' ? ' packed in u32 words' : ''}: all math f32, each result rounded once`, async () => {
      for (const [i, k] of cases.entries()) await compare(k, 4 + i, dtype, target);
    });

  it('an out-of-range target gives NaN loss and a NaN gradient row, never a read out of bounds', async () => {
    const k: Case = { tokens: [3], d: 4, v: 6, chunk: 4, transW: false };
    const { g, outs } = headGraph(k, 'f32');
    const base = feedsFor(k, 9);
    const feeds = { ...base, inputs: { ...base.inputs, ids: { shape: [3], data: Int32Array.of(2, 6, -1) } } };
    const gpu = await runOnGpu(g, feeds, outs);
    expect(Array.from(gpu.get(outs[0])!).map(Number.isNaN)).toEqual([false, true, true]);
    expect(Array.from(gpu.get(outs[2])!).map(Number.isNaN)).toEqual([...Array(4).fill(false), ...Array(8).fill(true)]);
  });

  it('scratch: one [tokens, chunk] f32 workspace and per-token statistics, never [tokens, V]', () => {
    const { g } = headGraph({ tokens: [4, 8], d: 16, v: 1000, chunk: 100, transW: true }, 'f16');
    const s = scratchFor(g, noFusion(g.nodes.length));
    // Last, the tied head's chunk copied transposed, [d, chunk] f32 (d <= tokens, so within the workspace's size).
    expect(s(0)).toEqual([32 * 100 * 4, 32 * 12, 16 * 100 * 4]);
    // f16 dh accumulates in an f32 copy of [tokens, d].
    expect(s(1)).toEqual([32 * 100 * 4, 32 * 16 * 4, 16 * 100 * 4]);
  });
});

// The fused loss inside whole steps: the GPU equals the reference executor running the same step
// (test/passes/fuse-loss.test.ts proves that step equals the unfused one), the vocabulary of 32
// in chunks of 5 (the last one 2 wide), the head tied (gpt) and untied (llama).
describe('whole steps with the fused loss on WebGPU equal the reference after 3 steps', () => {
  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const)
    for (const optimizer of ['lomo', 'sgd', 'adamw'] as const)
      it(`${name} tiny, ${optimizer}`, async () => {
        const c = compileProgram(def, { preset: 'tiny', optimizer, target: 'cpu', lossChunk: { chunk: 5 } });
        expect(c.step.nodes.filter((n) => n.op.startsWith('linearCrossEntropy')).map((n) => [n.op, n.attrs])).toEqual([
          ['linearCrossEntropy', { transW: name === 'gpt', chunk: 5 }],
          ['linearCrossEntropyGrad', { transW: name === 'gpt', chunk: 5 }],
        ]);
        const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 11 });
        expect(stepMismatches(run, { rel: toleranceFor(optimizer) })).toEqual([]);
        expect(run.arenaBytes).toBe(c.plan.peak);
      });

  // LOMO on an untied head: the update runs in each chunk's dW kernel (fused.ts lossUpdate);
  // chunks of 8 read W and the gradient chunk as vec4s. 16-bit: step-f16.test.ts's tolerance
  // (llama's token embedding's included) and step-bf16.test.ts's (8x), bf16 packed in u32 words
  // and rounded stochastically by element index in the fused kernel too.
  const sixteen = { rel: 8e-3, relOf: { tok_embeddings: 2.4e-2 }, lossRel: 2e-3 };
  for (const [dtype, tol] of [
    ['f32', { rel: toleranceFor('lomo') }],
    ['f16', sixteen],
    ['bf16', { rel: 8 * sixteen.rel, relOf: { tok_embeddings: 8 * sixteen.relOf.tok_embeddings }, lossRel: 8 * sixteen.lossRel }],
  ] as const)
    it(`llama tiny, lomo, ${dtype}: the head's update chunk by chunk inside its backward, chunks of 8 (vec4 reads)`, async () => {
      const target = dtype === 'bf16' ? { ...kernelTargets.cpu, half: 'packed' as const } : kernelTargets.cpu;
      const c = compileProgram(llama, { preset: 'tiny', optimizer: 'lomo', dtype, target, lossChunk: { chunk: 8 }, ...(dtype === 'bf16' ? { rounding: 'stochastic', roundingSeed: 5 } as const : {}) });
      expect(c.fusion.groups.filter((grp) => grp.kind === 'lossUpdate').map((grp) => grp.nodes.map((i) => c.step.nodes[i].op))).toEqual([['linearCrossEntropyGrad', 'optimizerUpdate']]);
      const fused = Object.entries(c.program.shaders).filter(([k]) => k.startsWith('matmul.stored') && k.includes('TV|sgd'));
      expect(fused).toHaveLength(1);
      if (dtype === 'bf16') expect(fused[0][1]).toContain('roundingBits(u.rseed');
      const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 11 });
      expect(stepMismatches(run, tol)).toEqual([]);
      expect(run.arenaBytes).toBe(c.plan.peak);
    });
});
