// The training step: LOMO equals the plain SGD step bit for bit (f32 reference executor, run
// inside LOMO's memory plan), with and without clipping; the schedule keeps params fresh and
// frees each gradient at its update; LOMO holds one gradient at a time.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import type { StepOptions } from '../../compiler/passes/optimizer-step.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { initParams } from '../../compiler/reference/init.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds } from '../support/step.ts';
import { freshnessViolations, gradientMemory, gradsNotFreedByUpdate } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';

type Clip = Pick<StepOptions, 'clipNorm' | 'clipValue'>;
const clips: [string, Clip][] = [['no clipping', {}], ['clip-norm', { clipNorm: 0.05 }], ['clip-value', { clipValue: 0.01 }]];
const clipArb = fc.constantFrom(...clips.map(([, c]) => c));
const hyperArb = fc.record({
  lr: fc.double({ min: 1e-3, max: 0.5, noNaN: true }),
  weightDecay: fc.constantFrom(0, 0.01, 0.1),
});

/** LOMO in its plan vs plain SGD unplanned, on one graph and feeds. */
function lomoMatchesSgd(forward: Graph, feeds: ReturnType<typeof randomFeeds>, clip: Clip, hyper: { lr: number; weightDecay: number }, dtype: 'f32' | 'f16' = 'f32') {
  const lomo = buildStep(forward, { optimizer: 'lomo', ...clip, dtype, master: false });
  const sgd = buildStep(forward, { optimizer: 'sgd', ...clip, dtype, master: false });
  const want = plainStep(sgd.step, stepFeeds(sgd.step, feeds, hyper));
  const got = plannedStep(lomo, stepFeeds(lomo.step, feeds, hyper));
  expect(bitDifferences(got, want)).toEqual([]);
  return lomo;
}

const modelFeeds = (def: ModelDef, seed: number) => {
  const cfg = resolveConfig(def, 'tiny');
  const { graph } = traceModel(def, cfg);
  const vocab = Number(cfg.vocab ?? cfg.classes);
  const base = randomFeeds(graph, seed, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
  return { graph, feeds: { ...base, params: initParams(graph, seed, 'f64') } };
};

describe('LOMO step equals the plain SGD step, bit for bit', () => {
  it('on random models, with and without clipping', () =>
    fc.assert(
      fc.property(arbitraryModel, clipArb, hyperArb, fc.integer(), ({ recipe, graph }, clip, hyper, seed) => {
        const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
        lomoMatchesSgd(graph, feeds, clip, hyper);
      }),
      { numRuns: 40 },
    ));

  for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as const) {
    for (const [clipName, clip] of clips) {
      it(`${name} (tiny), ${clipName}`, () => {
        const { graph, feeds } = modelFeeds(def, 5);
        lomoMatchesSgd(graph, feeds, clip, { lr: 0.1, weightDecay: 0.01 });
      });
    }
  }

  it('in f16 storage too (no master copy on either side)', () => {
    const { graph, feeds } = modelFeeds(gpt, 9);
    lomoMatchesSgd(graph, feeds, {}, { lr: 0.1, weightDecay: 0 }, 'f16');
  });
});

describe('the plan holds the baselines exactly too', () => {
  for (const optimizer of ['sgd', 'adamw'] as const) {
    it(`${optimizer}: the step run inside its plan equals the unplanned step`, () =>
      fc.assert(
        fc.property(arbitraryModel, clipArb, fc.integer(), ({ recipe, graph }, clip, seed) => {
          const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
          const built = buildStep(graph, { optimizer, ...clip });
          const f = stepFeeds(built.step, feeds, { lr: 0.05, weightDecay: 0.01, step: 3 });
          expect(bitDifferences(plannedStep(built, f), plainStep(built.step, f))).toEqual([]);
        }),
        { numRuns: 20 },
      ));
  }
});

describe('the LOMO schedule', () => {
  const each = (f: (g: Graph) => void) =>
    fc.assert(
      fc.property(arbitraryModel, clipArb, ({ graph }, clip) => f(buildStep(graph, { optimizer: 'lomo', ...clip }).step)),
      { numRuns: 60 },
    );
  it('never reads a param after its update', () => each((g) => {
      expect(freshnessViolations(g)).toEqual([]);
    }));
  it('frees every gradient at its update (or its squared norm in pass 1)', () =>
    each((g) => {
      expect(gradsNotFreedByUpdate(g)).toEqual([]);
    }));
  it('holds at most one gradient, plus partial sums of tied params', () =>
    each((g) => {
      const { most, allowed } = gradientMemory(g);
      expect(most).toBeLessThanOrEqual(allowed);
    }));
  it('the textbook SGD order holds every gradient at once (what LOMO saves)', () => {
    const { graph } = modelFeeds(llama, 1);
    const sgd = gradientMemory(buildStep(graph, { optimizer: 'sgd' }).step);
    const lomo = gradientMemory(buildStep(graph, { optimizer: 'lomo' }).step);
    const paramBytes = graph.params.reduce((a, p) => a + graph.values[p.value].shape.reduce((x, y) => x * y, 4), 0);
    expect(sgd.most).toBe(paramBytes);
    expect(lomo.most).toBeLessThan(sgd.most / 4);
  });
});
