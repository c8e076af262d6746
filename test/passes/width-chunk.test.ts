// Width-chunked FFNs change no result beyond reassociating the sums over the FFN width: the loss,
// and every update of the last block's FFN params (its weight-gradient windows are complete
// gradients whose inner sums run over rows or over the model width, not over F), are bit for bit
// those of the unchunked step; the rest (all that reads dm, the FFN input's gradient, summed slice
// by slice) agree within f32 rounding. LOMO still equals SGD bit for bit, and no weight gradient
// wider than one slice is ever made inside a chunked region.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { parseCheckpointPolicy, type CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';
import { optionChecks } from '../../cli/option-checks.ts';
import { checkpointText } from '../../cli/step-options.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, planViolations } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';
import { mlpBlocks, type MlpBlocksRecipe } from '../support/mlp-blocks.ts';

const hyper = { lr: 0.05, weightDecay: 0.01, step: 2 };

/**
 * Largest |a - b| over (the largest |b| of that tensor) + 1e-3, over every param and state but those
 * `skip` names. (dm's reassociation reaches every earlier gradient, some of them tiny elements of
 * larger tensors, so each is measured against its tensor's scale.)
 */
function worstRelative(a: StepResult, b: StepResult, skip: (name: string) => boolean = () => false): number {
  let worst = 0;
  for (const [x, y] of [[a.params, b.params], [a.state, b.state]] as const)
    for (const name of Object.keys(x)) {
      if (skip(name)) continue;
      const scale = Math.max(...y[name].data.map(Math.abs)) + 1e-3;
      x[name].data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - y[name].data[i]) / scale)));
    }
  return worst;
}

interface Options {
  readonly clipNorm?: number;
  readonly clipValue?: number;
  /** Tensors left out of the tolerance check. */
  readonly skip?: (name: string) => boolean;
}

/**
 * The width-chunked step (in its plan) against the unchunked one (plain): bit for bit for the
 * tensors `exact` names (and the loss), all within `tol`. Returns the chunked step.
 */
function sameAsUnchunked(graph: Graph, feeds: Feeds, optimizer: OptimizerName, policy: CheckpointPolicy, exact: (name: string) => boolean, o: Options = {}, tol = 1e-5) {
  const step = { clipNorm: o.clipNorm, clipValue: o.clipValue };
  const chunked = buildStep(graph, { optimizer, checkpoint: policy, ...step });
  const plain = buildStep(graph, { optimizer, checkpoint: { ...policy, width: 1 } as CheckpointPolicy, ...step });
  expect(planViolations(chunked.plan)).toEqual([]);
  expect(freshnessViolations(chunked.step)).toEqual([]);
  const a = plannedStep(chunked, stepFeeds(chunked.step, feeds, hyper));
  const b = plainStep(plain.step, stepFeeds(plain.step, feeds, hyper));
  // The chunked step inside its plan is the chunked step: bit for bit.
  expect(bitDifferences(a, plainStep(chunked.step, stepFeeds(chunked.step, feeds, hyper)))).toEqual([]);
  expect(bitDifferences(a, b).filter((d) => d.startsWith('loss') || exact(d.replace(/^(param|state) /, '')))).toEqual([]);
  expect(worstRelative(a, b, o.skip)).toBeLessThanOrEqual(tol);
  return { chunked, result: a };
}

type Recipe = MlpBlocksRecipe;

const recipe: fc.Arbitrary<Recipe> = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  seq: fc.integer({ min: 1, max: 5 }),
  width: fc.integer({ min: 2, max: 6 }),
  ffn: fc.integer({ min: 7, max: 13 }),
  blocks: fc.integer({ min: 1, max: 2 }),
  act: fc.constantFrom('gelu', 'silu', 'relu', 'swiglu'),
  bias: fc.boolean(),
});

/** The last block's FFN weights (w1, w2, w3, their biases: not w2's bias, which is outside the region) and their states. */
const lastFfn = (blocks: number) => (name: string) => new RegExp(`^(master\\.|m\\.|v\\.)?b${blocks - 1}\\.(w[13]\\.[wb]|w2\\.w)$`).test(name);

/** The windowed updates of `g`, by param value. */
const windowUpdates = (g: Graph) => g.nodes.filter((n) => n.op === 'optimizerUpdate' && n.attrs.window !== undefined);

describe('width chunking changes no result beyond the sums over the FFN width (reference executor, f32)', () => {
  it('random MLP blocks, slice counts that need not divide the width, lomo and sgd, with and without clipping', () =>
    fc.assert(
      fc.property(
        recipe, fc.integer({ min: 2, max: 9 }), fc.constantFrom<OptimizerName>('lomo', 'sgd'), fc.constantFrom('none', 'norm', 'value'), fc.integer(),
        (r, slices, optimizer, clip, seed) => {
          const graph = mlpBlocks(r);
          const feeds = randomFeeds(graph, seed);
          const o: Options = clip === 'norm' ? { clipNorm: 0.05 } : clip === 'value' ? { clipValue: 0.01 } : {};
          // sgd's clip-norm sums the squared windows in window order: its factor, so every update, is within rounding only.
          const exact = optimizer === 'sgd' && clip === 'norm' ? () => false : lastFfn(r.blocks);
          const { chunked } = sameAsUnchunked(graph, feeds, optimizer, { kind: 'blocks', width: slices }, exact, o);
          // Every FFN weight is updated in min(slices, ffn) windows per block, none a whole gradient.
          const perBlock = (r.act === 'swiglu' ? 3 : 2) + (r.bias ? (r.act === 'swiglu' ? 2 : 1) : 0);
          expect(windowUpdates(chunked.step).length).toBe(r.blocks * perBlock * Math.min(slices, r.ffn));
          // and nothing FFN-wide is made in recompute or backward (only the forward, pass 1 and the updates see all of F)
          // (a two-pass clip's pass 1 recomputes its own FFN whole: it is not chunked, so its factor is the same bits)
          if (![r.batch, r.seq, r.batch * r.seq].includes(r.ffn) && !(clip === 'norm' && optimizer === 'lomo'))
            for (const n of chunked.step.nodes)
              if (n.phase === 'backward' || n.phase === 'recompute')
                for (const v of n.outputs) expect(chunked.step.values[v].shape.includes(r.ffn)).toBe(false);
        },
      ),
      { numRuns: 30 },
    ), 90_000);

  it('LOMO equals SGD bit for bit with width slices (random MLP blocks, with and without clipValue)', () =>
    fc.assert(
      fc.property(recipe, fc.integer({ min: 2, max: 9 }), fc.boolean(), fc.integer(), (r, slices, clip, seed) => {
        const graph = mlpBlocks(r);
        const feeds = randomFeeds(graph, seed);
        const o: Options = clip ? { clipValue: 0.01 } : {};
        const policy: CheckpointPolicy = { kind: 'blocks', width: slices };
        const lomo = buildStep(graph, { optimizer: 'lomo', checkpoint: policy, ...o });
        const sgd = buildStep(graph, { optimizer: 'sgd', checkpoint: policy, ...o });
        const a = plannedStep(lomo, stepFeeds(lomo.step, feeds, hyper));
        const b = plannedStep(sgd, stepFeeds(sgd.step, feeds, hyper));
        expect(bitDifferences(a, b)).toEqual([]);
      }),
      { numRuns: 20 },
    ), 60_000);

  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const) {
    it(`${name} (tiny): blocks with 3 width slices, lomo, sgd, adamw (windowed moments), lomo with clip-norm: the loss bit for bit, the rest within f32 rounding`, () => {
      const cfg = resolveConfig(def as ModelDef, 'tiny');
      const { graph } = traceModel(def as ModelDef, cfg);
      const vocab = Number(cfg.vocab);
      const feeds = { ...randomFeeds(graph, 4, { vocab: { tokens: vocab, targets: vocab } }), params: initParams(graph, 4, 'f64') };
      // GPT's attention key bias has a zero gradient (softmax ignores a shift): AdamW normalises its rounding noise.
      const skip = (n: string) => /attn\.k\.b$/.test(n);
      for (const optimizer of ['lomo', 'sgd', 'adamw'] as const) {
        const { chunked } = sameAsUnchunked(graph, feeds, optimizer, { kind: 'blocks', width: 3 }, () => false, { skip: optimizer === 'adamw' ? skip : undefined });
        expect(windowUpdates(chunked.step).length).toBeGreaterThan(0);
      }
      sameAsUnchunked(graph, feeds, 'lomo', { kind: 'blocks', width: 3 }, () => false, { clipNorm: 0.05 });
    });
  }
});

describe('width chunking in f16 storage (f32 math)', () => {
  it('llama tiny: lomo, and sgd with its f32 master copy (a windowed state), within f16 rounding of the unchunked step', () => {
    const cfg = resolveConfig(llama as ModelDef, 'tiny');
    const { graph } = traceModel(llama as ModelDef, cfg);
    const feeds = { ...randomFeeds(graph, 7, { vocab: { tokens: 32, targets: 32 } }), params: initParams(graph, 7, 'f64') };
    for (const optimizer of ['lomo', 'sgd'] as const) {
      const master = optimizer === 'sgd';
      const [chunked, plain] = [3, 1].map((width) => buildStep(graph, { optimizer, dtype: 'f16', master, checkpoint: { kind: 'blocks', width } }));
      expect(windowUpdates(chunked.step).length).toBe(2 * 3 * 3);
      if (master) expect(windowUpdates(chunked.step).every((n) => n.op === 'optimizerUpdate' && n.attrs.states.includes('master'))).toBe(true);
      const a = plannedStep(chunked, stepFeeds(chunked.step, feeds, hyper));
      const b = plainStep(plain.step, stepFeeds(plain.step, feeds, hyper));
      expect(Object.is(Math.fround(a.loss), Math.fround(b.loss))).toBe(true);
      // dm's partial sums are stored in f16 slice by slice: a few f16 ulps (2^-11) of each tensor's scale
      expect(worstRelative(a, b)).toBeLessThanOrEqual(4e-3);
    }
  });
});

describe('--checkpoint POLICY,width=N', () => {
  it('parses and prints back', () => {
    expect(parseCheckpointPolicy('blocks,runs=6,width=16')).toEqual({ kind: 'blocks', runs: 6, width: 16 });
    expect(parseCheckpointPolicy('budget=13GiB,width=8')).toEqual({ kind: 'budget', bytes: 13 * 2 ** 30, width: 8 });
    for (const text of ['blocks,width=4', 'sqrt,width=16', 'budget=13GiB,width=8', 'blocks,runs=6,width=16'])
      expect(checkpointText(parseCheckpointPolicy(text))).toBe(text);
  });

  it('rejects width with chunks, on none, or twice, naming what was expected', () => {
    const message = (text: string) => {
      try {
        parseCheckpointPolicy(text);
      } catch (e) {
        expect(e).toBeInstanceOf(LomocError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(message('blocks,chunks=4,width=4')).toBe(
      "error: --checkpoint: chunks=N and width=N cannot both split the FFNs (over tokens or over the width, not both), got 'blocks,chunks=4,width=4'");
    expect(message('sqrt,width=4,chunks=2')).toBe(
      "error: --checkpoint: chunks=N and width=N cannot both split the FFNs (over tokens or over the width, not both), got 'sqrt,width=4,chunks=2'");
    expect(message('none,width=4')).toBe("error: --checkpoint: width=N needs a policy that recomputes (blocks, sqrt or budget=SIZE), got 'none,width=4'");
    expect(message('blocks,width=2,width=4')).toBe(
      "error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'width=4' in 'blocks,width=2,width=4'");
    expect(message('blocks,width=0')).toBe(
      "error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'width=0' in 'blocks,width=0'");
  });

  it('the command line names width in its error, and the step reports its slices', () => {
    const c = optionChecks('plan');
    expect(c.checkpoint('blocks,runs=6,width=16')).toEqual({ kind: 'blocks', runs: 6, width: 16 });
    expect(() => c.checkpoint('blocks,width=x')).toThrow(
      "error: lomoc plan: option '--checkpoint' expects blocks, then runs=K or levels=L (L from 1 to 6), chunks=N or width=N, and heads=N, each at most once, with whole numbers from 1 to 4096, got 'blocks,width=x'");
    expect(() => c.checkpoint('sqrt,width=0')).toThrow(
      "error: lomoc plan: option '--checkpoint' expects sqrt, then chunks=N or width=N, and heads=N, each at most once, with whole numbers from 1 to 4096, got 'sqrt,width=0'");
    const step = compileStep(llama as ModelDef, { preset: 'tiny', optimizer: 'lomo', checkpoint: { kind: 'blocks', runs: 2, width: 3 } });
    expect(step.checkpointDetail).toBe('2 blocks, inputs kept every 2, FFNs in 3 width slices');
  });

  it('adalomo (factored states) is refused, naming the option and what to use instead', () => {
    const graph = mlpBlocks({ batch: 2, seq: 3, width: 4, ffn: 9, blocks: 1, act: 'swiglu', bias: false });
    expect(() => buildStep(graph, { optimizer: 'adalomo', checkpoint: { kind: 'blocks', width: 4 } })).toThrow(
      new LomocError("--checkpoint ...,width=4: the adalomo update cannot update a window of a weight (its state is not shaped like the weight); use chunks=N instead, or lomo, sgd or adamw"));
  });

  it('lomo with --clip-mode previous is refused (its one-pass norm needs whole gradients before each update); sgd slices its norm', () => {
    const graph = mlpBlocks({ batch: 2, seq: 3, width: 4, ffn: 9, blocks: 1, act: 'gelu', bias: false });
    let message = 'no error';
    try {
      buildStep(graph, { optimizer: 'lomo', checkpoint: { kind: 'blocks', width: 4 }, clipNorm: 1, clipMode: 'previous' });
    } catch (e) {
      expect(e).toBeInstanceOf(LomocError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/^[^ ]+:\d+:\d+: error: --checkpoint \.\.\.,width=4: under --clip-mode previous each update inside backward needs its weight's whole gradient for the norm first, which width slices never make; use --clip-mode exact or chunks=N$/);
    const sgd = buildStep(graph, { optimizer: 'sgd', checkpoint: { kind: 'blocks', width: 4 }, clipNorm: 1 });
    expect(windowUpdates(sgd.step).length).toBe(2 * 4);
    expect(sgd.step.nodes.filter((n) => n.op === 'sumSquares' && sgd.step.values[n.inputs[0]].shape.includes(9)).length).toBe(0);
  });

  it('LOMO holds no weight gradient wider than one slice: the grads peak falls with the slice count', () => {
    const graph = mlpBlocks({ batch: 4, seq: 16, width: 8, ffn: 256, blocks: 2, act: 'swiglu', bias: false });
    const grads = [1, 2, 4, 8].map((width) => {
      const built = buildStep(graph, { optimizer: 'lomo', checkpoint: { kind: 'blocks', width } });
      return Math.max(...built.step.nodes.flatMap((n) => n.outputs.filter((o) => built.step.values[o].role === 'grad').map((o) => built.step.values[o].shape.reduce((x, y) => x * y, 1))));
    });
    // [8, 256] weight gradients unchunked, [8, 32] windows with 8 slices
    expect(grads[0]).toBe(8 * 256);
    for (let i = 1; i < grads.length; i++) expect(grads[i]).toBeLessThan(grads[i - 1]);
    expect(grads[3]).toBe(8 * 32);
  });
});
