// AdaLomo on the reference executor: against AdaLomo written here from the paper's formulas in
// f64 (Lv et al. 2023, arXiv 2310.10195, Algorithm 1; the defaults of OpenLMLab/LOMO's
// lomo_optim/adalomo.py), sharing no code with compiler/optimizers/adalomo.ts, over several steps so
// r, c and b_t evolve; fused into backward equals the same rule after backward bit for bit; its
// state is m + n floats per matrix; and its options are checked against its descriptor.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stepConfigFrom } from '../../cli/args.ts';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph, NodeOf } from '../../compiler/ir/types.ts';
import { updateScratch } from '../../compiler/codegen/wgsl/emit-update-phases.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { numel } from '../../compiler/ir/shape.ts';
import { adalomo } from '../../compiler/optimizers/adalomo.ts';
import { matrixShape } from '../../compiler/optimizers/descriptor.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import { memoryReport } from '../../compiler/report/memory-report.ts';
import { optimizerNames, registerOptimizer } from '../../compiler/optimizers/table.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds } from '../support/step.ts';
import { freshnessViolations, planViolations } from '../support/step-checks.ts';
import { run as lomoc } from '../support/cli.ts';
import { randomFeeds } from '../support/trace.ts';

// The same rule after backward (all gradients first): what "unfused" means here.
if (!optimizerNames().includes('adalomoAfter'))
  registerOptimizer({ ...adalomo, name: 'adalomoAfter', inBackward: false, clipNorm: 'afterBackward' });

interface Hyper { eps1: number; eps2: number; clipThreshold: number; decayRate: number }
const published: Hyper = { eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, decayRate: -0.8 };

const mean = (a: readonly number[]) => a.reduce((s, x) => s + x, 0) / a.length;
const rms = (a: readonly number[]) => Math.sqrt(mean(a.map((x) => x * x)));

/**
 * One AdaLomo update of one param, from the paper: a matrix keeps row and column averages of
 * g^2 + eps1, a vector (or scalar) its full second moment v. Tensors of rank > 2 are matrices over
 * their last axis. Returns the new weights and states (for a vector, `row` is the mean of v's
 * update, which the compiled rule keeps so that it can treat a vector as one row).
 */
function paperUpdate(w: number[], g: number[], shape: readonly number[], st: { row: number[]; col: number[] }, t: number, lr: number, wd: number, h: Hyper) {
  const beta = 1 - t ** h.decayRate;
  const sq = g.map((x) => x * x + h.eps1);
  let u: number[];
  let row: number[];
  let col: number[];
  if (shape.length >= 2) {
    const n = shape[shape.length - 1];
    const m = g.length / n;
    row = st.row.map((r, i) => beta * r + (1 - beta) * mean(sq.slice(i * n, (i + 1) * n)));
    col = st.col.map((c, j) => beta * c + (1 - beta) * mean(Array.from({ length: m }, (_, i) => sq[i * n + j])));
    const meanRow = mean(row);
    u = g.map((x, k) => x / Math.sqrt((row[Math.floor(k / n)] * col[k % n]) / meanRow));
  } else {
    const v = st.col.map((x, j) => beta * x + (1 - beta) * sq[j]);
    u = g.map((x, j) => x / Math.sqrt(v[j]));
    col = v;
    row = [beta * st.row[0] + (1 - beta) * mean(sq)];
  }
  const uHat = u.map((x) => x / Math.max(1, rms(u) / h.clipThreshold));
  const alpha = lr * Math.max(h.eps2, rms(w));
  return { w: w.map((x, k) => x - alpha * (uHat[k] + wd * x)), row, col };
}

const lr = 0.05;
const wd = 0.01;
const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });

/** Largest |a - b| relative to the largest |b| (0 for two empty arrays). */
function relErr(a: ArrayLike<number>, b: readonly number[]): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return s === 0 ? d : d / s;
}

/**
 * `steps` AdaLomo steps of `graph` on the reference executor in f64, each update compared with
 * paperUpdate applied to the gradient that step computed; returns the worst relative error.
 */
function againstPaper(graph: Graph, feeds: Feeds, steps: number, h: Hyper): number {
  const { step } = buildStep(graph, { optimizer: 'adalomo', hyper: { ...h } });
  let params = feeds.params;
  let state = stepFeeds(step, feeds, { lr, weightDecay: wd }).state!;
  let worst = 0;
  for (let t = 1; t <= steps; t++) {
    const run = execute(step, { inputs: { ...feeds.inputs, lr: scalar(lr), weightDecay: scalar(wd), step: scalar(t) }, params, state }, 'f64');
    const nextParams: Record<string, HostTensor> = {};
    const nextState: Record<string, HostTensor> = {};
    for (const p of step.params) {
      const shape = step.values[p.value].shape;
      const [rowDecl, colDecl] = ['row', 'col'].map((k) => step.state!.find((s) => s.name === `${k}.${p.name}`)!);
      const want = paperUpdate(
        Array.from(params[p.name].data), Array.from(run.values[step.grads![p.name]]!.data), shape,
        { row: Array.from(state[rowDecl.name].data), col: Array.from(state[colDecl.name].data) }, t, lr, wd, h);
      const got = { w: run.values[step.updates![p.name]]!.data, row: run.values[rowDecl.next]!.data, col: run.values[colDecl.next]!.data };
      for (const k of ['w', 'row', 'col'] as const) {
        const e = relErr(got[k], want[k]);
        expect(e, `step ${t}: ${k} of ${p.name}${JSON.stringify(shape)}`).toBeLessThan(1e-9);
        worst = Math.max(worst, e);
      }
      nextParams[p.name] = { shape, data: Float64Array.from(got.w) };
      nextState[rowDecl.name] = { shape: [got.row.length], data: Float64Array.from(got.row) };
      nextState[colDecl.name] = { shape: [got.col.length], data: Float64Array.from(got.col) };
    }
    params = nextParams;
    state = nextState;
  }
  return worst;
}

function preset(def: ModelDef, seed: number): { graph: Graph; feeds: Feeds } {
  const cfg = resolveConfig(def, 'tiny');
  const { graph } = traceModel(def, cfg);
  const vocab = Number(cfg.vocab ?? cfg.classes);
  const base = randomFeeds(graph, seed, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
  return { graph, feeds: { ...base, params: initParams(graph, seed, 'f64') } };
}

const hyperVariant = fc.constantFrom<Hyper>(published, { eps1: 1e-20, eps2: 0.5, clipThreshold: 0.05, decayRate: -0.5 });

describe('AdaLomo equals the paper\'s formulas (f64, 4 steps)', () => {
  for (const [name, def] of [['mlp', mlp], ['gpt', gpt], ['llama', llama]] as const)
    it(`${name} tiny, published defaults and a variant that clips the update RMS`, () => {
      const { graph, feeds } = preset(def, 7);
      for (const h of [published, { eps1: 1e-20, eps2: 0.5, clipThreshold: 0.05, decayRate: -0.5 }])
        expect(againstPaper(graph, feeds, 4, h)).toBeLessThan(1e-9);
    });

  it('random models', () =>
    fc.assert(
      fc.property(arbitraryModel, hyperVariant, fc.integer(), ({ recipe, graph }, h, seed) => {
        const base = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
        againstPaper(graph, { ...base, params: initParams(graph, seed, 'f64') }, 3, h);
      }),
      { numRuns: 10 },
    ));
});

describe('AdaLomo fused into backward', () => {
  it('equals the same rule after backward bit for bit, with and without clipping, in its plan', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom({}, { clipNorm: 0.05 }, { clipValue: 0.01 }), fc.integer({ min: 1, max: 20 }), fc.integer(), ({ recipe, graph }, clip, t, seed) => {
        const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
        const fused = buildStep(graph, { optimizer: 'adalomo', ...clip });
        const after = buildStep(graph, { optimizer: 'adalomoAfter', ...clip });
        expect(freshnessViolations(fused.step)).toEqual([]);
        expect(planViolations(fused.plan)).toEqual([]);
        const got = plannedStep(fused, stepFeeds(fused.step, feeds, { lr, weightDecay: wd, step: t }));
        const want = plainStep(after.step, stepFeeds(after.step, feeds, { lr, weightDecay: wd, step: t }));
        expect(bitDifferences(got, want)).toEqual([]);
      }),
      { numRuns: 10 },
    ));

  it('holds m + n floats of state per m x n matrix, n + 1 per vector of n', () => {
    const { graph } = preset(gpt, 1);
    const { step } = buildStep(graph, { optimizer: 'adalomo' });
    for (const p of graph.params) {
      const shape = graph.values[p.value].shape;
      const floats = step.state!.filter((s) => s.param === p.name).map((s) => step.values[s.value].shape);
      const n = shape[shape.length - 1];
      expect(floats).toEqual(shape.length >= 2 ? [[shape.reduce((a, b) => a * b, 1) / n], [n]] : [[1], [n]]);
    }
  });
});

describe('AdaLomo plans', () => {
  it('llama-7b f16, batch 8, seq 512, checkpoint blocks: m + n floats per matrix; the peak within LOMO\'s + states + one weight gradient + scratch', () => {
    const cfg = { preset: 'llama-7b', dtype: 'f16', batch: 8, seq: 512, checkpoint: { kind: 'blocks' }, target: 'gpu' } as const;
    const [lomo, ada] = (['lomo', 'adalomo'] as const).map((optimizer) => compileStep(llama, { ...cfg, optimizer }));
    const shapes = ada.step.params.map((p) => ada.step.values[p.value].shape);
    const states = shapes.reduce((a, s) => a + 4 * (matrixShape(s).rows + matrixShape(s).cols), 0);
    const [l, r] = [memoryReport(lomo.plan), memoryReport(ada.plan)];
    expect(r.most.optimizerState).toBe(states);
    expect(states).toBeLessThan(12e6); // about 11 MB (LOMO.md)
    // LOMO fuses each weight-gradient matmul with its update; AdaLomo needs the whole gradient's
    // statistics first, so one weight gradient (f16) is stored, and one update's scratch.
    const gradient = Math.max(...shapes.map((s) => 2 * numel(s)));
    const scratch = Math.max(...ada.step.nodes.filter((n) => n.op === 'optimizerUpdate').map((n) => updateScratch.optimizerUpdate(n as NodeOf<'optimizerUpdate'>, ada.step, kernelTargets.gpu)[0] ?? 0));
    // The LM head [4096, 32000]: its columns summed in 8 row chunks (2^18 partials at most).
    expect(scratch).toBe(4 * (3 + 8 * 32000));
    expect(r.total).toBeLessThanOrEqual(l.total + states + gradient + scratch);
  }, 120_000);
});

describe('--optimizer adalomo options', () => {
  const msg = (f: () => unknown) => { try { f(); } catch (e) { return (e as Error).message; } return 'no error'; };
  const parse = (...opt: string[]) => stepConfigFrom('train', { optimizer: 'adalomo', opt });
  it('takes its own four keys', () => {
    expect(parse('eps2=0.01', 'clipThreshold=0.5', 'decayRate=-0.5', 'eps1=1e-20').hyper).toEqual({ eps2: 0.01, clipThreshold: 0.5, decayRate: -0.5, eps1: 1e-20 });
  });
  it('lomoc plan and run: a key it does not take is an error naming the optimizer, the key and its keys', async () => {
    for (const command of ['plan', 'run'])
      expect(await lomoc(command, 'models/mlp.ts', '--optimizer', 'adalomo', '--opt', 'beta1=0.9', ...(command === 'run' ? ['--steps', '1'] : []))).toEqual({
        code: 1, stdout: '',
        stderr: `error: lomoc ${command}: option '--opt': optimizer 'adalomo' has no hyper-parameter 'beta1'; its keys: eps1, eps2, clipThreshold, decayRate`,
      });
  });
  it('rejects a key it does not take, and values outside their range, naming them', () => {
    expect(msg(() => parse('beta1=0.9'))).toBe(
      "error: lomoc train: option '--opt': optimizer 'adalomo' has no hyper-parameter 'beta1'; its keys: eps1, eps2, clipThreshold, decayRate");
    expect(msg(() => parse('decayRate=0.5'))).toBe("error: lomoc train: option '--opt': decayRate of optimizer 'adalomo' must be a number from -10 to 0, got 0.5");
    expect(msg(() => parse('clipThreshold=0'))).toBe("error: lomoc train: option '--opt': clipThreshold of optimizer 'adalomo' must be a number >= 0.000001, got 0");
  });
});
