// Gradient accumulation (--accumulate K): K micro-batches of b are one batch of K x b. The
// accumulated step equals the one-batch step (loss and new params) within the tolerance of a
// changed summation order, under every registered optimizer, with and without clipping and
// checkpointing; LOMO with accumulation equals SGD with accumulation bit for bit inside its plan;
// under LOMO only one unit's (block's) gradients are alive while the K contributions add up.
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { model, resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import * as L from '../../compiler/dsl/index.ts';
import { byteSize } from '../../compiler/ir/shape.ts';
import { verify } from '../../compiler/ir/verify.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { optimizerNames } from '../../compiler/optimizers/table.ts';
import { accumulateMicroBatches } from '../../compiler/passes/accumulate.ts';
import type { CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import type { StepOptions } from '../../compiler/passes/optimizer-step.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import { idRanges } from '../../compiler/compile-program.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { modelRecipe, traceRecipe, type ModelRecipe } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, gradientMemory, gradsNotFreedByUpdate } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';

// Property runs and whole CLI runs: seconds each on a loaded 2-core machine.
vi.setConfig({ testTimeout: 60_000 });

type Clip = Pick<StepOptions, 'clipNorm' | 'clipValue'>;
const clipArb = fc.constantFrom<Clip>({}, { clipNorm: 0.05 }, { clipValue: 0.01 });
const checkpointArb = fc.constantFrom<CheckpointPolicy>({ kind: 'none' }, { kind: 'sqrt' }, { kind: 'blocks' });
/** `blocks` needs marked blocks: on a recipe with none, sqrt instead. */
const policyFor = (r: ModelRecipe, p: CheckpointPolicy): CheckpointPolicy => (p.kind === 'blocks' && (r.blockSize === 0 || r.steps.length === 0) ? { kind: 'sqrt' } : p);
const hyper = { lr: 0.1, weightDecay: 0.01, step: 3 };

// Attention and transposeMix mix the rows of a random model (its batch axis): those models are not batch-separable.
const separable = modelRecipe.map((r) => ({ ...r, steps: r.steps.filter((s) => s.kind !== 'attention' && s.kind !== 'transposeMix') }));
/** The K-copy forward of a random model, verified (the pipeline verifies every later pass). */
const micro = (r: ModelRecipe, k: number) => verify(accumulateMicroBatches(traceRecipe(r), traceRecipe({ ...r, batch: k * r.batch }), k, r.batch), 'accumulate');

/** The step run in f64 on the reference executor: summation order then moves results by ~1e-15 only. */
function step64(step: Graph, feeds: Feeds): StepResult {
  const run = execute(step, stepFeeds(step, feeds, hyper), 'f64');
  const pick = (names: Record<string, number>) => Object.fromEntries(Object.entries(names).map(([k, v]) => [k, run.values[v]!]));
  return { loss: run.loss, params: pick(step.updates!), state: pick(Object.fromEntries((step.state ?? []).map((s) => [s.name, s.next]))) };
}

/** Names of results that differ by more than `tol` relative to their scale. */
function differences(a: StepResult, b: StepResult, tol = 1e-9): string[] {
  const close = (x: number, y: number) => Math.abs(x - y) <= tol * Math.max(1, Math.abs(x), Math.abs(y));
  const out = close(a.loss, b.loss) ? [] : [`loss ${a.loss} vs ${b.loss}`];
  for (const [kind, x, y] of [['param', a.params, b.params], ['state', a.state, b.state]] as const)
    for (const name of Object.keys(y)) {
      const i = [...x[name].data].findIndex((v, j) => !close(v, y[name].data[j]));
      if (i >= 0) out.push(`${kind} ${name}[${i}]: ${x[name].data[i]} vs ${y[name].data[i]}`);
    }
  return out;
}

describe('K micro-batches of b equal one batch of K x b', () => {
  for (const optimizer of optimizerNames())
    it(`${optimizer}: loss and new params (and state), random models, with and without clipping and checkpointing`, () =>
      fc.assert(
        fc.property(separable, fc.integer({ min: 2, max: 3 }), clipArb, checkpointArb, fc.integer(), (r, k, clip, checkpoint, seed) => {
          const full = traceRecipe({ ...r, batch: k * r.batch });
          const feeds = randomFeeds(full, seed, { vocab: { tokens: r.vocab, targets: r.vocab } });
          const opts = { optimizer, ...clip, checkpoint: policyFor(r, checkpoint) };
          const want = step64(buildStep(full, opts).step, feeds);
          const got = step64(buildStep(micro(r, k), opts).step, feeds);
          expect(differences(got, want)).toEqual([]);
        }),
        { numRuns: 12 },
      ));

  it('K = 1 is the plain step itself (the same graph, so the same bits)', () => {
    const r = fc.sample(separable, { numRuns: 1, seed: 3 })[0];
    const g = traceRecipe(r);
    expect(accumulateMicroBatches(g, g, 1, r.batch)).toBe(g);
  });
});

describe('LOMO with accumulation equals SGD with accumulation, bit for bit', () => {
  it('random models: LOMO run inside its plan vs plain SGD, f32, with clipping and checkpointing', () =>
    fc.assert(
      fc.property(separable, fc.integer({ min: 2, max: 3 }), clipArb, checkpointArb, fc.integer(), (r, k, clip, checkpoint, seed) => {
        const g = micro(r, k);
        const feeds = randomFeeds(g, seed, { vocab: { tokens: r.vocab, targets: r.vocab } });
        const lomo = buildStep(g, { optimizer: 'lomo', ...clip, checkpoint: policyFor(r, checkpoint) });
        const sgd = buildStep(g, { optimizer: 'sgd', ...clip, checkpoint: policyFor(r, checkpoint) });
        expect(bitDifferences(plannedStep(lomo, stepFeeds(lomo.step, feeds, hyper)), plainStep(sgd.step, stepFeeds(sgd.step, feeds, hyper)))).toEqual([]);
        expect(freshnessViolations(lomo.step)).toEqual([]);
        expect(gradsNotFreedByUpdate(lomo.step)).toEqual([]);
      }),
      { numRuns: 30 },
    ));

  for (const optimizer of optimizerNames())
    it(`${optimizer}: the accumulated step run inside its plan equals the unplanned step`, () =>
      fc.assert(
        fc.property(separable, clipArb, fc.integer(), (r, clip, seed) => {
          const g = micro(r, 2);
          const built = buildStep(g, { optimizer, ...clip, checkpoint: { kind: 'sqrt' } });
          const f = stepFeeds(built.step, randomFeeds(g, seed, { vocab: { tokens: r.vocab, targets: r.vocab } }), hyper);
          expect(bitDifferences(plannedStep(built, f), plainStep(built.step, f))).toEqual([]);
        }),
        { numRuns: 8 },
      ));
});

/**
 * What LOMO with accumulation may hold at once: the partial sums of one unit's params (a block, a
 * run of unmarked nodes, or one node in a model with no blocks), one fresh contribution, and the
 * partial sums of params several units read.
 */
function accumulatedGradientBound(g: Graph): number {
  const bytes = (v: number) => byteSize(g.values[v].shape, g.values[v].dtype);
  const params = new Set(g.params.map((p) => p.value));
  const marked = (g.blocks?.length ?? 0) > 0;
  const unitsReading = new Map<number, Set<number>>();
  const unitBytes: number[] = [];
  let unit = -1;
  g.nodes.forEach((n, i) => {
    if (i === 0 || !marked || n.block !== g.nodes[i - 1].block) unitBytes[++unit] = 0;
    for (const x of new Set(n.inputs)) {
      if (!params.has(x)) continue;
      const us = unitsReading.get(x) ?? new Set();
      if (!us.has(unit)) unitBytes[unit] += bytes(x);
      unitsReading.set(x, us.add(unit));
    }
  });
  const tied = [...unitsReading].filter(([, us]) => us.size > 1).reduce((a, [v]) => a + bytes(v), 0);
  return Math.max(...unitBytes) + Math.max(...g.params.map((p) => bytes(p.value))) + tied;
}

describe('LOMO with accumulation holds one unit of gradients', () => {
  it('random models: live gradient bytes within one unit + one contribution + tied params', () =>
    fc.assert(
      fc.property(separable, fc.integer({ min: 2, max: 4 }), clipArb, (r, k, clip) => {
        // A norm pass sharing its top stores those gradients by choice (bounded in norm-share.test.ts).
        const step = buildStep(micro(r, k), { optimizer: 'lomo', ...clip, shareNormPass: false }).step;
        expect(gradientMemory(step).most).toBeLessThanOrEqual(accumulatedGradientBound(traceRecipe(r)));
      }),
      { numRuns: 40 },
    ));

  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const)
    it(`${name} (tiny, 4 micro-batches): one block's gradients (and tied params), far below SGD's all gradients`, () => {
      const cfg = { preset: 'tiny', accumulate: 4, checkpoint: { kind: 'blocks' } as const };
      const lomo = gradientMemory(compileStep(def, { ...cfg, optimizer: 'lomo' }).step);
      const sgd = gradientMemory(compileStep(def, { ...cfg, optimizer: 'sgd' }).step);
      const { graph } = traceModel(def, resolveConfig(def, 'tiny'));
      const paramBytes = graph.params.reduce((a, p) => a + byteSize(graph.values[p.value].shape, 'f32'), 0);
      expect(sgd.most).toBeGreaterThanOrEqual(paramBytes); // every gradient, and one contribution being added
      expect(lomo.most).toBeLessThanOrEqual(accumulatedGradientBound(graph));
      // Tiny presets have two blocks beside a large embedding (gpt ties it to the head, so that
      // partial sum lives through the whole backward): the margin grows with depth.
      expect(lomo.most).toBeLessThan(sgd.most * 0.6);
    });
});

describe('real models: the accumulated step equals the big batch', () => {
  const compare = (def: ModelDef, optimizer: string, opts: Clip & { checkpoint?: CheckpointPolicy }) => {
    const base = resolveConfig(def, 'tiny');
    const k = 2;
    const acc = compileStep(def, { preset: 'tiny', optimizer, accumulate: k, ...opts });
    const big = compileStep(def, { preset: 'tiny', optimizer, batch: k * Number(base.batch), ...opts });
    const vocab = Number(base.vocab);
    const feeds = { ...randomFeeds(big.forward, 4, { vocab: { tokens: vocab, targets: vocab } }), params: initParams(big.forward, 4, 'f64') };
    expect(differences(step64(acc.step, feeds), step64(big.step, feeds))).toEqual([]);
  };
  for (const optimizer of optimizerNames().filter((o) => o !== 'sgd'))
    it(`gpt tiny, ${optimizer}, clip-norm, blocks checkpointed`, () => compare(gpt, optimizer, { clipNorm: 0.5, checkpoint: { kind: 'blocks' } }));
  it('llama tiny, lomo', () => compare(llama, 'lomo', {}));
});

describe('what the step still says about its inputs', () => {
  it('id ranges reach the embedding and the loss through the micro-batch slices', () => {
    const one = compileStep(gpt, { preset: 'tiny', optimizer: 'lomo' });
    const four = compileStep(gpt, { preset: 'tiny', optimizer: 'lomo', accumulate: 4 });
    expect(idRanges(four.step)).toEqual(idRanges(one.step));
    expect(idRanges(four.step)).toEqual({ tokens: 32, targets: 32 });
  });
});

describe('--accumulate errors', () => {
  const at = (l: { file: string; line: number; col: number }) => `${l.file}:${l.line}:${l.col}: error: `;
  const message = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (e instanceof LomocError) return e.message;
      throw e;
    }
    throw new Error('no error');
  };
  it('an input whose shape does not scale with the batch', () => {
    const def = model('odd', (cfg: { batch: number }) => L.mean(L.mul(L.input('x', [cfg.batch + 1, 2]), L.param('w', [2], L.ones()))), { presets: { t: { batch: 2 } } });
    const x = traceModel(def, { batch: 2 }).graph.inputs[0];
    expect(message(() => compileStep(def, { optimizer: 'lomo', accumulate: 3 }))).toBe(
      at(x.loc) + "--accumulate 3: input 'x' must have the same shape at batch 2 and at batch 6, or one axis 3 times as long; got f32[3, 2] and f32[7, 2]",
    );
  });
  it('a model with no batch key', () => {
    const def = model('nobatch', () => L.mean(L.mul(L.input('x', [2, 2]), L.param('w', [2], L.ones()))), { presets: { t: {} } });
    expect(message(() => compileStep(def, { optimizer: 'lomo', accumulate: 2 }))).toBe(
      at(def.loc) + "--accumulate 2: model 'nobatch' has no numeric config key 'batch' (the micro-batch size)",
    );
  });
});
