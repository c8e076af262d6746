// Fused linear cross-entropy (passes/fuse-loss.ts) on the reference executor: the pass removes
// the logits from the training graph and keeps the model's meaning; the fused loss and every
// gradient equal matmul + crossEntropy within f32 tolerance, with and without tied weights, both
// W layouts, mean and sum reductions, under LOMO, SGD and AdamW; LOMO still equals SGD bit for
// bit; the plan holds no [tokens, V] buffer, only a [tokens, chunk] workspace.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as L from '../../compiler/dsl/index.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import { numel, sameShape } from '../../compiler/ir/shape.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { verify } from '../../compiler/ir/verify.ts';
import { fuseLinearCrossEntropy, lossChunk } from '../../compiler/passes/fuse-loss.ts';
import { withStorage } from '../../compiler/passes/precision.ts';
import type { OptimizerName } from '../../compiler/passes/optimizer-step.ts';
import { compileForward } from '../../compiler/pipeline.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { stepOptionValues } from '../../cli/step-options.ts';
import { optionChecks } from '../../cli/option-checks.ts';
import { LomocError } from '../../compiler/diagnostics.ts';
import { checkGradients } from '../support/gradcheck.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds } from '../support/step.ts';
import { randomFeeds, traceFn } from '../support/trace.ts';

interface Head {
  readonly b: number;
  readonly t: number;
  readonly d: number;
  readonly v: number;
  /** tied: W is the embedding table, [V, D] read transposed; vd: a head of its own in that layout; dv: [D, V]. */
  readonly layout: 'tied' | 'dv' | 'vd';
  readonly reduce: 'mean' | 'sum';
}

/** Embedding, one tanh layer, the LM head and the loss: the shape of every model's top. */
function headModel(k: Head): Graph {
  return traceFn(() => {
    const tokens = L.input('tokens', [k.b, k.t], 'i32');
    const targets = L.input('targets', [k.b, k.t], 'i32');
    const emb = L.param('emb', [k.v, k.d], L.normal(0.5));
    const x = L.tanh(L.matmul(L.embedding(emb, tokens), L.param('w1', [k.d, k.d], L.normal(0.5))));
    const logits =
      k.layout === 'tied' ? L.matmul(x, emb, { transB: true })
      : k.layout === 'vd' ? L.matmul(x, L.param('head', [k.v, k.d], L.normal(0.5)), { transB: true })
      : L.matmul(x, L.param('head', [k.d, k.v], L.normal(0.5)));
    L.output('logits', logits);
    const ce = L.crossEntropy(logits, targets);
    return k.reduce === 'mean' ? L.mean(ce) : L.sum(ce);
  });
}

const headArb: fc.Arbitrary<Head> = fc.record({
  b: fc.integer({ min: 1, max: 3 }),
  t: fc.integer({ min: 1, max: 5 }),
  d: fc.integer({ min: 1, max: 6 }),
  v: fc.integer({ min: 2, max: 40 }),
  layout: fc.constantFrom('tied', 'dv', 'vd'),
  reduce: fc.constantFrom('mean', 'sum'),
});

const feedsOf = (g: Graph, v: number, seed: number): Feeds => randomFeeds(g, seed, { vocab: { tokens: v, targets: v } });

const opsOf = (g: Graph) => g.nodes.map((n) => n.op);

/** Loss, every gradient and every updated param of one step of `forward` (reference executor, f32). */
function stepValues(forward: Graph, feeds: Feeds, optimizer: OptimizerName, fuseLoss: boolean, chunk?: number) {
  const c = compileForward(forward, { optimizer, fuseLoss, lossChunk: { chunk }, verifyEach: true });
  const run = execute(c.step, stepFeeds(c.step, feeds, { lr: 0.1, weightDecay: 0.01 }), 'f32');
  const pick = (named: Readonly<Record<string, number>>) => Object.fromEntries(Object.entries(named).map(([k, v]) => [k, Array.from(run.values[v]!.data)]));
  return { loss: run.loss, grads: pick(c.step.grads!), params: pick(c.step.updates!), step: c.step };
}

/** |a - b| <= abs + rel |b| everywhere, or the first place it is not. */
function within(a: readonly number[], b: readonly number[], abs: number, rel: number): string | null {
  for (let i = 0; i < b.length; i++) if (!(Math.abs(a[i] - b[i]) <= abs + rel * Math.abs(b[i]))) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return a.length === b.length ? null : `length ${a.length} vs ${b.length}`;
}

/** A model's tiny preset, with config keys the preset does not list (llama's optional `tied`). */
const modelGraph = (def: ModelDef, extra: Readonly<Record<string, boolean>> = {}) => traceModel(def, { ...resolveConfig(def, 'tiny'), ...extra }).graph;

describe('the fuse-loss pass', () => {
  for (const [name, def, extra] of [['gpt', gpt, {}], ['llama', llama, {}], ['llama (tied)', llama, { tied: true }]] as const)
    it(`${name} tiny: one linearCrossEntropy replaces the head matmul and crossEntropy; the logits are made by nothing and leave outputs`, () => {
      const g = modelGraph(def, extra);
      const fused = verify(fuseLinearCrossEntropy(g), 'fuse-loss');
      const logits = g.outputs!.logits;
      expect(fused.nodes.length).toBe(g.nodes.length - 1);
      expect(opsOf(fused).filter((op) => op === 'crossEntropy')).toEqual([]);
      expect(fused.nodes.some((n) => n.outputs.includes(logits) || n.inputs.includes(logits))).toBe(false);
      expect(fused.outputs).toEqual({});
      const node = fused.nodes.find((n) => n.op === 'linearCrossEntropy')!;
      const w = fused.params.find((p) => p.value === node.inputs[1])!.name;
      expect([w, node.attrs]).toEqual(
        name === 'gpt' ? ['wte', { transW: true, chunk: 32 }] : name === 'llama' ? ['output', { transW: false, chunk: 32 }] : ['tok_embeddings', { transW: true, chunk: 32 }],
      );
      // The loss the model returns is the same value, now made from the fused op's output.
      expect(fused.loss).toBe(g.loss);
      expect(g.outputs).toEqual({ logits }); // its input is unchanged
    });

  it('returns its input when the logits have another reader', () => {
    const g = traceFn(() => {
      const x = L.input('x', [3, 4]);
      const logits = L.matmul(x, L.param('w', [4, 5], L.normal(1)));
      return L.add(L.mean(L.crossEntropy(logits, L.input('targets', [3], 'i32'))), L.mean(logits));
    });
    expect(fuseLinearCrossEntropy(g)).toBe(g);
  });

  it('a binding limit below the per-token buffers the kernels bind whole is an error naming the smallest workable limit', () => {
    const g = withStorage(modelGraph(gpt), 'f16'); // 16 tokens, width 16: dh sums in f32, 1 KiB
    expect(() => fuseLinearCrossEntropy(g, { maxBindingBytes: 1000 })).toThrow(
      new LomocError("linearCrossEntropy: the fused loss binds 1.00 KiB per kernel for 16 tokens, more than one storage binding's 1000 B; the smallest workable binding limit is 1024 bytes, or use --fuse-loss off", g.nodes.find((n) => n.op === 'crossEntropy')!.loc),
    );
    expect(fuseLinearCrossEntropy(g, { maxBindingBytes: 1024 }).nodes.some((n) => n.op === 'linearCrossEntropy')).toBe(true);
  });

  it('the chunk: the widest [tokens, chunk] f32 workspace within 32 MiB and the binding limit, evened out over the passes, a multiple of 4 where that fits', () => {
    // LLaMA-7B at batch 8, seq 512: 4096 tokens; 32 MiB / 16 KiB = 2048 columns, 16 passes over 32000.
    expect(lossChunk(4096, 32000)).toBe(2000);
    // GPT-2 at batch 8, seq 1024: 1024 columns, 50 passes over 50257 (1006 each, 1008 for vec4s).
    expect(lossChunk(8192, 50257)).toBe(1008);
    // 10 columns at most: 3 passes over 30 of 10 each, not 12 (over the budget).
    expect(lossChunk(1, 30, { workspaceBytes: 40 })).toBe(10);
    expect(lossChunk(1, 33, { workspaceBytes: 48 })).toBe(12);
    expect(lossChunk(4096, 32000, { maxBindingBytes: 2 ** 20 })).toBe(64);
    expect(lossChunk(16, 32)).toBe(32);
    expect(lossChunk(8, 100, { chunk: 30 })).toBe(25);
    expect(lossChunk(8, 1)).toBe(1);
  });
});

describe('fused linear cross-entropy equals matmul + crossEntropy (reference executor)', () => {
  it('its VJP matches finite differences (f64), every layout and reduction', () =>
    fc.assert(
      fc.property(headArb, fc.integer(), (k, seed) => {
        const g = fuseLinearCrossEntropy(headModel(k), { chunk: 3 });
        expect(opsOf(g)).toContain('linearCrossEntropy');
        const res = checkGradients(g, feedsOf(g, k.v, seed), { seed });
        expect(res.worst.err, `${res.worst.what}: fd ${res.worst.fd} vs autodiff ${res.worst.ad}`).toBeLessThanOrEqual(0);
      }),
      { numRuns: 15 },
    ));

  it('loss, every gradient and every update within f32 tolerance, under LOMO, SGD and AdamW, chunks that do not divide the vocabulary', () =>
    fc.assert(
      fc.property(headArb, fc.constantFrom<OptimizerName>('lomo', 'sgd', 'adamw'), fc.integer({ min: 1, max: 7 }), fc.integer(), (k, optimizer, chunk, seed) => {
        const g = headModel(k);
        const feeds = feedsOf(g, k.v, seed);
        const fused = stepValues(g, feeds, optimizer, true, chunk);
        const plain = stepValues(g, feeds, optimizer, false);
        expect(opsOf(fused.step)).toContain('linearCrossEntropyGrad');
        expect(opsOf(plain.step)).not.toContain('linearCrossEntropy');
        // The fused logits are never rounded to f32 storage: the results differ by f32 rounding only.
        expect(within([fused.loss], [plain.loss], 1e-6, 1e-6)).toBeNull();
        for (const name of Object.keys(plain.grads)) expect(within(fused.grads[name], plain.grads[name], 1e-6, 1e-5), `gradient of ${name}`).toBeNull();
        // AdamW's first step moves each weight by about lr * sign(g): a gradient within rounding of 0 may flip it.
        const [abs, rel] = optimizer === 'adamw' ? [1e-4, 1e-4] : [1e-6, 1e-5];
        for (const name of Object.keys(plain.params)) expect(within(fused.params[name], plain.params[name], abs, rel), `update of ${name}`).toBeNull();
      }),
      { numRuns: 40 },
    ));

  for (const [name, def, extra] of [['gpt', gpt, {}], ['llama', llama, {}], ['llama (tied)', llama, { tied: true }]] as const)
    it(`${name} tiny: the whole step, each optimizer, fused (chunks of 5 of 32) vs unfused`, () => {
      const g = modelGraph(def, extra);
      const feeds = { ...feedsOf(g, 32, 3), params: initParams(g, 3, 'f64') };
      for (const optimizer of ['lomo', 'sgd', 'adamw'] as const) {
        const [fused, plain] = [stepValues(g, feeds, optimizer, true, 5), stepValues(g, feeds, optimizer, false)];
        expect(within([fused.loss], [plain.loss], 1e-6, 1e-6), optimizer).toBeNull();
        for (const p of Object.keys(plain.grads)) expect(within(fused.grads[p], plain.grads[p], 1e-6, 1e-4), `${optimizer}: gradient of ${p}`).toBeNull();
      }
    });

  it('LOMO in its plan equals plain SGD bit for bit with the fused loss, tied or not', () =>
    fc.assert(
      fc.property(headArb, fc.integer({ min: 1, max: 7 }), fc.integer(), (k, chunk, seed) => {
        const g = headModel(k);
        const feeds = feedsOf(g, k.v, seed);
        const hyper = { lr: 0.1, weightDecay: 0.01 };
        const opts = { lossChunk: { chunk }, master: false } as const;
        const lomo = buildStep(g, { optimizer: 'lomo', ...opts } as never);
        const sgd = buildStep(g, { optimizer: 'sgd', ...opts } as never);
        expect(opsOf(lomo.step)).toContain('linearCrossEntropyGrad');
        // An untied head's update runs a chunk at a time inside its backward: dW has no storage.
        const dw = lomo.step.nodes.find((n) => n.op === 'linearCrossEntropyGrad')!.outputs[1];
        expect(lomo.plan.bufferOf[dw] < 0).toBe(k.layout !== 'tied');
        expect(bitDifferences(plannedStep(lomo, stepFeeds(lomo.step, feeds, hyper)), plainStep(sgd.step, stepFeeds(sgd.step, feeds, hyper)))).toEqual([]);
      }),
      { numRuns: 25 },
    ));
});

describe('the plan with the fused loss', () => {
  it('gpt tiny: no buffer holds [tokens, V] logits or their gradient; the head kernels reserve one [tokens, chunk] f32 workspace', () => {
    const g = modelGraph(gpt);
    const [B, T, V] = [2, 8, 32];
    const logitsBuffers = (fuseLoss: boolean) => {
      const c = compileForward(g, { optimizer: 'lomo', fuseLoss, lossChunk: { chunk: 10 } });
      return { c, n: c.step.values.filter((v) => sameShape(v.shape, [B, T, V]) && c.plan.bufferOf[v.id] >= 0).length };
    };
    expect(logitsBuffers(false).n).toBe(2); // the logits and their gradient
    const { c, n } = logitsBuffers(true);
    expect(n).toBe(0);
    const heads = c.fusion.groups.map((grp, k) => [c.step.nodes[grp.nodes[0]].op, k] as const).filter(([op]) => op.startsWith('linearCrossEntropy'));
    // Chunks of 10 evened out over 4 passes: 8. Forward: the workspace and (max, sum, target logit)
    // per token; both: the tied head's chunk copied transposed, [D, 8] f32 (D = 16 <= B * T).
    expect(heads.map(([op, k]) => [op, c.plan.scratchOf[k].map((b) => c.plan.buffers[b].bytes)])).toEqual([
      ['linearCrossEntropy', [B * T * 8 * 4, B * T * 12, 16 * 8 * 4]],
      ['linearCrossEntropyGrad', [B * T * 8 * 4, 16 * 8 * 4]],
    ]);
    expect(numel([B, T, 8])).toBeLessThan(numel([B, T, V]));
  });
});

describe('the head update under LOMO', () => {
  const kinds = (c: { fusion: { groups: readonly { kind: string; nodes: readonly number[] }[] }; step: Graph }) =>
    c.fusion.groups.filter((grp) => grp.kind === 'lossUpdate').map((grp) => grp.nodes.map((i) => c.step.nodes[i].op));
  const dwOf = (step: Graph) => step.nodes.find((n) => n.op === 'linearCrossEntropyGrad')!.outputs[1];

  it("an untied head's update joins its backward (lossUpdate) and its [D, V] gradient gets no storage; SGD, AdaLomo and a tied head keep it", () => {
    for (const [name, extra, optimizer, fused] of [
      ['llama', {}, 'lomo', true], ['llama', {}, 'sgd', false], ['llama', {}, 'adalomo', false], ['llama (tied)', { tied: true }, 'lomo', false],
    ] as const) {
      const c = compileForward(modelGraph(llama, extra), { optimizer, lossChunk: { chunk: 8 } });
      expect([name, optimizer, kinds(c)]).toEqual([name, optimizer, fused ? [['linearCrossEntropyGrad', 'optimizerUpdate']] : []]);
      expect([name, optimizer, c.plan.bufferOf[dwOf(c.step)] >= 0]).toEqual([name, optimizer, !fused]);
    }
  });

  it('LLaMA-7B (f16, --checkpoint blocks): no buffer holds the head\'s 0.24 GiB [4096, 32000] gradient', () => {
    const c = compileForward(traceModel(llama, resolveConfig(llama, 'llama-7b')).graph, { optimizer: 'lomo', dtype: 'f16', checkpoint: { kind: 'blocks' } });
    const dw = dwOf(c.step);
    expect(c.step.values[dw].shape).toEqual([4096, 32000]);
    expect(c.plan.bufferOf[dw]).toBe(-1);
    expect(kinds(c)).toEqual([['linearCrossEntropyGrad', 'optimizerUpdate']]);
  });
});

describe('--fuse-loss', () => {
  const parse = (text: string) => stepOptionValues('plan', { 'fuse-loss': text }, optionChecks('plan')).fuseLoss;
  it('on and off; anything else is an error naming the option', () => {
    expect([parse('on'), parse('off')]).toEqual([true, false]);
    expect(() => parse('no')).toThrow(new LomocError("lomoc plan: option '--fuse-loss' expects on or off, got 'no'"));
  });
});
