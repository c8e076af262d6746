// The norm pass on WebGPU (lavapipe): a gradient matmul and its squared norm as one kernel
// (emit-matmul-norm.ts) that writes one partial per workgroup, summed in tile order. Proved here:
// the squared norm equals the f64 sum of squares of the gradient within f32 rounding, and has the
// same bits whether or not the kernel stores the gradient; clipped LOMO (norm pass storing no
// weight gradient) equals clipped SGD (storing every gradient) bit for bit on the device; an
// overflow in a partial (loss scaling) still skips the step; sharing the top of the backward between
// the passes (stored gradients, SGD's kernels) keeps those bits.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { idRanges, lowerCompiled } from '../../compiler/compile-program.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import { GraphBuilder } from '../../compiler/ir/builder.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { fuse } from '../../compiler/passes/fuse.ts';
import { compileForward, type FuseConfig, type StepConfig } from '../../compiler/pipeline.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { tiledTile, tiledWorkgroups } from '../../compiler/codegen/wgsl/emit-matmul.ts';
import type { NodeOf } from '../../compiler/ir/types.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { createTrainer, isHyperInput } from '../../runtime/webgpu/trainer.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { awkwardSize, random } from './kernel-check.ts';
import { bothTargets, gpu, runOnGpu } from './harness.ts';

const loc = { file: 'norm-pass.test.ts', line: 1, col: 1 };

/** x [m, k] (or [k, m]) times y [k, n] (or [n, k]), its squared norm, and (`store`) a second reader that makes the kernel store the product. */
function normGraph(m: number, k: number, n: number, transA: boolean, transB: boolean, store: boolean) {
  const b = new GraphBuilder('norm');
  const input = (name: string, shape: number[]) => {
    const v = b.value(shape, 'f32', 'input', loc, name);
    b.inputs.push({ name, value: v, loc });
    return v;
  };
  const x = input('x', transA ? [k, m] : [m, k]);
  const y = input('y', transB ? [n, k] : [k, n]);
  const [mm] = b.node('matmul', [x, y], { transA, transB }, loc, 'backward');
  const [ss] = b.node('sumSquares', [mm], {}, loc, 'norm');
  const extra = store ? b.node('neg', [mm], {}, loc, 'backward')[0] : ss;
  const g: Graph = { name: 'norm', values: b.values, nodes: b.nodes, inputs: b.inputs, params: [], loss: extra };
  return { g, mm, ss };
}

const fusion = (g: Graph) => fuse(g, { matmulUpdate: false, elementwise: false, matmulEpilogue: false, matmulNorm: true });
const f32bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];

describe('matmul + sumSquares as one kernel', () => {
  it('the squared norm is the f64 sum of squares of the stored product within f32 rounding, and the same bits when nothing is stored', async () => {
    await fc.assert(
      fc.asyncProperty(awkwardSize, awkwardSize, awkwardSize, fc.boolean(), fc.boolean(), fc.constantFrom<KernelTarget>(...bothTargets), fc.integer({ min: 1, max: 1000 }),
        async (m, k, n, transA, transB, target, seed) => {
          const stored = normGraph(m, k, n, transA, transB, true);
          const bare = normGraph(m, k, n, transA, transB, false);
          const fs = fusion(stored.g);
          const fb = fusion(bare.g);
          expect(fs.groups[0].kind).toBe('matmulNorm');
          expect(fb.internal).toContain(bare.mm);
          const feeds = { inputs: { x: random(stored.g.values[stored.g.inputs[0].value].shape as number[], seed), y: random(stored.g.values[stored.g.inputs[1].value].shape as number[], seed + 1) }, params: {} };
          const a = await runOnGpu(stored.g, feeds, [stored.mm, stored.ss], fs, undefined, target);
          const b = await runOnGpu(bare.g, feeds, [bare.ss], fb, undefined, target);
          const product = a.get(stored.mm)!;
          let exact = 0;
          for (const v of product) exact += v * v;
          // Each term is added once to a chain of f32 sums: an invocation's elements, its workgroup's
          // lanes, the partials; the relative error of a sum of positive terms is at most that length times 2^-24.
          const mmNode = stored.g.nodes[0] as NodeOf<'matmul'>;
          const tile = tiledTile(mmNode, stored.g, target);
          const chain = tile.tm * tile.tn + tile.wgX * tile.wgY + tiledWorkgroups(mmNode, stored.g, tile);
          const got = a.get(stored.ss)![0];
          expect(Math.abs(got - exact)).toBeLessThanOrEqual(chain * 2 ** -24 * exact + 1e-30);
          expect(f32bits(b.get(bare.ss)![0])).toBe(f32bits(got));
        }),
      { numRuns: 12 },
    );
  }, 600_000);

  it('the order is seen: the plain reduction of the stored product (other partials) gives other bits, so equal bits above are not for free', async () => {
    const { g, ss } = normGraph(63, 31, 257, false, false, true);
    const feeds = { inputs: { x: random([63, 31], 11), y: random([31, 257], 12) }, params: {} };
    const fused = await runOnGpu(g, feeds, [ss], fusion(g));
    const plain = await runOnGpu(g, feeds, [ss]);
    expect(f32bits(fused.get(ss)![0])).not.toBe(f32bits(plain.get(ss)![0]));
    expect(fused.get(ss)![0]).toBeCloseTo(plain.get(ss)![0], 0);
  }, 600_000);

  it('an Inf or NaN in the product reaches the squared norm (the loss-scale overflow check reads it)', async () => {
    for (const bad of [Infinity, NaN, 1e30]) {
      const { g, ss } = normGraph(13, 5, 65, false, false, false);
      const x = random([13, 5], 3);
      x.data[7] = bad;
      const out = await runOnGpu(g, { inputs: { x, y: random([5, 65], 4) }, params: {} }, [ss], fusion(g));
      expect(Number.isFinite(out.get(ss)![0]), String(bad)).toBe(false);
    }
  }, 600_000);
});

/** Runs `steps` steps of each compiled step from the same params and batches; returns each one's params after. */
async function trainBoth(forward: Graph, cfgs: readonly (Omit<StepConfig, 'preset'> & FuseConfig)[], steps: number, seed: number, hyper: { lr: number; weightDecay: number; lossScale?: number }) {
  const acq = await gpu();
  const out: Record<string, Float32Array>[] = [];
  const before: Record<string, Float32Array>[] = [];
  for (const cfg of cfgs) {
    const c = compileForward(forward, { ...cfg, target: 'cpu' });
    const { program } = lowerCompiled(c);
    const t = await createTrainer({ device: acq, program, seed });
    try {
      before.push(await t.readParams());
      const data = c.step.inputs.filter((d) => !isHyperInput(d.name)).map((d) => ({ name: d.name, shape: c.step.values[d.value].shape, dtype: c.step.values[d.value].dtype }));
      const stored = new Set(program.inputs.map((s) => s.name));
      for (let s = 1; s <= steps; s++) {
        const batch = randomBatch(data, idRanges(c.step), seed * 100 + s);
        await t.step(Object.fromEntries(Object.entries(batch).filter(([k]) => stored.has(k))), hyper);
      }
      out.push(await t.readParams());
    } finally {
      t.destroy();
    }
  }
  return { out, before };
}

/** Names of the params whose bits differ. */
const bitDiff = (a: Record<string, Float32Array>, b: Record<string, Float32Array>) =>
  Object.keys(a).filter((k) => !Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength).equals(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength)));

const tiny = (def: ModelDef) => traceModel(def, resolveConfig(def, 'tiny')).graph;

describe('clipped LOMO equals clipped SGD bit for bit on the device', () => {
  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const)
    it(`${name} tiny, clip-norm 0.05 (every update clipped), 2 steps`, async () => {
      const { out, before } = await trainBoth(tiny(def), [{ optimizer: 'lomo', clipNorm: 0.05 }, { optimizer: 'sgd', clipNorm: 0.05 }], 2, 5, { lr: 0.1, weightDecay: 0.01 });
      expect(bitDiff(out[0], out[1])).toEqual([]);
      expect(bitDiff(out[0], before[0]).length).toBeGreaterThan(0);
    }, 600_000);

  it('gpt tiny with split tensors (--max-binding 2048 B): equal to the unsplit steps and to split SGD, bit for bit', async () => {
    const plan = { maxBindingBytes: 2048, maxBufferBytes: 32 * 1024 };
    const { out } = await trainBoth(tiny(gpt), [
      { optimizer: 'lomo', clipNorm: 0.05 }, { optimizer: 'lomo', clipNorm: 0.05, plan }, { optimizer: 'sgd', clipNorm: 0.05, plan },
    ], 2, 5, { lr: 0.1, weightDecay: 0.01 });
    expect(bitDiff(out[1], out[0])).toEqual([]);
    expect(bitDiff(out[2], out[0])).toEqual([]);
  }, 600_000);

  it('on random models', async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryModel, fc.constantFrom(0.05, 1), fc.integer({ min: 1, max: 1000 }), async ({ graph }, clipNorm, seed) => {
        const { out } = await trainBoth(graph, [{ optimizer: 'lomo', clipNorm }, { optimizer: 'sgd', clipNorm }], 1, seed, { lr: 0.05, weightDecay: 0 });
        expect(bitDiff(out[0], out[1])).toEqual([]);
      }),
      { numRuns: 8 },
    );
  }, 600_000);
});

describe('a norm pass sharing the top of the backward (passes/norm-share.ts) equals clipped SGD bit for bit on the device', () => {
  it('gpt tiny: sharing none, ln_f, ln_f and the top block, every gradient; with blocks checkpointing and loss scaling too', async () => {
    const hyper = { lr: 0.1, weightDecay: 0.01, lossScale: 1024 };
    for (const extra of [{}, { checkpoint: { kind: 'blocks' } as const, lossScale: true }]) {
      const shares = [false, 2, 18, 36] as const;
      const { out, before } = await trainBoth(tiny(gpt), [...shares.map((shareNormPass) => ({ optimizer: 'lomo', clipNorm: 0.05, shareNormPass, ...extra })),
        { optimizer: 'sgd', clipNorm: 0.05, ...extra }], 2, 7, hyper);
      shares.forEach((share, k) => expect(bitDiff(out[k], out[shares.length]), `share ${share} ${JSON.stringify(extra)}`).toEqual([]));
      expect(bitDiff(out[0], before[0]).length).toBeGreaterThan(0);
    }
  }, 600_000);
});

describe('loss scaling: an overflow found in the norm pass skips the step', () => {
  it('gpt tiny, LOMO, f32, clip-norm: a scale of 2^100 (whose squared gradients overflow f32) skips the step, every param keeping its bits; a scale of 1024 updates', async () => {
    const { out, before } = await trainBoth(tiny(gpt), [{ optimizer: 'lomo', clipNorm: 1, lossScale: true }], 1, 3, { lr: 0.1, weightDecay: 0.01, lossScale: 2 ** 100 });
    expect(bitDiff(out[0], before[0])).toEqual([]);
    const ok = await trainBoth(tiny(gpt), [{ optimizer: 'lomo', clipNorm: 1, lossScale: true }], 1, 3, { lr: 0.1, weightDecay: 0.01, lossScale: 1024 });
    expect(bitDiff(ok.out[0], ok.before[0]).length).toBeGreaterThan(0);
  }, 600_000);
});
