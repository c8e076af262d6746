// Activation checkpointing changes no bit of the step, keeps the peak within a feasible budget,
// and `sqrt` keeps O(sqrt n) segment outputs with at most one extra forward.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as L from '../../compiler/dsl/index.ts';
import { LomocError } from '../../compiler/diagnostics.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { nestCapacity, nestedRuns, parseCheckpointPolicy, taperedRuns, type CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { initParams } from '../../compiler/reference/init.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds } from '../support/step.ts';
import { freshnessViolations, planViolations } from '../support/step-checks.ts';
import { randomFeeds, traceFn } from '../support/trace.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';

const hyper = { lr: 0.05, weightDecay: 0.01, step: 2 };

/** The checkpointed step in its plan vs the plain step without checkpointing (LOMO's plain step is SGD's). */
function sameAsWithout(graph: Graph, feeds: Feeds, optimizer: OptimizerName, checkpoint: CheckpointPolicy, clipNorm?: number) {
  const built = buildStep(graph, { optimizer, checkpoint, clipNorm });
  const plain = buildStep(graph, { optimizer: optimizer === 'lomo' ? 'sgd' : optimizer, clipNorm });
  expect(bitDifferences(plannedStep(built, stepFeeds(built.step, feeds, hyper)), plainStep(plain.step, stepFeeds(plain.step, feeds, hyper)))).toEqual([]);
  expect(freshnessViolations(built.step)).toEqual([]);
  return built;
}

const policies: CheckpointPolicy[] = [{ kind: 'blocks' }, { kind: 'sqrt' }, { kind: 'blocks', runs: 2 }, { kind: 'blocks', levels: 3 }];
const optimizers: OptimizerName[] = ['lomo', 'sgd', 'adamw'];

describe('checkpointing changes no result (bit for bit, f32, inside the plan)', () => {
  it('random models: every policy, optimizer, with and without clip-norm', () =>
    fc.assert(
      fc.property(
        arbitraryModel.filter(({ recipe }) => recipe.blockSize > 0),
        fc.constantFrom(...policies),
        fc.constantFrom(...optimizers),
        fc.option(fc.constant(0.05)),
        fc.integer(),
        ({ recipe, graph }, policy, optimizer, clipNorm, seed) => {
          const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
          sameAsWithout(graph, feeds, optimizer, policy, clipNorm ?? undefined);
        },
      ),
      { numRuns: 60 },
    ));

  for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as const) {
    it(`${name} (tiny): blocks, sqrt and a budget, under lomo, sgd and adamw, with and without clip-norm`, () => {
      const cfg = resolveConfig(def as ModelDef, 'tiny');
      const { graph } = traceModel(def as ModelDef, cfg);
      const vocab = Number(cfg.vocab ?? cfg.classes);
      const feeds = { ...randomFeeds(graph, 4, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) }), params: initParams(graph, 4, 'f64') };
      for (const optimizer of optimizers)
        for (const clipNorm of [undefined, 0.05]) {
          const none = buildStep(graph, { optimizer, clipNorm }).plan.peak;
          const least = buildStep(graph, { optimizer, clipNorm, checkpoint: { kind: 'blocks' } }).plan.peak;
          for (const policy of [...policies, { kind: 'budget', bytes: Math.floor((none + least) / 2) } as const]) {
            const built = sameAsWithout(graph, feeds, optimizer, policy, clipNorm);
            if (policy.kind !== "budget") expect(built.recomputeRatio).toBeGreaterThan(0);
          }
        }
    });
  }
});

describe('budget', () => {
  it('a feasible budget is met with the fewest recomputed units; an infeasible one names the smallest', () =>
    fc.assert(
      fc.property(arbitraryModel.filter(({ recipe }) => recipe.blockSize > 0), fc.constantFrom(...optimizers), fc.double({ min: 0, max: 1, noNaN: true }), ({ graph }, optimizer, t) => {
        const none = buildStep(graph, { optimizer }).plan.peak;
        const least = Math.min(
          buildStep(graph, { optimizer, checkpoint: { kind: 'blocks' } }).plan.peak,
          buildStep(graph, { optimizer, checkpoint: { kind: 'sqrt' } }).plan.peak,
        );
        const budget = Math.floor(least + t * (none - least));
        const built = buildStep(graph, { optimizer, checkpoint: { kind: 'budget', bytes: budget } });
        expect(built.plan.peak).toBeLessThanOrEqual(budget);
        expect(planViolations(built.plan)).toEqual([]);
      }),
      { numRuns: 40 },
    ));

  it('an infeasible budget is a clear error stating the smallest budget, which then fits', () => {
    const { graph } = traceModel(gpt as ModelDef, resolveConfig(gpt as ModelDef, 'tiny'));
    let message = '';
    try {
      buildStep(graph, { optimizer: 'lomo', checkpoint: { kind: 'budget', bytes: 1000 } });
    } catch (e) {
      expect(e).toBeInstanceOf(LomocError);
      message = (e as Error).message;
    }
    const m = /^error: --checkpoint budget=0\.98KiB: the lomo step cannot fit; the smallest peak lomoc can plan is [0-9.]+KiB \(.+ recomputed\): use --checkpoint budget=(\d+)KiB or more$/.exec(message);
    expect(m, message).not.toBeNull();
    const built = buildStep(graph, { optimizer: 'lomo', checkpoint: parseCheckpointPolicy(`budget=${m![1]}KiB`) });
    expect(built.plan.peak).toBeLessThanOrEqual(Number(m![1]) * 2 ** 10);
  });

  it('parses sizes and rejects nonsense', () => {
    expect(parseCheckpointPolicy('budget=14GiB')).toEqual({ kind: 'budget', bytes: 14 * 2 ** 30 });
    expect(parseCheckpointPolicy('budget=1.5MB')).toEqual({ kind: 'budget', bytes: 1.5e6 });
    expect(() => parseCheckpointPolicy('budget=lots')).toThrow(
      "--checkpoint: expected none, blocks, sqrt or budget=SIZE (SIZE like 14GiB), got 'budget=lots'",
    );
  });
});

/** n blocks of tanh(tanh(x) W_i): a chain whose block outputs, [4, 8] each, are the only values crossing blocks. */
const chain = (n: number) =>
  traceFn(() => {
    let x = L.input('x', [4, 8]);
    for (let i = 0; i < n; i++) {
      const w = L.param(`w${i}`, [8, 8], L.fanIn());
      x = L.block(`b${i}`, () => L.tanh(L.matmul(L.tanh(x), w)));
    }
    return L.mean(L.mul(x, x));
  }, 'chain');

/** The [4, 8] values forward makes and a later phase reads: the block outputs kept through forward. */
const savedInputs = (step: Graph) => {
  const forwardMade = new Set(step.nodes.filter((x) => x.phase === 'forward').flatMap((x) => x.outputs));
  return new Set(step.nodes.filter((x) => x.phase !== 'forward').flatMap((x) => x.inputs).filter((v) => forwardMade.has(v) && step.values[v].shape.length === 2 && step.values[v].shape[0] === 4));
};

describe('sqrt on a chain of n equal segments', () => {

  it('keeps O(sqrt n) segment outputs and recomputes at most one extra forward', () =>
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.constantFrom(...optimizers), (n, optimizer) => {
        const g = chain(n);
        const built = buildStep(g, { optimizer, checkpoint: { kind: 'sqrt' } });
        // Saved: forward values still read by backward-half nodes (recompute, backward, updates).
        const saved = savedInputs(built.step);
        expect(saved.size).toBeLessThanOrEqual(Math.ceil(Math.sqrt(n)) + 2);
        expect(built.recomputeRatio).toBeLessThanOrEqual(1);
        const recomputes = built.step.nodes.filter((x) => x.phase === 'recompute').length;
        expect(recomputes).toBeLessThanOrEqual(built.step.nodes.filter((x) => x.phase === 'forward').length);
      }),
      { numRuns: 30 },
    ));
});

describe('blocks,runs=K on a chain of n blocks', () => {

  it('keeps a block input only every K blocks (n/K + 2 saved, not n) and recomputes more than blocks, at most two extra forwards', () =>
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 24 }), fc.integer({ min: 2, max: 6 }), fc.constantFrom(...optimizers), (n, k, optimizer) => {
        const built = buildStep(chain(n), { optimizer, checkpoint: { kind: 'blocks', runs: k } });
        const saved = savedInputs(built.step);
        expect(saved.size).toBeLessThanOrEqual(Math.ceil(n / k) + 2);
        expect(built.recomputeRatio).toBeLessThanOrEqual(2);
        expect(built.recomputeRatio).toBeGreaterThan(buildStep(chain(n), { optimizer, checkpoint: { kind: 'blocks' } }).recomputeRatio);
      }),
      { numRuns: 30 },
    ), 60_000);
});

describe('blocks,levels=L on a chain of n blocks', () => {
  it('keeps at most b + 2 block inputs through forward (the least b whose capacity covers n) and recomputes at most L more forwards', () =>
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 20 }), fc.integer({ min: 2, max: 4 }), fc.constantFrom(...optimizers), (n, levels, optimizer) => {
        const built = buildStep(chain(n), { optimizer, checkpoint: { kind: 'blocks', levels } });
        const saved = savedInputs(built.step);
        let b = 1;
        while (nestCapacity(b, levels) < n) b++;
        expect(saved.size).toBeLessThanOrEqual(b + 2);
        expect(built.recomputeRatio).toBeLessThanOrEqual(levels);
      }),
      { numRuns: 30 },
    ), 60_000);
});

describe('tapered runs', () => {
  // The checkpoints live while run t (0 = top) is recomputed: the inputs of the runs below it, and
  // its own blocks' inputs. The oracle: the least such bound over every split of n blocks into r
  // runs (exhaustive, small n).
  const liveMost = (sizes: readonly number[]) => Math.max(...sizes.map((s, t) => sizes.length - 1 - t + s));
  const best = (n: number, r: number): number => {
    let least = Infinity;
    const go = (left: number, runs: number[]) => {
      if (runs.length === r) {
        if (left === 0) least = Math.min(least, liveMost(runs));
        return;
      }
      for (let s = 1; s <= left - (r - runs.length - 1); s++) go(left - s, [...runs, s]);
    };
    go(n, []);
    return least;
  };
  it('covers the blocks in order, in ceil(n/k) runs growing downward, with the least live checkpoints (exhaustive oracle)', () =>
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 8 }), (n, k) => {
        const units = Array.from({ length: n }, (_, i) => [i]);
        const out = taperedRuns(units, k);
        expect(out.flat()).toEqual(units.flat());
        expect(out.length).toBe(Math.ceil(n / k));
        const topFirst = out.map((s) => s.length).reverse();
        topFirst.forEach((s, t) => t > 0 && expect(s).toBeGreaterThanOrEqual(topFirst[t - 1]));
        expect(liveMost(topFirst)).toBe(best(n, out.length));
      }),
      { numRuns: 60 },
    ));
});

describe('levels=L: nested runs L deep', () => {
  // The inputs kept while the backward of unit u runs: at every level, the runs below u's run (in
  // the same run one level up) and u's own run's input; at the finest, the units of u's run below u.
  const keptAt = (parts: ReturnType<typeof nestedRuns>, n: number, u: number): number => {
    const levels: number[][][] = [...parts.map((p) => p.map((run) => [...run])), [Array.from({ length: n }, (_, i) => i)]];
    let kept = 1; // u's own input
    let within = (run: readonly number[]) => run.filter((x) => x < u).length; // units below u in its finest run
    kept += within(parts.length ? levels[0].find((r) => r.includes(u))! : levels.at(-1)![0]);
    for (let l = 1; l < levels.length; l++) {
      const mine = levels[l].find((r) => r.includes(u))!;
      const finer = levels[l - 1].filter((r) => r.every((x) => mine.includes(x)) && Math.max(...r) < Math.min(...levels[l - 1].find((q) => q.includes(u))!));
      kept += finer.length;
    }
    return kept;
  };
  it("each level coarsens the one below, covers the units in order, and keeps at most the least bound b with Griewank's capacity C(b + L - 1, L) >= n", () =>
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5 }), (n, levels) => {
        const units = Array.from({ length: n }, (_, i) => [i]);
        const parts = nestedRuns(units, levels);
        expect(parts).toHaveLength(levels > 1 ? levels - 1 : 0);
        let finer: number[][] = units;
        for (const part of parts) {
          expect(part.flat()).toEqual(units.flat());
          for (const run of part) expect(finer.filter((f) => f.some((x) => run.includes(x))).every((f) => f.every((x) => run.includes(x)))).toBe(true);
          finer = part.map((r) => [...r]);
        }
        let b = 1;
        while (nestCapacity(b, levels) < n) b++;
        const binom = (a: number, k: number): number => (k === 0 ? 1 : (binom(a, k - 1) * (a - k + 1)) / k);
        expect(nestCapacity(b, levels)).toBe(binom(b + levels - 1, levels));
        const most = Math.max(...units.map((_, u) => keptAt(parts, n, u)));
        expect(most).toBeLessThanOrEqual(levels === 1 ? n : b);
      }),
      { numRuns: 80 },
    ));

  it('parses levels=L after blocks, once, not with runs=K', () => {
    expect(parseCheckpointPolicy('blocks,levels=4,width=32')).toEqual({ kind: 'blocks', levels: 4, width: 32 });
    for (const bad of ['blocks,levels=0', 'blocks,levels=7', 'blocks,runs=6,levels=3', 'blocks,levels=3,levels=3', 'sqrt,levels=3'])
      expect(() => parseCheckpointPolicy(bad), bad).toThrow(LomocError);
    expect(() => parseCheckpointPolicy('blocks,runs=6,levels=3')).toThrow(
      "--checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'levels=3' in 'blocks,runs=6,levels=3'",
    );
  });
});

describe('clip-norm with checkpointing', () => {
  it('recomputes segments once per backward pass, never the whole forward', () => {
    const { graph } = traceModel(llama as ModelDef, resolveConfig(llama as ModelDef, 'tiny'));
    const built = buildStep(graph, { optimizer: 'lomo', clipNorm: 1, checkpoint: { kind: 'blocks' } });
    const forward = built.step.nodes.filter((n) => n.phase === 'forward');
    const inBlocks = forward.filter((n) => n.block !== undefined).length;
    const recomputed = built.step.nodes.filter((n) => n.phase === 'recompute');
    expect(recomputed.length).toBeGreaterThan(0);
    expect(recomputed.length).toBeLessThanOrEqual(2 * inBlocks);
    // nothing outside the blocks (embedding, head, loss) is ever recomputed
    expect(recomputed.every((n) => n.block !== undefined)).toBe(true);
  });
});
