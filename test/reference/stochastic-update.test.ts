// Stochastic rounding inside the update on the reference executor: a bf16 param's new value is
// rounded by roundingBits(seed, step, param, element). An update smaller than half a bf16 ulp moves
// the param on average (unbiased) where round-to-nearest loses it; the same seed gives the same bits;
// and the LOMO step still equals the plain SGD step bit for bit under stochastic rounding.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f32bitsOf, fromBf16bits } from '../../contract/bf16.ts';
import { resolveConfig, traceModel } from '../../compiler/dsl/model.ts';
import { sgdRule } from '../../compiler/optimizers/sgd.ts';
import { updateAttrs } from '../../compiler/optimizers/update-layout.ts';
import { initParams } from '../../compiler/reference/init.ts';
import { optimizerKernels } from '../../compiler/reference/kernels-optimizer.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import mlp from '../../models/mlp.ts';
import { compileForward, type StepConfig } from '../../compiler/pipeline.ts';
import { bitDifferences, plainStep, stepFeeds } from '../support/step.ts';

const buildStep = (g: Parameters<typeof compileForward>[0], c: Omit<StepConfig, 'preset' | 'sets' | 'batch' | 'seq'>) => compileForward(g, { ...c, verifyEach: true });
import { randomFeeds } from '../support/trace.ts';

const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });

/** One SGD update of n bf16 weights all `w` by gradient `g` (lr 1, no decay); the stored values. */
function update(w: number, g: number, n: number, stochastic?: { seed: number; param: number }, step = 1): ArrayLike<number> {
  const attrs = updateAttrs(sgdRule, { clipValue: null, scaled: false, master: false, ...(stochastic ? { stochastic } : {}) });
  const named: Record<string, HostTensor> = {
    p: { shape: [n], data: new Float64Array(n).fill(w) }, g: { shape: [n], data: new Float64Array(n).fill(g) },
    lr: scalar(1), wd: scalar(0), step: scalar(step),
  };
  const ins = Object.entries(attrs.inputs).sort((a, b) => a[1] - b[1]).map(([k]) => named[k]);
  return optimizerKernels.optimizerUpdate(ins, attrs, [{ shape: [n], dtype: 'bf16' }], 'f32')[0].data;
}

describe('stochastic rounding in the update (reference executor)', () => {
  it('an update under half a bf16 ulp: nearest loses it, stochastic keeps it on average', () => {
    // At 1 the bf16 step below is 2^-8; 0.001 is a quarter of it. P(down) = 0.001 / 2^-8 = 0.256.
    const n = 8192;
    const nearest = update(1, 0.001, n);
    expect(Array.from(nearest).every((x) => x === 1)).toBe(true);
    const sr = Array.from(update(1, 0.001, n, { seed: 1, param: 0 }));
    expect(sr.every((x) => x === 1 || x === 1 - 2 ** -8)).toBe(true);
    const mean = sr.reduce((a, b) => a + b, 0) / n;
    // One draw's s.d. is 2^-8 * sqrt(p(1-p)) = 0.0017; over 8192 draws 1.9e-5: 5 sigma is 1e-4.
    expect(Math.abs(mean - Math.fround(0.999))).toBeLessThan(1e-4);
    expect(mean).toBeLessThan(1 - 5e-4);
  });

  it('each stored value is a bf16 neighbour of the f32 result, chosen by (seed, step, param, element)', () => {
    fc.assert(fc.property(
      fc.float({ min: -4, max: 4, noNaN: true }), fc.float({ min: -1, max: 1, noNaN: true }),
      fc.nat(0xffffffff), fc.nat(1000), fc.nat(50),
      (w0, g0, seed, step, param) => {
        const [w, g] = [fromBf16bits(f32bitsOf(w0) >>> 16), Math.fround(g0)];
        const exact = Math.fround(w - g);
        const lo = fromBf16bits(f32bitsOf(exact) >>> 16);
        const hi = (f32bitsOf(exact) & 0xffff) === 0 ? lo : fromBf16bits((f32bitsOf(exact) >>> 16) + 1);
        const a = update(w, g, 16, { seed, param }, step);
        for (const x of Array.from(a)) expect(x === lo || x === hi).toBe(true);
        expect(Array.from(update(w, g, 16, { seed, param }, step))).toEqual(Array.from(a));
      }), { numRuns: 300 });
    // A different seed, step or param draws other bits (64 elements each a quarter-ulp update).
    const base = Array.from(update(1, 0.001, 64, { seed: 1, param: 0 }, 1));
    for (const other of [update(1, 0.001, 64, { seed: 2, param: 0 }, 1), update(1, 0.001, 64, { seed: 1, param: 0 }, 2), update(1, 0.001, 64, { seed: 1, param: 1 }, 1)])
      expect(Array.from(other)).not.toEqual(base);
  });

  it('bf16 mlp tiny: the step gets a step input and per-param ids; LOMO equals plain SGD bit for bit', () => {
    const cfg = resolveConfig(mlp, 'tiny');
    const { graph } = traceModel(mlp, cfg);
    const vocab = Number(cfg.classes);
    const base = randomFeeds(graph, 3, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
    const feeds = { ...base, params: initParams(graph, 3, 'f64') };
    const opts = { dtype: 'bf16' as const, rounding: 'stochastic' as const, roundingSeed: 9 };
    const lomo = buildStep(graph, { optimizer: 'lomo', ...opts }).step;
    const sgd = buildStep(graph, { optimizer: 'sgd', master: false, ...opts }).step;
    const updates = lomo.nodes.filter((n) => n.op === 'optimizerUpdate').map((n) => n.attrs as { stochastic?: { seed: number; param: number } });
    expect(updates.map((a) => a.stochastic).sort((x, y) => x!.param - y!.param)).toEqual(graph.params.map((_, k) => ({ seed: 9, param: k })));
    expect(lomo.inputs.map((i) => i.name)).toContain('step');
    const hyper = { lr: 0.05, weightDecay: 0.01, step: 4 };
    const [a, b] = [plainStep(lomo, stepFeeds(lomo, feeds, hyper)), plainStep(sgd, stepFeeds(sgd, feeds, hyper))];
    expect(bitDifferences(a, b)).toEqual([]);
    const nearest = plainStep(buildStep(graph, { optimizer: 'lomo', dtype: 'bf16' }).step, stepFeeds(lomo, feeds, hyper));
    expect(bitDifferences(a, nearest).length).toBeGreaterThan(0);
  });
});
