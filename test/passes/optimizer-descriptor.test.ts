// A new optimizer needs only its descriptor: two throwaway ones are defined and registered here,
// without editing any source file, and compiled, scheduled, planned and run on the reference
// executor against hand-written versions of their rules. SGD with momentum (one state of the
// param's shape; also run inside backward, LOMO-style) and a factored second moment (a [rows]
// state and a [columns] state per param, as AdaLomo's). Plus --opt: checked against the chosen
// optimizer's descriptor, and its values reach the compiled update.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig, traceModel } from '../../compiler/dsl/model.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { optimizerNames } from '../../compiler/optimizers/table.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { stepConfigFrom } from '../../cli/args.ts';
import { hyperFor } from '../../cli/optimizer-options.ts';
import { planRequest } from '../../cli/plan.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run as lomoc } from '../support/cli.ts';
import { LomocError } from '../../compiler/diagnostics.ts';
import mlp from '../../models/mlp.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds, type StepResult } from '../support/step.ts';
import { freshnessViolations, planViolations } from '../support/step-checks.ts';
import { registerThrowaways } from '../support/throwaway-optimizers.ts';
import { randomFeeds } from '../support/trace.ts';

registerThrowaways();

const hyper = { lr: 0.05, weightDecay: 0.01 };
const f32 = (x: number) => Math.fround(x);
// The executor stores the fed scalars as f32; the hand-written rules use those values.
const [lr, wd] = [f32(hyper.lr), f32(hyper.weightDecay)];
const tensor = (shape: readonly number[], data: ArrayLike<number>): HostTensor => ({ shape, data: Float64Array.from(data) });

function mlpTiny(seed: number): { graph: Graph; feeds: Feeds } {
  const { graph } = traceModel(mlp, resolveConfig(mlp, 'tiny'));
  const cfg = resolveConfig(mlp, 'tiny');
  const vocab = Number(cfg.classes);
  const base = randomFeeds(graph, seed, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
  return { graph, feeds: { ...base, params: initParams(graph, seed, 'f64') } };
}

/**
 * Runs `steps` steps of `step` on the reference executor, feeding params and state back, and checks
 * each against `rule` applied by hand to the gradients that step computed. Returns the last result.
 */
function checkAgainstHand(
  step: Graph, feeds: Feeds, steps: number,
  hand: (w: number[], g: number[], state: Record<string, number[]>, shape: readonly number[]) => { w: number[]; state: Record<string, number[]> },
): StepResult {
  let f = stepFeeds(step, feeds, hyper);
  let last: StepResult | undefined;
  for (let t = 0; t < steps; t++) {
    const run = execute(step, f, 'f32');
    const params: Record<string, HostTensor> = {};
    const state: Record<string, HostTensor> = {};
    for (const p of step.params) {
      const shape = step.values[p.value].shape;
      const w = Array.from(run.values[p.value]!.data);
      const g = Array.from(run.values[step.grads![p.name]]!.data);
      const mine = (step.state ?? []).filter((s) => s.param === p.name);
      const old = Object.fromEntries(mine.map((s) => [s.name.slice(0, s.name.indexOf('.')), Array.from(run.values[s.value]!.data)]));
      const want = hand(w, g, old, shape);
      expect(Array.from(run.values[step.updates![p.name]]!.data), `step ${t + 1}: ${p.name}`).toEqual(want.w.map(f32));
      params[p.name] = tensor(shape, run.values[step.updates![p.name]]!.data);
      for (const s of mine) {
        const kind = s.name.slice(0, s.name.indexOf('.'));
        expect(Array.from(run.values[s.next]!.data), `step ${t + 1}: ${s.name}`).toEqual(want.state[kind].map(f32));
        state[s.name] = tensor(step.values[s.value].shape, run.values[s.next]!.data);
      }
    }
    last = { loss: run.loss, params, state };
    f = { ...f, params, state };
  }
  return last!;
}

describe('an optimizer defined by its descriptor alone', () => {
  it('is listed wherever optimizer names are (--optimizer, plan --optimizer all)', () => {
    expect(optimizerNames()).toEqual(['sgd', 'adamw', 'lomo', 'adalomo', 'momentum', 'momentumLomo', 'factored']);
    expect(stepConfigFrom('run', { optimizer: 'momentum', opt: ['momentum=0.5'] })).toMatchObject({ optimizer: 'momentum', hyper: { momentum: 0.5 } });
  });

  it('SGD with momentum: compiles, verifies, plans, and each of 3 steps matches momentum SGD written by hand', () => {
    const { graph, feeds } = mlpTiny(3);
    const mu = 0.8;
    const built = buildStep(graph, { optimizer: 'momentum', hyper: { momentum: mu } });
    expect(planViolations(built.plan)).toEqual([]);
    const states = built.step.state!;
    expect(states.map((s) => s.name)).toEqual(graph.params.map((p) => `buf.${p.name}`));
    for (const s of states) expect(built.step.values[s.value].shape).toEqual(graph.values[graph.params.find((p) => p.name === s.param)!.value].shape);
    checkAgainstHand(built.step, feeds, 3, (w, g, st) => {
      const buf = st.buf.map((b, i) => mu * b + g[i]);
      return { w: w.map((x, i) => x - lr * (buf[i] + wd * x)), state: { buf } };
    });
  });

  it('the same rule inside backward (momentumLomo) equals momentum bit for bit, in its plan, on random models', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom({}, { clipNorm: 0.05 }), fc.integer(), ({ recipe, graph }, clip, seed) => {
        const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
        const inBackward = buildStep(graph, { optimizer: 'momentumLomo', ...clip });
        const plain = buildStep(graph, { optimizer: 'momentum', ...clip });
        expect(freshnessViolations(inBackward.step)).toEqual([]);
        expect(planViolations(inBackward.plan)).toEqual([]);
        const got = plannedStep(inBackward, stepFeeds(inBackward.step, feeds, hyper));
        const want = plainStep(plain.step, stepFeeds(plain.step, feeds, hyper));
        expect(bitDifferences(got, want)).toEqual([]);
      }),
      { numRuns: 8 },
    ));

  it('factored moments: [rows] and [columns] states pass verify and plan, and the planned step matches the rule by hand', () => {
    const { graph, feeds } = mlpTiny(4);
    const built = buildStep(graph, { optimizer: 'factored', hyper: { beta: 0.5 } });
    expect(planViolations(built.plan)).toEqual([]);
    for (const p of graph.params) {
      const shape = graph.values[p.value].shape;
      const stateShape = (kind: string) => built.step.values[built.step.state!.find((s) => s.name === `${kind}.${p.name}`)!.value].shape;
      const cols = shape[shape.length - 1];
      expect([stateShape('row'), stateShape('col')]).toEqual([[shape.reduce((a, b) => a * b, 1) / cols], [cols]]);
    }
    // A 2-D weight's states hold m + n floats, not m x n.
    const w2d = graph.params.find((p) => graph.values[p.value].shape.length === 2)!;
    const [m, n] = graph.values[w2d.value].shape;
    const stateFloats = built.step.state!.filter((s) => s.param === w2d.name).reduce((a, s) => a + built.step.values[s.value].shape[0], 0);
    expect(stateFloats).toBe(m + n);

    const hand = (w: number[], g: number[], st: Record<string, number[]>, shape: readonly number[]) => {
      const cols = shape[shape.length - 1];
      const rows = g.length / cols;
      const row = st.row.map((r, i) => { let s = 0; for (let j = 0; j < cols; j++) s += g[i * cols + j] ** 2; return 0.5 * r + (0.5 * s) / cols; });
      const col = st.col.map((c, j) => { let s = 0; for (let i = 0; i < rows; i++) s += g[i * cols + j] ** 2; return 0.5 * c + (0.5 * s) / rows; });
      const mean = row.reduce((a, b) => a + b, 0) / rows;
      const out = w.map((x, k) => { const i = Math.floor(k / cols), j = k % cols; return x - lr * (g[k] / (Math.sqrt((row[i] * col[j]) / mean) + 1e-3) + wd * x); });
      return { w: out, state: { row, col } };
    };
    checkAgainstHand(built.step, feeds, 2, hand);
    // Inside its plan (in place, states aliased onto their new values) it computes the same bits.
    const once = checkAgainstHand(built.step, feeds, 1, hand);
    const planned = plannedStep(built, stepFeeds(built.step, feeds, hyper));
    expect(bitDifferences(planned, once)).toEqual([]);
  });

  it('factored moments without a WGSL rule: codegen says so instead of producing a kernel', () => {
    const c = compileStep(mlp, { preset: 'tiny', optimizer: 'factored' });
    let error: unknown;
    try {
      lowerStep(c.step, c.plan, c.fusion, kernelTargets.cpu);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LomocError);
    expect((error as Error).message).toBe("models/mlp.ts:15:13: error: optimizerUpdate: the update rule 'factored' has no WGSL kernel yet; run it on the reference executor (--device cpu)");
  });

  it('momentum lowers to WGSL with its hyper-parameter as a uniform, keyed by its rule', () => {
    // One kernel per update (updateBatch off); batched, all of them share one dispatch with the same rule.
    const c = compileStep(mlp, { preset: 'tiny', optimizer: 'momentum', hyper: { momentum: 0.75 }, fusion: { updateBatch: false } });
    const program = lowerStep(c.step, c.plan, c.fusion, kernelTargets.cpu);
    const updates = program.dispatches.filter((d) => d.label.startsWith('optimizerUpdate'));
    expect(updates.length).toBe(c.step.params.length);
    const b = compileStep(mlp, { preset: 'tiny', optimizer: 'momentum', hyper: { momentum: 0.75 } });
    const batched = lowerStep(b.step, b.plan, b.fusion, kernelTargets.cpu).dispatches.filter((d) => d.label.startsWith('optimizerUpdate'));
    expect(batched.map((d) => d.label.split(' @')[0])).toEqual([`optimizerUpdate*${c.step.params.length}`]);
    const key = updates[0].shader;
    expect(key).toMatch(/^update\.momentumSgd\./);
    expect(program.shaders[key]).toContain('h_mu: f32');
    expect(updates[0].uniforms).toContain(new Uint32Array(Float32Array.of(0.75).buffer)[0]);
  });
});

describe('--opt KEY=VALUE', () => {
  const parse = (optimizer: string, ...opt: string[]) => stepConfigFrom('train', { optimizer, opt });
  it('sets the chosen optimizer\'s hyper-parameters; they reach the update nodes, defaults for the rest', () => {
    expect(parse('adamw', 'beta1=0.95', 'eps=1e-6').hyper).toEqual({ beta1: 0.95, eps: 1e-6 });
    const c = compileStep(mlp, { preset: 'tiny', optimizer: 'adamw', hyper: { beta1: 0.95, eps: 1e-6 } });
    const up = c.step.nodes.find((n) => n.op === 'optimizerUpdate')!;
    expect(up.attrs).toMatchObject({ rule: 'adamw', hyper: { beta1: 0.95, beta2: 0.999, eps: 1e-6 } });
  });
  it('rejects what the descriptor does not allow, naming the optimizer and its keys', () => {
    const msg = (f: () => unknown) => { try { f(); } catch (e) { return (e as Error).message; } return 'no error'; };
    // LomocError's message is the whole formatted diagnostic.
    expect(msg(() => parse('adamw', 'beta3=0.9'))).toBe("error: lomoc train: option '--opt': optimizer 'adamw' has no hyper-parameter 'beta3'; its keys: beta1, beta2, eps");
    expect(msg(() => parse('lomo', 'beta1=0.9'))).toBe("error: lomoc train: option '--opt': optimizer 'lomo' has no hyper-parameter 'beta1'; it has none");
    expect(msg(() => parse('adamw', 'beta1=high'))).toBe("error: lomoc train: option '--opt beta1' expects a number, got 'high'");
    expect(msg(() => parse('adamw', 'beta1'))).toBe("error: lomoc train: option '--opt' expects KEY=VALUE, got 'beta1'");
    expect(msg(() => parse('adamw', 'beta1=0.9', 'beta1=0.8'))).toBe("error: lomoc train: option '--opt beta1' given twice");
    expect(msg(() => parse('adamw', 'beta2=1.5'))).toBe("error: lomoc train: option '--opt': beta2 of optimizer 'adamw' must be a number from 0 to 0.999999, got 1.5");
    expect(msg(() => compileStep(mlp, { preset: 'tiny', optimizer: 'adam' }))).toBe(
      "error: optimizer: expected sgd, adamw, lomo, adalomo, momentum, momentumLomo or factored, got 'adam'");
    expect(msg(() => compileStep(mlp, { preset: 'tiny', optimizer: 'adamw', hyper: { beta: 0.9 } }))).toBe(
      "error: hyper-parameters: optimizer 'adamw' has no hyper-parameter 'beta'; its keys: beta1, beta2, eps");
    expect(msg(() => parse('adam'))).toBe("error: lomoc train: option '--optimizer' expects sgd, adamw, lomo, adalomo, momentum, momentumLomo or factored, got 'adam'");
  });
  it('lomoc plan --optimizer all: each key must belong to one of them, and each optimizer gets its own keys', () => {
    const req = planRequest(['m.ts'], { opt: ['beta1=0.95', 'momentum=0.5'] });
    expect(req.optimizers).toEqual(['adamw', 'sgd', 'lomo', 'adalomo', 'momentum', 'momentumLomo', 'factored']);
    expect(req.optimizers.map((o) => hyperFor(o, req.hyper!))).toEqual([{ beta1: 0.95 }, {}, {}, {}, { momentum: 0.5 }, { momentum: 0.5 }, {}]);
    const msg = (f: () => unknown) => { try { f(); } catch (e) { return (e as Error).message; } return 'no error'; };
    expect(msg(() => planRequest(['m.ts'], { opt: ['bogus=1'] }))).toBe(
      "error: lomoc plan: option '--opt': none of the optimizers adamw, sgd, lomo, adalomo, momentum, momentumLomo and factored has a hyper-parameter 'bogus'");
    expect(msg(() => planRequest(['m.ts'], { optimizer: 'sgd', opt: ['beta1=0.9'] }))).toBe(
      "error: lomoc plan: option '--opt': optimizer 'sgd' has no hyper-parameter 'beta1'; it has none");
  });
  it('lomoc compile records --opt in the manifest beside the optimizer', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'lomoc-opt-')), 'bundle');
    const r = await lomoc('compile', 'models/mlp.ts', '--preset', 'tiny', '--optimizer', 'adamw', '--opt', 'beta2=0.99', '--target', 'cpu', '--out', dir);
    expect(r.stderr).toBe('');
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.step).toMatchObject({ optimizer: 'adamw', hyper: { beta2: 0.99 } });
  });
});
