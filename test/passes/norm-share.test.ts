// A two-pass clip-norm step sharing the top of its backward between the passes (passes/norm-share.ts,
// optimizer-step.ts's `share`): every amount shared gives the plain clipped SGD step's bits (f32
// reference executor, inside LOMO's plan), with checkpointing, loss scaling, clip-value and
// accumulation; an overflow still skips every update; the chosen amount never raises the planned
// peak above sharing none; the shared top runs once (pass 2 computes those gradients no second time).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { accumulateMicroBatches } from '../../compiler/passes/accumulate.ts';
import type { CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import { chooseNormShare, describeNormShare, scanCuts, shareCuts } from '../../compiler/passes/norm-share.ts';
import { compileForward, type StepConfig } from '../../compiler/pipeline.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, gradientMemory, gradsNotFreedByUpdate, planViolations } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';

type Opts = Omit<StepConfig, 'optimizer'>;
const hyper = { lr: 0.1, weightDecay: 0.01 };

const modelFeeds = (def: ModelDef, seed: number, sets: string[] = []) => {
  const cfg = resolveConfig(def, 'tiny', sets);
  const { graph } = traceModel(def, cfg);
  const vocab = Number(cfg.vocab ?? cfg.classes);
  const base = randomFeeds(graph, seed, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
  return { graph, feeds: { ...base, params: initParams(graph, seed, 'f64') } };
};

const build = (graph: Graph, optimizer: string, opts: Opts) => compileForward(graph, { optimizer, master: false, verifyEach: true, ...opts });

/** LOMO sharing `share` gradients, in its plan, vs SGD unplanned: the bit differences, and the LOMO step. */
function lomoVsSgd(graph: Graph, feeds: Feeds, opts: Opts, share: number | boolean, scale = 1) {
  const lomo = build(graph, 'lomo', { ...opts, shareNormPass: share });
  const sgd = build(graph, 'sgd', { ...opts, checkpoint: undefined });
  const h = { ...hyper, lossScale: scale };
  const want = plainStep(sgd.step, stepFeeds(sgd.step, feeds, h));
  const got = plannedStep(lomo, stepFeeds(lomo.step, feeds, h));
  return { diff: bitDifferences(got, want), lomo };
}

const checkpoints: (CheckpointPolicy | undefined)[] = [undefined, { kind: 'sqrt' }, { kind: 'blocks' }, { kind: 'blocks', runs: 2 }];
const norms: Opts[] = [{ clipNorm: 0.05 }, { clipNorm: 0.05, lossScale: true }, { lossScale: true }, { clipNorm: 0.05, clipValue: 0.01 }];

describe('sharing the top of the backward keeps the clipped SGD step bit for bit', () => {
  it('on random models, any amount shared, with and without checkpointing and loss scaling', () => {
    let shared = 0;
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...norms), fc.constantFrom(...checkpoints), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer(),
        ({ recipe, graph }, norm, checkpoint, at, seed) => {
          if (checkpoint?.kind === 'blocks' && recipe.blockSize === 0) checkpoint = { kind: 'sqrt' };
          const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
          const k = Math.round(at * graph.params.length);
          const { diff, lomo } = lomoVsSgd(graph, feeds, { ...norm, checkpoint }, k, norm.lossScale ? 8 : 1);
          expect(diff).toEqual([]);
          expect(lomo.normShare).toEqual({ shared: k, of: lomo.step.params.length, tried: 0 });
          expect(freshnessViolations(lomo.step)).toEqual([]);
          // Gradients held at once: LOMO's one (plus tied partial sums), and the shared ones stored for their updates.
          const { most, allowed } = gradientMemory(lomo.step);
          expect(most).toBeLessThanOrEqual(allowed);
          expect(gradsNotFreedByUpdate(lomo.step)).toEqual([]);
          expect(planViolations(lomo.plan)).toEqual([]);
          shared += k;
        }),
      { numRuns: 40 },
    );
    expect(shared).toBeGreaterThan(0);
  });

  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const)
    for (const checkpoint of checkpoints)
      it(`${name} tiny, every block boundary shared, checkpoint ${checkpoint ? JSON.stringify(checkpoint) : 'none'}, clip-norm with loss scaling`, () => {
        const { graph, feeds } = modelFeeds(def, 3);
        for (const k of [0, ...shareCuts(compileForward(graph, { optimizer: 'sgd' }).step)])
          expect(lomoVsSgd(graph, feeds, { clipNorm: 0.5, lossScale: true, checkpoint }, k, 1024).diff, `share ${k}`).toEqual([]);
      });

  it('in f16 storage with loss scaling (gpt tiny, no master copy): every block boundary shared equals clipped SGD', () => {
    const { graph, feeds } = modelFeeds(gpt, 11);
    for (const k of [0, ...shareCuts(compileForward(graph, { optimizer: 'sgd' }).step)])
      expect(lomoVsSgd(graph, feeds, { clipNorm: 0.5, lossScale: true, dtype: 'f16' }, k, 256).diff, `share ${k}`).toEqual([]);
  });

  it('AdaLomo (two-pass too, with state): every block boundary shared equals sharing none, bit for bit, state included (gpt tiny, blocks)', () => {
    const { graph, feeds } = modelFeeds(gpt, 8);
    const run = (share: number | boolean) => {
      const c = build(graph, 'adalomo', { clipNorm: 0.5, checkpoint: { kind: 'blocks' }, shareNormPass: share });
      return plannedStep(c, stepFeeds(c.step, feeds, { ...hyper, step: 1 }));
    };
    const none = run(false);
    for (const k of shareCuts(compileForward(graph, { optimizer: 'sgd' }).step)) expect(bitDifferences(run(k), none), `share ${k}`).toEqual([]);
  });

  it('with --accumulate 2 (gpt tiny, the step made by the pipeline with its own choice)', () => {
    const { graph: full } = traceModel(gpt, resolveConfig(gpt, 'tiny', ['batch=4']));
    const micro = accumulated(2);
    const feeds = { ...randomFeeds(full, 5, { vocab: { tokens: 32, targets: 32 } }), params: initParams(full, 5, 'f64') };
    for (const share of [true, 7, false] as const) {
      const lomo = build(micro, 'lomo', { clipNorm: 0.5, shareNormPass: share });
      const sgd = build(micro, 'sgd', { clipNorm: 0.5 });
      expect(bitDifferences(plannedStep(lomo, stepFeeds(lomo.step, feeds, hyper)), plainStep(sgd.step, stepFeeds(sgd.step, feeds, hyper))), `share ${share}`).toEqual([]);
    }
  });

  for (const [name, scale] of [['an infinite scale', Infinity], ['a scale that overflows f32 gradients', 3e38]] as const)
    it(`an overflow (${name}) skips the step with the top shared: every param and state bit for bit unchanged`, () => {
      const { graph, feeds } = modelFeeds(gpt, 4);
      for (const share of [true, 5, 36]) {
        const built = build(graph, 'lomo', { clipNorm: 1, lossScale: true, shareNormPass: share });
        expect(built.normShare!.shared).toBeGreaterThan(0);
        const f = stepFeeds(built.step, feeds, { ...hyper, lossScale: scale });
        const got = plannedStep(built, f);
        const before: StepResult = { loss: got.loss, params: { ...f.params }, state: got.state };
        expect(bitDifferences(got, before), `share ${share}`).toEqual([]);
      }
    });
});

/** gpt tiny at 2 micro-batches of 2 (the pipeline's --accumulate 2 forward). */
function accumulated(k: number): Graph {
  const { graph } = traceModel(gpt, resolveConfig(gpt, 'tiny'));
  const { graph: full } = traceModel(gpt, resolveConfig(gpt, 'tiny', [`batch=${2 * k}`]));
  return accumulateMicroBatches(graph, full, k, 2);
}

describe('the amount shared is chosen by the plan', () => {
  const peakCheck = (graph: Graph, opts: Opts) => {
    const on = build(graph, 'lomo', opts);
    const off = build(graph, 'lomo', { ...opts, shareNormPass: false });
    expect(on.plan.peak).toBeLessThanOrEqual(off.plan.peak);
    expect(off.normShare!.shared).toBe(0);
    return on.normShare!;
  };

  it('never raises the planned peak above sharing none (random models, with and without checkpointing)', () => {
    let shared = 0;
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...norms), fc.constantFrom(...checkpoints), ({ recipe, graph }, norm, checkpoint) => {
        if (checkpoint?.kind === 'blocks' && recipe.blockSize === 0) checkpoint = { kind: 'sqrt' };
        shared += peakCheck(graph, { ...norm, checkpoint }).shared;
      }),
      { numRuns: 40 },
    );
    expect(shared).toBeGreaterThan(0);
  });

  // What is shared: gpt/llama tiny share everything without checkpointing (a block's activations
  // outweigh its gradients: the plain clipped step's peak, which is lower), little with blocks.
  const cases: [string, ModelDef, CheckpointPolicy | undefined, number, number][] = [
    ['gpt', gpt, undefined, 36, 36], ['gpt', gpt, { kind: 'blocks' }, 2, 36],
    ['llama', llama, undefined, 21, 21], ['llama', llama, { kind: 'blocks' }, 0, 21],
  ];
  for (const [name, def, checkpoint, shared, of] of cases)
    it(`${name} tiny, checkpoint ${checkpoint?.kind ?? 'none'}: shares ${shared} of ${of} gradients, the peak no higher`, () => {
      const { graph } = modelFeeds(def, 1);
      expect(peakCheck(graph, { clipNorm: 1, checkpoint })).toMatchObject({ shared, of });
    });

  it('checkpoint budget=SIZE: the budget\'s choice is kept, and the peak with sharing is within it (gpt tiny)', () => {
    const { graph } = modelFeeds(gpt, 1);
    const most = build(graph, 'lomo', { clipNorm: 1, shareNormPass: false }).plan.peak;
    const least = build(graph, 'lomo', { clipNorm: 1, shareNormPass: false, checkpoint: { kind: 'blocks' } }).plan.peak;
    const checkpoint = { kind: 'budget', bytes: Math.floor((most + least) / 2) } as const;
    const on = build(graph, 'lomo', { clipNorm: 1, checkpoint });
    expect(on.checkpointDetail).toBe(build(graph, 'lomo', { clipNorm: 1, checkpoint, shareNormPass: false }).checkpointDetail);
    expect(peakCheck(graph, { clipNorm: 1, checkpoint }).of).toBe(36);
    expect(on.plan.peak).toBeLessThanOrEqual(checkpoint.bytes);
  });

  it('sharing every gradient runs the backward once: no norm-only clone, the clipped SGD step\'s nodes', () => {
    const { graph } = modelFeeds(gpt, 1);
    const all = build(graph, 'lomo', { clipNorm: 1 });
    const none = build(graph, 'lomo', { clipNorm: 1, shareNormPass: false });
    const sgd = build(graph, 'sgd', { clipNorm: 1 });
    expect(all.normShare).toMatchObject({ shared: 36, of: 36 });
    const matmuls = (c: { step: Graph }) => c.step.nodes.filter((n) => n.op === 'matmul' || n.op === 'linearCrossEntropyGrad').length;
    expect(matmuls(all)).toBe(matmuls(sgd));
    expect(matmuls(none)).toBeGreaterThan(matmuls(sgd));
    expect(all.step.nodes.filter((n) => n.phase === 'backward')).toEqual([]);
    expect(all.plan.peak).toBe(sgd.plan.peak);
  });

  it('chooseNormShare, up to scanCuts cuts: the longest that fits, each planned from the longest down', () => {
    const bumpy = (k: number) => (k === 0 || k === 1 || k === 5 ? 10 : 12);
    expect(chooseNormShare([1, 3, 5, 8], 8, bumpy)).toEqual({ shared: 5, of: 8, tried: 2 });
    expect(chooseNormShare([1, 3, 5, 8], 8, () => 10)).toEqual({ shared: 8, of: 8, tried: 1 });
    expect(chooseNormShare([1, 3, 5, 8], 8, (k) => (k === 0 ? 10 : 11))).toEqual({ shared: 0, of: 8, tried: 4 });
    expect(chooseNormShare([], 0, () => 10)).toEqual({ shared: 0, of: 0, tried: 0 });
  });

  it('chooseNormShare, past scanCuts: all when all fit; none when the smallest cut does not; else bisection to a cut that fits', () => {
    const cuts = Array.from({ length: 2 * scanCuts }, (_, i) => 2 * i + 1);
    const of = cuts.at(-1)!;
    const peaks = (fit: number) => (k: number) => (k <= fit ? 10 : 11);
    expect(chooseNormShare(cuts, of, peaks(of))).toEqual({ shared: of, of, tried: 1 });
    expect(chooseNormShare(cuts, of, peaks(0))).toEqual({ shared: 0, of, tried: 2 });
    for (const fit of cuts.slice(0, -1)) expect(chooseNormShare(cuts, of, peaks(fit)).shared).toBe(fit);
    expect(chooseNormShare(cuts, of, peaks(cuts[5])).tried).toBeLessThanOrEqual(2 + Math.ceil(Math.log2(cuts.length)));
    // A peak that is not monotone: what is chosen was planned and fits, though a longer cut fits too.
    const bumpy = (k: number) => (k <= 3 || k === of - 2 ? 10 : 12);
    expect(chooseNormShare(cuts, of, bumpy).shared).toBe(3);
  });

  it('the report line says how much is shared, and why none', () => {
    expect(describeNormShare({ shared: 12, of: 36, tried: 3 })).toBe(
      'shares the top 12 of 36 gradients with pass 2: computed once and stored for their updates (planned peak no higher than sharing none)');
    expect(describeNormShare({ shared: 36, of: 36, tried: 1 })).toBe(
      'shares all 36 gradients with pass 2: the backward runs once, as in the clipped SGD step (planned peak no higher than cloning it)');
    expect(describeNormShare({ shared: 0, of: 291, tried: 2 })).toBe('shares none of its 291 gradients with pass 2: sharing even the top would raise the planned peak');
    expect(describeNormShare({ shared: 0, of: 36, tried: 0 })).toBe('shares none of its 36 gradients with pass 2');
  });

  it('cuts fall where a block\'s gradients are complete (gpt tiny: ln_f, 2 blocks of 16, the embeddings wpe and wte: tied to the head, wte completes last)', () => {
    const { graph } = modelFeeds(gpt, 1);
    expect(shareCuts(compileForward(graph, { optimizer: 'sgd' }).step)).toEqual([2, 18, 34, 36]);
  });
});
