// Clipping and loss scaling in the optimizer step, on the reference executor (f32, inside each
// step's memory plan): the norm pass holds no dead work; loss scaling by a power of two is exact
// (equal, bit for bit, to the unscaled step) and an overflow skips the step leaving every param and
// state bit for bit unchanged; one-pass clipping ('previous') equals exact clipping where the
// previous norm is this step's norm and differs where it is not, and its LOMO step equals its SGD step.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { clipNormState, type StepOptions } from '../../compiler/passes/optimizer-step.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, gradientMemory } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';

type Options = Omit<StepOptions, 'optimizer'> & { dtype?: 'f32' | 'f16' };
type Hyper = { lr: number; weightDecay: number; lossScale?: number };

const modelFeeds = (def: ModelDef, seed: number) => {
  const cfg = resolveConfig(def, 'tiny');
  const { graph } = traceModel(def, cfg);
  const vocab = Number(cfg.vocab ?? cfg.classes);
  const base = randomFeeds(graph, seed, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
  return { graph, feeds: { ...base, params: initParams(graph, seed, 'f64') } };
};

/** One step of `optimizer` inside its plan; `state` overrides the zeroed state by name. */
function run(forward: Graph, feeds: Feeds, optimizer: string, opts: Options, hyper: Hyper, state: Record<string, HostTensor> = {}): StepResult {
  const built = buildStep(forward, { optimizer, master: false, ...opts });
  const f = stepFeeds(built.step, feeds, { ...hyper, step: 1 });
  return plannedStep(built, { ...f, state: { ...f.state, ...state } });
}

const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });
const paramBits = (r: StepResult) => Object.fromEntries(Object.entries(r.params).map(([k, t]) => [k, Array.from(t.data, (x) => Math.fround(x))]));

describe('the exact norm pass holds no dead work', () => {
  it('every pass-1 node makes a value something reads (gpt, llama tiny)', () => {
    for (const def of [gpt, llama]) {
      const { step } = buildStep(modelFeeds(def, 1).graph, { optimizer: 'lomo', clipNorm: 1 });
      const read = new Set(step.nodes.flatMap((n) => n.inputs));
      const dead = step.nodes.filter((n) => n.phase === 'norm' && !n.outputs.some((o) => read.has(o)));
      expect(dead.map((n) => `${n.op} %${n.outputs[0]}`)).toEqual([]);
    }
  });
});

describe('the LOMO schedule with one-pass clipping or loss scaling', () => {
  const modes: Options[] = [{ clipNorm: 0.5, clipMode: 'previous' }, { lossScale: true }, { lossScale: true, clipNorm: 0.5 }];
  it('never reads a param after its update, and holds at most one gradient (plus partial sums of tied params; a norm pass sharing none of its backward)', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...modes), ({ graph }, mode) => {
        const { step } = buildStep(graph, { optimizer: 'lomo', ...mode, shareNormPass: false });
        expect(freshnessViolations(step)).toEqual([]);
        const { most, allowed } = gradientMemory(step);
        expect(most).toBeLessThanOrEqual(allowed);
      }),
      { numRuns: 30 },
    ));
});

describe('loss scaling', () => {
  const clips: Options[] = [{}, { clipNorm: 0.05 }, { clipValue: 0.01 }];
  it('by a power of two equals the unscaled step bit for bit (random models; lomo, sgd, adamw; with and without clipping)', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom('lomo', 'sgd', 'adamw'), fc.constantFrom(...clips), fc.integer({ min: -6, max: 16 }), fc.integer(),
        ({ recipe, graph }, optimizer, clip, k, seed) => {
          const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
          const hyper = { lr: 0.1, weightDecay: 0.01 };
          const plain = run(graph, feeds, optimizer, clip, hyper);
          const scaled = run(graph, feeds, optimizer, { ...clip, lossScale: true }, { ...hyper, lossScale: 2 ** k });
          expect(bitDifferences(scaled, plain)).toEqual([]);
        }),
      { numRuns: 30 },
    ));

  it('under LOMO equals the SGD step with loss scaling, bit for bit (gpt tiny, clip-norm)', () => {
    const { graph, feeds } = modelFeeds(gpt, 3);
    const hyper = { lr: 0.1, weightDecay: 0.01, lossScale: 65536 };
    const sgd = buildStep(graph, { optimizer: 'sgd', clipNorm: 0.5, lossScale: true, master: false });
    const want = plainStep(sgd.step, stepFeeds(sgd.step, feeds, hyper));
    expect(bitDifferences(run(graph, feeds, 'lomo', { clipNorm: 0.5, lossScale: true }, hyper), want)).toEqual([]);
  });

  for (const [name, scale] of [['an infinite scale', Infinity], ['a scale that overflows f32 gradients', 3e38]] as const)
    it(`an overflow (${name}) skips the step: every param and state bit for bit unchanged`, () => {
      const { graph, feeds } = modelFeeds(gpt, 4);
      for (const [optimizer, clip] of [['lomo', {}], ['lomo', { clipNorm: 1 }], ['sgd', {}], ['adamw', { clipNorm: 1 }]] as const) {
        const built = buildStep(graph, { optimizer, master: false, lossScale: true, ...clip });
        const f = stepFeeds(built.step, feeds, { lr: 0.1, weightDecay: 0.1, lossScale: scale });
        const state = Object.fromEntries(Object.entries(f.state!).map(([k, t]) => [k, { shape: t.shape, data: t.data.map((_, i) => 0.25 + i * 1e-3) }]));
        const got = plannedStep(built, { ...f, state });
        const before: StepResult = { loss: got.loss, params: { ...f.params }, state };
        expect(bitDifferences(got, before), `${optimizer} ${JSON.stringify(clip)}`).toEqual([]);
      }
    });

  it('in f16 storage: a scale that overflows f16 gradients skips, one that does not updates', () => {
    const { graph, feeds } = modelFeeds(gpt, 6);
    const built = buildStep(graph, { optimizer: 'lomo', master: false, lossScale: true, clipNorm: 1, dtype: 'f16' });
    const at = (lossScale: number) => plannedStep(built, stepFeeds(built.step, feeds, { lr: 0.1, weightDecay: 0, lossScale }));
    const fed = execute(built.step, stepFeeds(built.step, feeds, { lr: 0.1, weightDecay: 0, lossScale: 1 }), 'f32');
    const old = Object.fromEntries(built.step.params.map((p) => [p.name, fed.values[p.value]!]));
    const unchanged = (r: StepResult) => bitDifferences({ ...r, state: {} }, { loss: r.loss, params: old, state: {} }).length === 0;
    expect(unchanged(at(2 ** 40))).toBe(true); // past f16's 65504
    expect(unchanged(at(1024))).toBe(false);
  });
});

describe("one-pass clipping ('previous', approximate)", () => {
  const hyper = { lr: 0.1, weightDecay: 0.01 };
  it('under LOMO equals the SGD step with the same mode, bit for bit (random models)', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.double({ min: 0, max: 2, noNaN: true }), fc.integer(), ({ recipe, graph }, prev, seed) => {
        const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
        const opts = { clipNorm: 0.05, clipMode: 'previous' as const };
        const state = { [clipNormState]: scalar(prev) };
        expect(bitDifferences(run(graph, feeds, 'lomo', opts, hyper, state), run(graph, feeds, 'sgd', opts, hyper, state))).toEqual([]);
      }),
      { numRuns: 30 },
    ));

  it("stores this step's norm: the square root of the sum of every squared gradient", () => {
    const { graph, feeds } = modelFeeds(gpt, 2);
    const plain = buildStep(graph, { optimizer: 'sgd' });
    const exec = execute(plain.step, stepFeeds(plain.step, feeds, hyper), 'f32');
    let total = 0;
    for (const v of Object.values(plain.step.grads!)) for (const x of exec.values[v]!.data) total += x * x;
    const got = run(graph, feeds, 'lomo', { clipNorm: 1, clipMode: 'previous' }, hyper).state[clipNormState].data[0];
    // The running sum adds f32 partial sums, so within f32 rounding of the f64 norm.
    expect(Math.abs(got - Math.sqrt(total))).toBeLessThanOrEqual(1e-6 * Math.sqrt(total));
  });

  it('equals exact clipping when the previous norm is this step\'s (the norm does not change): params within 1e-6', () => {
    const { graph, feeds } = modelFeeds(gpt, 2);
    const norm = run(graph, feeds, 'lomo', { clipNorm: 1, clipMode: 'previous' }, hyper).state[clipNormState].data[0];
    const exact = paramBits(run(graph, feeds, 'lomo', { clipNorm: 0.05 }, hyper));
    const previous = paramBits(run(graph, feeds, 'lomo', { clipNorm: 0.05, clipMode: 'previous' }, hyper, { [clipNormState]: scalar(norm) }));
    for (const [name, want] of Object.entries(exact))
      want.forEach((w, i) => expect(Math.abs(previous[name][i] - w), `${name}[${i}]`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(w))));
  });

  it('differs where the norm changed: a stale previous norm clips early updates by it; the last update by the whole norm is exact', () => {
    const { graph, feeds } = modelFeeds(gpt, 2);
    const norm = run(graph, feeds, 'lomo', { clipNorm: 1, clipMode: 'previous' }, hyper).state[clipNormState].data[0];
    const built = buildStep(graph, { optimizer: 'lomo', clipNorm: 0.05, shareNormPass: false }); // updates in completion order
    const exact = paramBits(run(graph, feeds, 'lomo', { clipNorm: 0.05 }, hyper));
    // A spike: the previous norm a tenth of this one. Updates made before the running norm reached it differ...
    const spike = paramBits(run(graph, feeds, 'lomo', { clipNorm: 0.05, clipMode: 'previous' }, hyper, { [clipNormState]: scalar(norm / 10) }));
    const differing = Object.keys(exact).filter((n) => exact[n].some((w, i) => w !== spike[n][i]));
    expect(differing.length).toBeGreaterThan(0);
    // ...while the param whose gradient completes last sees the whole norm: exactly the exact update.
    const at = new Map(built.step.nodes.map((n, i) => [n.outputs[0], i]));
    const last = Object.entries(built.step.updates!).sort((a, b) => at.get(b[1])! - at.get(a[1])!)[0][0];
    expect(differing).not.toContain(last);
  });

  it('is an error with loss scaling, or without --clip-norm', () => {
    const { graph } = modelFeeds(gpt, 1);
    expect(() => buildStep(graph, { optimizer: 'lomo', clipNorm: 1, clipMode: 'previous', lossScale: true })).toThrow(
      '--clip-mode previous: loss scaling must find an overflow in the whole gradient before the first update, which a one-pass clip cannot; use --clip-mode exact with --loss-scale',
    );
    expect(() => buildStep(graph, { optimizer: 'lomo', clipMode: 'previous' })).toThrow('--clip-mode previous: it chooses how --clip-norm clips; give --clip-norm too');
  });
});
