// The gpu target's flash attention (emit-flash-attention.ts) matches the reference executor
// (invariant 7): y and lse from the forward, then dq, dk and dv from attentionGrad reading that
// lse, over (batch, heads, seq, head dim, causal, dtype) with seq not a multiple of the tiles
// (64 rows a workgroup, 4-32 staged rows), scores sharp enough that an unstable softmax would
// overflow, f32 and f16 (native and packed) and bf16 storage.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { TestGraph } from '../reference/graphs.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { expectWithin, random, runs, seed, type Tolerance } from './kernel-check.ts';

type Storage = 'f32' | 'f16' | 'f16-packed' | 'bf16';

interface Case {
  readonly batch: number;
  readonly heads: number;
  readonly t: number;
  readonly d: number;
  readonly causal: boolean;
  readonly storage: Storage;
  /** Multiplies 1/sqrt(Dh): large values make scores of tens (exp overflows f32 past 88). */
  readonly sharp: number;
}

/**
 * f32: 1e-4 of each value plus 1e-4 of the largest |reference| among y, dq, dk, dv (the bound
 * test/gpu/kernels-attention.test.ts derives: f32 partial sums over T and Dh; dq and dk may cancel
 * to almost nothing and then carry the rounding of what they summed). 16-bit storage adds one
 * rounding step of the stored output (2^-10 of |ref| for f16, 2^-7 for bf16) and the gap of the
 * inputs' rounding the reference shares; lse is f32 always, compared within 1e-5 of 1 + |lse|.
 */
const step: Record<Storage, number> = { f32: 0, f16: 2 ** -10, 'f16-packed': 2 ** -10, bf16: 2 ** -7 };
const rel = 1e-4;

const dtypeOf = (s: Storage) => (s === 'f16-packed' ? 'f16' : s);

/** q, k, v, dout inputs; attention, then attentionGrad on its lse. */
function flashGraph(c: Case): { g: Graph; y: ValueId; lse: ValueId; grads: ValueId[] } {
  const g = new TestGraph('flash');
  const shape = [c.batch, c.heads, c.t, c.d];
  const dtype = dtypeOf(c.storage);
  const [q, k, v, dout] = ['q', 'k', 'v', 'dout'].map((n) => g.input(n, shape, dtype));
  const attrs = { scale: c.sharp / Math.sqrt(c.d), causal: c.causal };
  const [y, lse] = g.op('attention', [q, k, v], attrs);
  const grads = g.op('attentionGrad', [q, k, v, lse, dout], attrs);
  return { g: g.finish(g.input('zero', [])), y, lse, grads };
}

async function check(c: Case, s: number): Promise<void> {
  const { g, y, lse, grads } = flashGraph(c);
  const shape = [c.batch, c.heads, c.t, c.d];
  const inputs: Record<string, HostTensor> = { q: random(shape, s), k: random(shape, s + 1), v: random(shape, s + 2), dout: random(shape, s + 3), zero: { shape: [], data: Float32Array.of(0) } };
  const feeds = { inputs, params: {} };
  const ref = execute(g, feeds, 'f32');
  const target: KernelTarget = c.storage === 'f16-packed' ? { ...kernelTargets.gpu, half: 'packed' } : kernelTargets.gpu;
  const outs = [y, ...grads];
  const gpu = await runOnGpu(g, feeds, [...outs, lse], undefined, undefined, target);
  let scale = 1e-30;
  for (const v of outs) for (const x of ref.values[v]!.data) scale = Math.max(scale, Math.abs(x));
  const tol: Tolerance = { abs: rel * scale, rel: rel + step[c.storage] };
  const what = `flash ${JSON.stringify(c)} seed ${s}`;
  outs.forEach((v, k) => expectWithin(gpu.get(v)!, ref.values[v]!.data, tol, `${what}: ${['y', 'dq', 'dk', 'dv'][k]}`));
  const refLse = ref.values[lse]!.data;
  let big = 0;
  for (const x of refLse) big = Math.max(big, Math.abs(x));
  expectWithin(gpu.get(lse)!, refLse, { abs: 1e-5 * (1 + big), rel: 1e-5 }, `${what}: lse`);
}

// Seq around the tiles (4-32 staged rows, 64 rows a workgroup), never only multiples of them.
const seqLen = fc.constantFrom(1, 2, 5, 17, 31, 33, 63, 65, 100, 130);
const headDim = fc.constantFrom(1, 3, 8, 13, 32, 64, 100, 128);
const arbitraryCase: fc.Arbitrary<Case> = fc
  .record({
    batch: fc.integer({ min: 1, max: 2 }),
    heads: fc.integer({ min: 1, max: 3 }),
    t: seqLen,
    d: headDim,
    causal: fc.boolean(),
    storage: fc.constantFrom<Storage>('f32', 'f32', 'f16', 'f16-packed', 'bf16'),
    sharp: fc.constantFrom(0.5, 1, 4, 30),
  })
  // The reference's cost is B * H * T^2 * Dh: keep each case a fraction of a second.
  .filter((c) => c.batch * c.heads * c.t * c.t * c.d <= 1 << 19);

describe('flash attention (gpu target)', () => {
  it('forward and backward match the reference: random batch, heads, seq, head dim, causal, storage', async () => {
    await fc.assert(fc.asyncProperty(arbitraryCase, seed, (c, s) => check(c, s)), runs(14));
  }, 600_000);

  it('named cases: seq 130 causal and not at Dh 64 (tiles of 32 and 16 rows), Dh 256 (tiles of 8 and 4), Dh 1', async () => {
    const base = { batch: 1, heads: 2, storage: 'f32', sharp: 1 } as const;
    await check({ ...base, t: 130, d: 64, causal: true }, 1);
    await check({ ...base, t: 130, d: 64, causal: false }, 2);
    await check({ ...base, heads: 1, t: 70, d: 256, causal: true }, 3);
    await check({ ...base, t: 67, d: 1, causal: false }, 4);
  }, 600_000);

  it('one tensor as q, k, v and dout is bound once (read through one binding) and gives the reference result', async () => {
    const g = new TestGraph('self');
    const x = g.input('x', [2, 70, 12]);
    const attrs = { scale: 0.3, causal: true };
    const [y, lse] = g.op('attention', [x, x, x], attrs);
    const outs = [y, lse, ...g.op('attentionGrad', [x, x, x, lse, x], attrs)];
    const graph = g.finish(g.input('zero', []));
    const feeds = { inputs: { x: random([2, 70, 12], 5), zero: { shape: [], data: Float32Array.of(0) } }, params: {} };
    const fusion = noFusion(graph.nodes.length);
    const program = lowerStep(graph, planMemory(graph, { fusion, scratch: scratchFor(graph, fusion, kernelTargets.gpu) }), fusion, kernelTargets.gpu);
    expect(program.dispatches.map((d) => d.shader)).toEqual(['flash.fwd.br64.bc64.w4.cap4.k=q.v=q', 'flash.dq.br64.bc64.w4.cap4.k=q.v=q.dout=q', 'flash.dkv.br64.bc64.w4.cap4.k=q.v=q.dout=q']);
    const ref = execute(graph, feeds, 'f32');
    const gpu = await runOnGpu(graph, feeds, outs, undefined, undefined, kernelTargets.gpu);
    outs.forEach((v, k) => expectWithin(gpu.get(v)!, ref.values[v]!.data, { abs: 1e-5, rel }, `self-attention output ${k}`));
  });

  it('the gpu target emits flash kernels within 8 bindings and 16 KiB of workgroup storage; Dh past 256 keeps the row kernels', () => {
    for (const d of [64, 128, 256, 300]) {
      const { g } = flashGraph({ batch: 1, heads: 1, t: 9, d, causal: true, storage: 'f32', sharp: 1 });
      const fusion = noFusion(g.nodes.length);
      const plan = planMemory(g, { fusion, scratch: scratchFor(g, fusion, kernelTargets.gpu) });
      const program = lowerStep(g, plan, fusion, kernelTargets.gpu);
      const shaders = program.dispatches.map((x) => program.shaders[x.shader]);
      const keys = program.dispatches.map((x) => x.shader);
      expect(keys.map((k) => k.split('.').slice(0, 2).join('.')), `Dh ${d}`).toEqual(
        d <= 256 ? ['flash.fwd', 'flash.dq', 'flash.dkv'] : ['attention.fwd', 'attention.dq', 'attention.dkv'],
      );
      for (const x of program.dispatches) expect(x.bindings.length).toBeLessThanOrEqual(8);
      for (const code of shaders) {
        const shared = [...String(code).matchAll(/var<workgroup> \w+: array<(\w+), (\d+)>/g)].reduce((a, m) => a + Number(m[2]) * (m[1] === 'E' ? (d % 4 === 0 ? 16 : 4) : 4), 0);
        expect(shared).toBeLessThanOrEqual(16384);
      }
    }
  });
});
