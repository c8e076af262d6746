// Token-chunked recomputation changes no result beyond reassociating the weight-gradient sums:
// the loss and every gradient that is not a row reduction of a chunked FFN are bit for bit those
// of the unchunked step; the FFN's weight and bias gradients (chunk partial sums added in chunk
// order) agree within f32 rounding; and no FFN-wide value holds more than one chunk of rows.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { parseCheckpointPolicy, type CheckpointPolicy } from '../../compiler/passes/checkpoint-policy.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import { chunkBounds } from '../../compiler/passes/token-chunk.ts';
import { memoryReport } from '../../compiler/report/memory-report.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';
import { checkpointText } from '../../cli/step-options.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, planViolations } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';
import { mlpBlocks, type MlpBlocksRecipe } from '../support/mlp-blocks.ts';

const hyper = { lr: 0.05, weightDecay: 0.01, step: 2 };
const optimizers: OptimizerName[] = ['lomo', 'sgd', 'adamw'];

/** Largest |a - b| over |b| + 1e-3, per tensor name. */
function worstRelative(a: StepResult, b: StepResult): number {
  let worst = 0;
  for (const [x, y] of [[a.params, b.params], [a.state, b.state]] as const)
    for (const name of Object.keys(x))
      x[name].data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - y[name].data[i]) / (Math.abs(y[name].data[i]) + 1e-3))));
  return worst;
}

/**
 * The chunked step (in its plan) against the unchunked one (plain): bit for bit except the tensors
 * named by `reduced` (the chunked FFNs' params and their states), which agree within `tol`.
 */
function sameAsUnchunked(graph: Graph, feeds: Feeds, optimizer: OptimizerName, policy: CheckpointPolicy, reduced: (name: string) => boolean, clipNorm?: number, tol = 1e-5) {
  const chunked = buildStep(graph, { optimizer, checkpoint: policy, clipNorm });
  const plain = buildStep(graph, { optimizer, checkpoint: { ...policy, chunks: 1 } as CheckpointPolicy, clipNorm });
  expect(planViolations(chunked.plan)).toEqual([]);
  expect(freshnessViolations(chunked.step)).toEqual([]);
  const a = plannedStep(chunked, stepFeeds(chunked.step, feeds, hyper));
  const b = plainStep(plain.step, stepFeeds(plain.step, feeds, hyper));
  // The chunked step inside its plan is the chunked step: bit for bit.
  expect(bitDifferences(a, plainStep(chunked.step, stepFeeds(chunked.step, feeds, hyper)))).toEqual([]);
  expect(bitDifferences(a, b).filter((d) => !reduced(d.replace(/^(param|state) /, '')))).toEqual([]);
  expect(worstRelative(a, b)).toBeLessThanOrEqual(tol);
  return chunked;
}

type Recipe = MlpBlocksRecipe;

const recipe: fc.Arbitrary<Recipe> = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  seq: fc.integer({ min: 1, max: 7 }),
  width: fc.integer({ min: 2, max: 6 }),
  ffn: fc.integer({ min: 7, max: 12 }),
  blocks: fc.integer({ min: 1, max: 2 }),
  act: fc.constantFrom('gelu', 'silu', 'relu', 'swiglu'),
  bias: fc.boolean(),
  tied: fc.boolean(),
});

/** FFN params: the ones whose gradients are row reductions inside the chunked region. */
const ffnParam = (name: string) => /^(master\.|m\.|v\.)?b\d+\.w[123]\./.test(name) || /\.mlp\./.test(name);

describe('token chunking changes no result beyond the weight-gradient sums (reference executor, f32)', () => {
  it('random MLP blocks, chunk counts that need not divide the rows, every optimizer', () =>
    fc.assert(
      fc.property(recipe, fc.integer({ min: 2, max: 9 }), fc.constantFrom(...optimizers), fc.constantFrom('blocks', 'sqrt'), fc.integer(), (r, chunks, optimizer, kind, seed) => {
        const graph = mlpBlocks(r);
        const feeds = randomFeeds(graph, seed);
        const built = sameAsUnchunked(graph, feeds, optimizer, { kind, chunks }, ffnParam);
        // Every FFN-wide value is one chunk of rows: the workspace shrinks by the chunk count.
        const rows = r.batch * r.seq;
        const most = Math.ceil(rows / Math.min(chunks, rows));
        for (const n of built.step.nodes)
          if (n.phase !== 'forward' && kind === 'blocks')
            for (const o of n.outputs) {
              const s = built.step.values[o].shape;
              if (s.at(-1) === r.ffn && s.length >= 2 && s[0] !== r.width) expect(s.slice(0, -1).reduce((a, b) => a * b, 1)).toBeLessThanOrEqual(most);
            }
        // and the chunking happened: one recompute of w1 per chunk per block (a run of two blocks
        // under sqrt: the first block's FFN feeds the second's recompute, so only the last is chunked)
        const w1 = built.step.nodes.filter((n) => n.phase === 'recompute' && n.op === 'matmul' && built.step.values[n.inputs[1]].shape[1] === r.ffn);
        const chunkedBlocks = kind === 'blocks' ? r.blocks : 1;
        expect(w1.length).toBe((r.act === 'swiglu' ? 2 : 1) * (chunkedBlocks * Math.min(chunks, rows) + r.blocks - chunkedBlocks));
      }),
      { numRuns: 25 },
    ), 60_000);

  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const) {
    it(`${name} (tiny): blocks with 3 chunks (16 rows), lomo, sgd, adamw`, () => {
      const cfg = resolveConfig(def as ModelDef, 'tiny');
      const { graph } = traceModel(def as ModelDef, cfg);
      const vocab = Number(cfg.vocab);
      const feeds = { ...randomFeeds(graph, 4, { vocab: { tokens: vocab, targets: vocab } }), params: initParams(graph, 4, 'f64') };
      for (const optimizer of optimizers) sameAsUnchunked(graph, feeds, optimizer, { kind: 'blocks', chunks: 3 }, ffnParam);
      // clip-norm: pass 1 (phase norm) is not chunked, so the clip factor is bit for bit too
      sameAsUnchunked(graph, feeds, 'lomo', { kind: 'blocks', chunks: 3 }, ffnParam, 0.05);
    });
  }

  it('a row never changes: the loss and every non-FFN param are bit for bit (llama tiny, chunks 1 to 17)', () => {
    const cfg = resolveConfig(llama as ModelDef, 'tiny');
    const { graph } = traceModel(llama as ModelDef, cfg);
    const feeds = { ...randomFeeds(graph, 9, { vocab: { tokens: 32, targets: 32 } }), params: initParams(graph, 9, 'f64') };
    for (const chunks of [1, 2, 5, 16, 17]) sameAsUnchunked(graph, feeds, 'lomo', { kind: 'sqrt', chunks }, ffnParam);
  });
});

describe('chunk counts in the plan', () => {
  it('the backward workspace of a wide FFN falls with the chunk count', () => {
    const graph = mlpBlocks({ batch: 4, seq: 16, width: 8, ffn: 256, blocks: 2, act: 'swiglu', bias: false, tied: false });
    const workspace = [1, 2, 4, 8].map((chunks) => {
      const built = buildStep(graph, { optimizer: 'sgd', checkpoint: { kind: 'blocks', chunks } });
      const { timeline } = memoryReport(built.plan);
      return Math.max(...timeline.filter((_, i) => built.step.nodes[i].phase !== 'forward').map((t) => t.workspace));
    });
    // [64, 256] f32 temporaries (64 KiB each) several at once unchunked, an 8th of each with 8 chunks
    for (let i = 1; i < workspace.length; i++) expect(workspace[i]).toBeLessThan(workspace[i - 1]);
    expect(workspace[3]).toBeLessThanOrEqual(workspace[0] / 4);
  });

  it('budget= chooses a chunk count when recomputing every block is not enough', () => {
    const graph = mlpBlocks({ batch: 4, seq: 16, width: 8, ffn: 256, blocks: 2, act: 'swiglu', bias: false, tied: false });
    const blocks = buildStep(graph, { optimizer: 'sgd', checkpoint: { kind: 'blocks' } }).plan.peak;
    const four = buildStep(graph, { optimizer: 'sgd', checkpoint: { kind: 'blocks', chunks: 4 } }).plan.peak;
    expect(four).toBeLessThan(blocks);
    const built = buildStep(graph, { optimizer: 'sgd', checkpoint: { kind: 'budget', bytes: four } });
    expect(built.plan.peak).toBeLessThanOrEqual(four);
    expect(built.step.nodes.some((n) => n.op === 'slice' && n.phase === 'recompute')).toBe(true);
  });

  it('splits rows into nearly equal chunks, never more than there are rows', () => {
    expect(chunkBounds(10, 4)).toEqual([[0, 2], [2, 5], [5, 7], [7, 10]]);
    expect(chunkBounds(3, 8)).toEqual([[0, 1], [1, 2], [2, 3]]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 64 }), (n, c) => {
        const b = chunkBounds(n, c);
        expect(b.length).toBe(Math.min(n, c));
        expect(b[0][0]).toBe(0);
        expect(b.at(-1)![1]).toBe(n);
        b.forEach(([s, e], i) => {
          expect(e - s).toBeGreaterThanOrEqual(Math.floor(n / b.length));
          expect(e - s).toBeLessThanOrEqual(Math.ceil(n / b.length));
          if (i > 0) expect(s).toBe(b[i - 1][1]);
        });
      }),
    );
  });
});

describe('--checkpoint POLICY,chunks=N and blocks,runs=K', () => {
  it('parses and prints back', () => {
    expect(parseCheckpointPolicy('blocks,chunks=4')).toEqual({ kind: 'blocks', chunks: 4 });
    expect(parseCheckpointPolicy('sqrt,chunks=1')).toEqual({ kind: 'sqrt', chunks: 1 });
    expect(parseCheckpointPolicy('budget=13GiB,chunks=8')).toEqual({ kind: 'budget', bytes: 13 * 2 ** 30, chunks: 8 });
    expect(parseCheckpointPolicy('blocks,chunks=16,runs=6')).toEqual({ kind: 'blocks', runs: 6, chunks: 16 });
    for (const text of ['blocks,chunks=4', 'sqrt,chunks=16', 'budget=13GiB,chunks=8', 'budget=1536MiB', 'blocks', 'blocks,runs=6', 'blocks,runs=6,chunks=16'])
      expect(checkpointText(parseCheckpointPolicy(text))).toBe(text);
  });

  it('rejects a bad chunk count or a policy that recomputes nothing, naming what was expected', () => {
    const message = (text: string) => {
      try {
        parseCheckpointPolicy(text);
      } catch (e) {
        expect(e).toBeInstanceOf(LomocError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(message('blocks,chunks=0')).toBe("error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'chunks=0' in 'blocks,chunks=0'");
    expect(message('blocks,chunks=4.5')).toBe("error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'chunks=4.5' in 'blocks,chunks=4.5'");
    expect(message('blocks,tokens=4')).toBe("error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'tokens=4' in 'blocks,tokens=4'");
    expect(message('blocks,chunks=2,chunks=4')).toBe("error: --checkpoint: expected chunks=N, width=N, heads=N, runs=K or levels=L (L from 1 to 6) after the policy (N and K a whole number from 1 to 4096, each once), got 'chunks=4' in 'blocks,chunks=2,chunks=4'");
    expect(message('sqrt,runs=2')).toBe("error: --checkpoint: expected chunks=N, width=N or heads=N after the policy (N a whole number from 1 to 4096, each once), got 'runs=2' in 'sqrt,runs=2'");
    expect(message('none,chunks=4')).toBe("error: --checkpoint: chunks=N needs a policy that recomputes (blocks, sqrt or budget=SIZE), got 'none,chunks=4'");
    expect(message('blockz,chunks=4')).toBe(
      "error: --checkpoint: expected none, blocks, sqrt or budget=SIZE (SIZE like 14GiB), got 'blockz,chunks=4'",
    );
  });
});
