// Kernels compiled with subgroup operations (target.subgroups, subgroup-reduce.ts) match the
// reference executor and the same kernels without subgroups (invariant 7), on lavapipe (8-lane
// subgroups): the row kernels in their workgroup-per-row frame (softmax family, cross-entropy,
// the norms and their gradients, the fused head's online log-sum-exp) and the reductions with one
// output per workgroup. Rows are drawn around the subgroup (8) and workgroup (32, 256) sizes.
// Every case first checks that its program really uses subgroups, so none passes vacuously.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Op, OpAttrs } from '../../compiler/ir/ops.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { partialsPlan, planReduce } from '../../compiler/codegen/wgsl/reduce-kernel.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { opGraph } from '../reference/helpers.ts';
import { TestGraph } from '../reference/graphs.ts';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import gpt from '../../models/gpt.ts';
import { gpu, runOnGpu, scratchFor } from './harness.ts';
import { compareOp as compareF16, expectWithin, random, runs, seed, type Tolerance } from './kernel-check.ts';
import { runBoth, stepMismatches, toleranceFor } from './step-compare.ts';

const withSubgroups = (t: KernelTarget): KernelTarget => ({ ...t, subgroups: true });
/**
 * Both targets with subgroups. The cpu target runs a thread per row for 256+ rows of at most 2048
 * (no reduction across threads): its shapes below keep fewer rows, or longer ones.
 */
const targets = fc.constantFrom(kernelTargets.cpu, kernelTargets.gpu);

/** The program `g` lowers to under `target` asks for subgroups (the test exercises them), or, with `uses` false, asks for none. */
function expectSubgroups(g: Graph, outs: readonly ValueId[], target: KernelTarget, what: string, uses = true): void {
  const fusion = noFusion(g.nodes.length);
  const plan = planMemory(g, { fusion, scratch: scratchFor(g, fusion, target), keep: outs });
  const p = lowerStep(g, plan, fusion, target);
  expect(p.features.includes('subgroups'), `${what}: features ${p.features}`).toBe(uses);
  expect(Object.values(p.shaders).some((s) => /subgroup(Add|Max)\(/.test(s)), `${what}: a kernel calls subgroupAdd or subgroupMax`).toBe(uses);
}

/**
 * Runs `g` with `target` with and without subgroups: each within `tol` of the reference, and of
 * each other (reductions change order, so the two differ by f32 rounding, not bit for bit).
 */
async function compareBoth(g: Graph, feeds: Feeds, outs: readonly ValueId[], tol: Tolerance, what: string, target: KernelTarget, uses = true): Promise<void> {
  const sg = withSubgroups(target);
  expectSubgroups(g, outs, sg, what, uses);
  const ref = execute(g, feeds, 'f32');
  const plain = await runOnGpu(g, feeds, outs, undefined, undefined, target);
  const fast = await runOnGpu(g, feeds, outs, undefined, undefined, sg);
  outs.forEach((v, k) => {
    const label = `${what} output ${k} (${target.name} target`;
    expectWithin(fast.get(v)!, ref.values[v]!.data, tol, `${label}, subgroups, against the reference)`);
    expectWithin(fast.get(v)!, plain.get(v)!, tol, `${label}, subgroups against shared memory)`);
  });
}

async function compareOp<O extends Op>(op: O, ins: readonly HostTensor[], attrs: OpAttrs[O], tol: Tolerance, target: KernelTarget): Promise<void> {
  const { g, outs } = opGraph(op, ins, attrs);
  const inputs = Object.fromEntries(ins.map((t, i) => [`x${i}`, t]));
  await compareBoth(g, { inputs, params: {} }, outs, tol, `${op} ${ins.map((t) => `[${t.shape}]`).join(' ')} ${JSON.stringify(attrs)}`, target);
}

/** [rows, n]: rows below the cpu target's thread-per-row minimum (256), n around 8, 32 and 256 and past 4096 (256 threads a row). */
const rowShape = fc.tuple(fc.constantFrom(1, 2, 3, 7, 33), fc.constantFrom(1, 3, 7, 8, 9, 31, 33, 100, 255, 257, 1000, 4099));

const softmaxTol: Tolerance = { abs: 1e-6, rel: 1e-5 };
const normTol: Tolerance = { abs: 1e-5, rel: 1e-5 };

/** Rows with a standard deviation of at least 0.5 (see kernels-rows.test.ts: near-constant rows test rstd's amplification). */
function spread([rows, n]: readonly number[], s: number): HostTensor {
  const x = random([rows, n], s, (v) => v * 2 + 0.5);
  for (let r = 0; r < rows && n > 1; r++) {
    const row = x.data.subarray(r * n, (r + 1) * n) as Float32Array;
    const mean = row.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
    if (sd < 0.5) for (let j = 0; j < n; j++) row[j] = mean + (row[j] - mean) * (0.5 / Math.max(sd, 1e-3));
  }
  return x;
}

describe('row kernels with subgroups', () => {
  it('softmax, logSoftmax and their gradients match the reference and the shared-memory kernels', async () => {
    await fc.assert(fc.asyncProperty(rowShape, seed, targets, async (shape, s, target) => {
      const n = shape[1];
      await compareOp('softmax', [random(shape, s, undefined, 3)], {}, softmaxTol, target);
      await compareOp('logSoftmax', [random(shape, s, undefined, 3)], {}, { abs: 1e-5, rel: 1e-5 }, target);
      await compareOp('softmaxGrad', [random(shape, s, (v) => Math.exp(v) / n), random(shape, s + 1)], {}, { abs: 1e-5, rel: 1e-5 }, target);
      await compareOp('logSoftmaxGrad', [random(shape, s, (v) => -Math.abs(v) - 1), random(shape, s + 1)], {}, { abs: 1e-5, rel: 1e-5 }, target);
    }), runs(8));
  });

  it('crossEntropy and its gradient match, a row with a NaN logit included (the NaN must win the row max)', async () => {
    await fc.assert(fc.asyncProperty(rowShape, seed, targets, fc.boolean(), async ([rows, n], s, target, poison) => {
      const logits = random([rows, n], s, undefined, 3);
      const ids = randomTokens([rows], n, s + 1);
      if (poison) logits.data[(rows - 1) * n + (s % n)] = NaN; // the last row's max and sum are NaN
      await compareOp('crossEntropy', [logits, ids], {}, { abs: 1e-5, rel: 1e-5 }, target);
      await compareOp('crossEntropyGrad', [logits, ids, random([rows], s + 2)], {}, softmaxTol, target);
    }), runs(8));
  });

  it('layerNorm, rmsNorm and their gradients match', async () => {
    await fc.assert(fc.asyncProperty(rowShape, seed, targets, async (shape, s, target) => {
      const [rows, d] = shape;
      const x = spread(shape, s);
      // As kernels-rows.test.ts: column sums of `rows` terms; a row of one element has rstd 1/sqrt(eps).
      const gradTol = { abs: 1e-5 * Math.sqrt(rows) * (d === 1 ? 1 / Math.sqrt(1e-5) : 1), rel: 1e-5 };
      await compareOp('layerNorm', [x, random([d], s + 1), random([d], s + 2)], { eps: 1e-5 }, normTol, target);
      await compareOp('rmsNorm', [x, random([d], s + 1)], { eps: 1e-5 }, normTol, target);
      await compareOp('layerNormGrad', [x, random([d], s + 1), random(shape, s + 2)], { eps: 1e-5 }, gradTol, target);
      await compareOp('rmsNormGrad', [x, random([d], s + 1), random(shape, s + 2)], { eps: 1e-5 }, gradTol, target);
    }), runs(8));
  });

  it('the fused head and loss (online log-sum-exp over vocabulary chunks) match', async () => {
    const cases = fc.record({ tokens: fc.constantFrom(1, 3, 33), d: fc.constantFrom(3, 17), v: fc.constantFrom(9, 100, 300), chunkOf: fc.constantFrom(0.1, 0.5, 1), transW: fc.boolean() });
    await fc.assert(fc.asyncProperty(cases, seed, targets, async ({ tokens, d, v, chunkOf, transW }, s, target) => {
      const chunk = Math.max(1, Math.ceil(chunkOf * v));
      const g = new TestGraph('linearCrossEntropy');
      const h = g.input('h', [tokens, d]);
      const w = g.input('w', transW ? [v, d] : [d, v]);
      const ids = g.input('ids', [tokens], 'i32');
      const [loss, lse] = g.op('linearCrossEntropy', [h, w, ids], { transW, chunk });
      const [dh, dw] = g.op('linearCrossEntropyGrad', [h, w, ids, lse, g.input('dloss', [tokens])], { transW, chunk });
      const inputs = { h: random([tokens, d], s), w: random(transW ? [v, d] : [d, v], s + 1, undefined, 0.5), ids: randomTokens([tokens], v, s + 2), dloss: random([tokens], s + 3), zero: { shape: [], data: Float32Array.of(0) } };
      // emit-linear-ce.ts's tolerance: f32 dot products and chunk merges of a few hundred terms.
      await compareBoth(g.finish(g.input('zero', [])), { inputs, params: {} }, [loss, lse, dh, dw], { abs: 1e-4, rel: 1e-4 }, `linearCrossEntropy ${JSON.stringify({ tokens, d, v, chunk, transW })}`, target);
    }), runs(6));
  });
});

/** sum|x| per output bounds a sum's rounding (kernels-reduce.test.ts): 1e-6 of it. */
async function compareReduce(op: 'sum' | 'mean' | 'max', x: HostTensor, axes: number[], target: KernelTarget): Promise<void> {
  const { g, outs } = opGraph(op, [x], { axes, keepDims: false });
  const abs = execute(g, { inputs: { x0: { shape: x.shape, data: Float32Array.from(x.data, Math.abs) } }, params: {} }, 'f32').values[outs[0]]!.data;
  const scale = Math.max(0, ...Array.from(abs, (a) => (Number.isFinite(a) ? a : 0)));
  const tol = op === 'max' ? { abs: 0, rel: 0 } : { abs: 1e-6 * scale + 1e-30, rel: 0 };
  // Subgroups serve plans of one output per workgroup (tx = 1, reduce-kernel.ts); the others keep shared memory.
  const p = planReduce(x.shape, axes);
  const second = p.splits > 1 ? partialsPlan(p.outputs, p.splits, target) : undefined;
  const uses = (p.tx === 1 && p.ty > 1) || (second !== undefined && second.tx === 1 && second.ty > 1);
  await compareBoth(g, { inputs: { x0: x }, params: {} }, outs, tol, `${op} [${x.shape}] axes [${axes}]`, target, uses);
}

describe('reductions with subgroups', () => {
  it('sum, mean and max over trailing axes (and over everything) match the reference and the shared-memory kernels; plans of several outputs a workgroup use none', async () => {
    const shape = fc.tuple(fc.constantFrom(1, 2, 5, 33), fc.constantFrom(9, 31, 33, 100, 257, 5000));
    await fc.assert(fc.asyncProperty(shape, seed, targets, fc.constantFrom('sum', 'mean', 'max') as fc.Arbitrary<'sum' | 'mean' | 'max'>, fc.boolean(), async (sh, s, target, op, all) => {
      const x = random(sh, s);
      if (op === 'max' && s % 3 === 0) x.data[s % x.data.length] = NaN; // a NaN wins the max
      await compareReduce(op, x, all ? [0, 1] : [1], target);
    }), runs(12));
  });

  it('two-pass reductions (split through scratch) and sumSquares match', async () => {
    for (const target of [kernelTargets.cpu, kernelTargets.gpu]) {
      await compareReduce('sum', random([3, 70001], 4), [1], target);
      await compareReduce('mean', random([16, 1031], 3), [0, 1], target);
      await compareReduce('max', random([2, 40000], 5), [1], target);
      const x = random([768, 301], 7);
      const { g, outs } = opGraph('sumSquares', [x], {});
      await compareBoth(g, { inputs: { x0: x }, params: {} }, outs, { abs: 1e-30, rel: 1e-5 }, 'sumSquares [768, 301]', target);
    }
  });
});

describe('f16 storage with subgroups (the directives enable f16 and enable subgroups together)', () => {
  // kernels-f16.test.ts's tolerances: the f32 one plus one f16 step of the stored result (a sum's grows with sqrt(n)).
  const rows = { abs: 1e-5 + 2 ** -24, rel: 1e-5 + 2 ** -10 };
  for (const half of ['native', 'packed'] as const)
    it(`softmax, layerNorm, crossEntropy and a row sum match the reference f16 emulation (${half})`, async () => {
      const target = { ...withSubgroups(kernelTargets.cpu), half };
      const [r, n] = [3, 1031];
      const x = random([r, n], n);
      const ids = randomTokens([r], n, 5);
      const cases = [['softmax', [x], {}], ['layerNorm', [x, random([n], 9), random([n], 10)], { eps: 1e-5 }], ['crossEntropy', [x, ids], {}], ['sum', [x], { axes: [1], keepDims: false }]] as const;
      for (const [op, ins, attrs] of cases) {
        const { g, outs } = opGraph(op, ins, attrs as never, 'f16');
        expectSubgroups(g, outs, target, `${op} (f16 ${half})`);
        await compareF16(op, ins, attrs as never, op === 'sum' ? { abs: 2e-6 * Math.sqrt(n) * 4 + 2 ** -24, rel: 1e-5 + 2 ** -10 } : rows, target, 'f16');
      }
    });
});

describe('a gpt tiny training step with subgroups equals the reference executor after 3 steps (step.test.ts tolerance)', () => {
  for (const name of ['cpu', 'gpu'] as const)
    for (const optimizer of ['lomo', 'adamw'] as const) {
      const clipNorm = optimizer === 'lomo' ? 0.5 : undefined;
      it(`${name} target, ${optimizer}${clipNorm ? `, clip-norm ${clipNorm}` : ''}`, async () => {
        const c = compileProgram(gpt, { preset: 'tiny', optimizer, clipNorm, target: withSubgroups(kernelTargets[name]) });
        expect(c.program.features).toContain('subgroups');
        const run = await runBoth(await gpu(), c, { vocab: idRanges(c.step), seed: 7 });
        expect(stepMismatches(run, { rel: toleranceFor(optimizer) })).toEqual([]);
        expect(run.arenaBytes).toBe(c.plan.peak);
      });
    }
});

it('the harness device has the subgroups feature (lavapipe offers it): the tests above ran with it', async () => {
  expect((await gpu()).device.features.has('subgroups')).toBe(true);
});
