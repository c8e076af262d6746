// Head-sliced attention changes no result beyond reassociating two sums over the heads: the
// attention's output (x + sum_j o_j Wo_j, in the recompute) and its input's gradient
// (da = sum_j dq_j Wq_j^T + dk_j Wk_j^T + dv_j Wv_j^T). The loss is the forward's, so bit for bit;
// every update and state is within f32 rounding of the unsliced step (each reads one of the two
// sums, or a gradient that depends on them). LOMO still equals SGD bit for bit, the plan respects
// every lifetime, and no node reads a param after its update.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { parseCheckpointPolicy, type CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';
import { checkpointText } from '../../cli/step-options.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import llama from '../../models/llama.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, planViolations } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';

const hyper = { lr: 0.05, weightDecay: 0.01, step: 2 };

/** Largest |a - b| over (the largest |b| of that tensor) + 1e-3, over every param and state. */
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

const windowUpdates = (g: Graph) => g.nodes.filter((n) => n.op === 'optimizerUpdate' && n.attrs.window !== undefined);
const unsliced = (p: CheckpointPolicy): CheckpointPolicy => ({ ...p, heads: undefined }) as CheckpointPolicy;

/** The head-sliced step (in its plan) against the unsliced one (plain): the loss bit for bit, the rest within `tol`. */
function sameAsUnsliced(graph: Graph, feeds: Feeds, optimizer: OptimizerName, policy: CheckpointPolicy, o: { clipNorm?: number; clipValue?: number; skip?: (n: string) => boolean } = {}, tol = 1e-5) {
  const step = { clipNorm: o.clipNorm, clipValue: o.clipValue };
  const sliced = buildStep(graph, { optimizer, checkpoint: policy, ...step });
  const plain = buildStep(graph, { optimizer, checkpoint: unsliced(policy), ...step });
  expect(planViolations(sliced.plan)).toEqual([]);
  expect(freshnessViolations(sliced.step)).toEqual([]);
  const a = plannedStep(sliced, stepFeeds(sliced.step, feeds, hyper));
  const b = plainStep(plain.step, stepFeeds(plain.step, feeds, hyper));
  // The sliced step inside its plan is the sliced step: bit for bit.
  expect(bitDifferences(a, plainStep(sliced.step, stepFeeds(sliced.step, feeds, hyper)))).toEqual([]);
  expect(bitDifferences(a, b).filter((d) => d.startsWith('loss'))).toEqual([]);
  expect(worstRelative(a, b, o.skip)).toBeLessThanOrEqual(tol);
  return sliced;
}

interface Recipe {
  readonly batch: number;
  readonly seq: number;
  readonly kvHeads: number;
  readonly group: number;
  readonly headDim: number;
  readonly layers: number;
}

const recipe: fc.Arbitrary<Recipe> = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  seq: fc.integer({ min: 1, max: 5 }),
  kvHeads: fc.integer({ min: 2, max: 4 }),
  group: fc.integer({ min: 1, max: 2 }),
  headDim: fc.constantFrom(2, 4),
  layers: fc.integer({ min: 1, max: 2 }),
});

/** A LLaMA of random attention shape (GQA when group > 1): causal attention, rope, a SwiGLU FFN. */
function randomLlama(r: Recipe) {
  const heads = r.kvHeads * r.group;
  const cfg = { batch: r.batch, seq: r.seq, vocab: 11, width: heads * r.headDim, layers: r.layers, heads, kvHeads: r.kvHeads, ffn: 7 };
  const { graph } = traceModel(llama as ModelDef, cfg);
  return graph;
}

describe('head slicing changes no result beyond the sums over the heads (reference executor, f32)', () => {
  it('random LLaMA attention (heads, head dims, seq, GQA groups), slice counts that need not divide the kv heads, lomo and sgd, with and without clipping', () =>
    fc.assert(
      fc.property(recipe, fc.integer({ min: 2, max: 5 }), fc.constantFrom<OptimizerName>('lomo', 'sgd'), fc.constantFrom('none', 'norm', 'value'), fc.integer(), (r, slices, optimizer, clip, seed) => {
        const graph = randomLlama(r);
        const feeds = { ...randomFeeds(graph, seed, { vocab: { tokens: 11, targets: 11 } }), params: initParams(graph, seed, 'f64') };
        const o = clip === 'norm' ? { clipNorm: 0.05 } : clip === 'value' ? { clipValue: 0.01 } : {};
        const s = Math.min(slices, r.kvHeads);
        const sliced = sameAsUnsliced(graph, feeds, optimizer, { kind: 'blocks', heads: s }, o);
        // Wq, Wk, Wv, Wo of every block in one window per slice, none a whole gradient.
        expect(windowUpdates(sliced.step).length).toBe(r.layers * 4 * s);
        // No attention in recompute or backward sees more than one slice's heads (pass 1 of a two-pass clip is not sliced).
        const most = Math.ceil(r.kvHeads / s) * r.group;
        const pass1 = clip === 'norm' && optimizer === 'lomo';
        for (const n of sliced.step.nodes)
          if (!pass1 && ((n.op === 'attention' && n.phase === 'recompute') || n.op === 'attentionGrad')) expect(sliced.step.values[n.inputs[0]].shape[1]).toBeLessThanOrEqual(most);
      }),
      { numRuns: 25 },
    ), 120_000);

  it('LOMO equals SGD bit for bit with head slices (random LLaMA attention, with and without clipValue)', () =>
    fc.assert(
      fc.property(recipe, fc.integer({ min: 2, max: 4 }), fc.boolean(), fc.integer(), (r, slices, clip, seed) => {
        const graph = randomLlama(r);
        const feeds = { ...randomFeeds(graph, seed, { vocab: { tokens: 11, targets: 11 } }), params: initParams(graph, seed, 'f64') };
        const o = clip ? { clipValue: 0.01 } : {};
        const policy: CheckpointPolicy = { kind: 'blocks', heads: Math.min(slices, r.kvHeads), width: 2 };
        const lomo = buildStep(graph, { optimizer: 'lomo', checkpoint: policy, ...o });
        const sgd = buildStep(graph, { optimizer: 'sgd', checkpoint: policy, ...o });
        expect(bitDifferences(plannedStep(lomo, stepFeeds(lomo.step, feeds, hyper)), plannedStep(sgd, stepFeeds(sgd.step, feeds, hyper)))).toEqual([]);
      }),
      { numRuns: 15 },
    ), 60_000);

  for (const [name, def] of [['llama', llama]] as const) {
    it(`${name} (tiny): blocks with 2 head slices (and with width slices and nested runs), lomo, sgd, adamw, lomo with clip-norm`, () => {
      const cfg = resolveConfig(def as ModelDef, 'tiny');
      const { graph } = traceModel(def as ModelDef, cfg);
      const vocab = Number(cfg.vocab);
      const feeds = { ...randomFeeds(graph, 4, { vocab: { tokens: vocab, targets: vocab } }), params: initParams(graph, 4, 'f64') };
      // GPT's attention key bias has a zero gradient (softmax ignores a shift): AdamW normalises its rounding noise.
      const skip = (n: string) => /attn\.k\.b$/.test(n);
      for (const optimizer of ['lomo', 'sgd', 'adamw'] as const) {
        const sliced = sameAsUnsliced(graph, feeds, optimizer, { kind: 'blocks', heads: 2 }, { skip: optimizer === 'adamw' ? skip : undefined });
        expect(windowUpdates(sliced.step).length).toBeGreaterThan(0);
      }
      sameAsUnsliced(graph, feeds, 'lomo', { kind: 'blocks', heads: 2 }, { clipNorm: 0.05 });
      sameAsUnsliced(graph, feeds, 'lomo', { kind: 'blocks', runs: 2, width: 3, heads: 2 });
    });
  }
});

describe('--checkpoint POLICY,heads=N', () => {
  const message = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(LomocError);
      return (e as Error).message;
    }
    return 'no error';
  };

  it('parses with width or chunks and prints back', () => {
    expect(parseCheckpointPolicy('blocks,runs=6,width=16,heads=8')).toEqual({ kind: 'blocks', runs: 6, width: 16, heads: 8 });
    expect(parseCheckpointPolicy('sqrt,chunks=4,heads=2')).toEqual({ kind: 'sqrt', chunks: 4, heads: 2 });
    for (const text of ['blocks,heads=4', 'blocks,runs=6,width=16,heads=8', 'budget=13GiB,width=8,heads=8', 'sqrt,chunks=4,heads=2'])
      expect(checkpointText(parseCheckpointPolicy(text))).toBe(text);
    expect(message(() => parseCheckpointPolicy('blocks,heads=0'))).toBe(
      "error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'heads=0' in 'blocks,heads=0'");
    expect(message(() => parseCheckpointPolicy('none,heads=2'))).toBe("error: --checkpoint: heads=N needs a policy that recomputes (blocks, sqrt or budget=SIZE), got 'none,heads=2'");
  });

  it('the step reports its head slices', () => {
    const step = compileStep(llama as ModelDef, { preset: 'tiny', optimizer: 'lomo', checkpoint: { kind: 'blocks', runs: 2, width: 3, heads: 2 } });
    expect(step.checkpointDetail).toBe('2 blocks, inputs kept every 2, FFNs in 3 width slices, attention in 2 head slices');
  });

  it('adalomo is refused; more slices than key/value head groups, and multi-query attention, are errors at the attention', () => {
    const { graph } = traceModel(llama as ModelDef, resolveConfig(llama as ModelDef, 'tiny'));
    expect(message(() => buildStep(graph, { optimizer: 'adalomo', checkpoint: { kind: 'blocks', heads: 2 } }))).toBe(
      'error: --checkpoint ...,heads=2: the adalomo update cannot update a window of a weight (its state is not shaped like the weight); use lomo, sgd or adamw');
    expect(message(() => buildStep(graph, { optimizer: 'lomo', checkpoint: { kind: 'blocks', heads: 3 } }))).toMatch(
      /^models\/llama\.ts:\d+:\d+: error: --checkpoint \.\.\.,heads=3: this attention has 2 key\/value head groups, so at most 2 head slices, got 3$/);
    const mqa = traceModel(llama as ModelDef, { ...resolveConfig(llama as ModelDef, 'tiny'), heads: 4, kvHeads: 1 }).graph;
    expect(message(() => buildStep(mqa, { optimizer: 'lomo', checkpoint: { kind: 'blocks', heads: 2 } }))).toMatch(
      /^models\/llama\.ts:\d+:\d+: error: --checkpoint \.\.\.,heads=2: this recomputed attention cannot run over head slices \(one of its head values is read outside it, or a weight's gradient is not its own\)$/);
  });
});
