// Stochastic rounding to f16 (contract/stochastic-round.ts f16StochasticValue) and in the f16
// update on the reference executor: every result is one of the two f16 neighbours of f32(x) (the
// f16 grid computed here independently, by powers of two), from normals down through f16
// subnormals and below 2^-24, with the edge bits choosing each end; draws are unbiased; an update
// under half an f16 ulp survives on average where nearest loses it; LOMO equals plain SGD bit for bit.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { F16_MAX, f16bits, fromF16bits } from '../../contract/f16.ts';
import { f16StochasticBits, f16StochasticValue, roundingBits } from '../../contract/stochastic-round.ts';
import { resolveConfig, traceModel } from '../../compiler/dsl/model.ts';
import { sgdRule } from '../../compiler/optimizers/sgd.ts';
import { updateAttrs } from '../../compiler/optimizers/update-layout.ts';
import { compileForward } from '../../compiler/pipeline.ts';
import { initParams } from '../../compiler/reference/init.ts';
import { optimizerKernels } from '../../compiler/reference/kernels-optimizer.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import mlp from '../../models/mlp.ts';
import { bitDifferences, plainStep, stepFeeds } from '../support/step.ts';
import { randomFeeds } from '../support/trace.ts';

/** The f16 neighbours of |x| (x an f32): lo <= |x| < hi, or lo = |x| when f16 holds it; hi past F16_MAX is Infinity. */
function neighbours(x: number): { lo: number; hi: number } {
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  const q = 2 ** (Math.max(e + (2 ** (e + 1) <= a ? 1 : 2 ** e > a ? -1 : 0), -14) - 10);
  const lo = Math.floor(a / q) * q;
  const hi = lo + q > F16_MAX ? Infinity : lo + q;
  return { lo, hi };
}

/** f32 values over the whole f16 range and below: normals, f16 subnormals, under 2^-24, near F16_MAX. */
const f32Value = fc.oneof(
  fc.float({ min: Math.fround(2 ** -14), max: 65504, noNaN: true }),
  fc.float({ min: Math.fround(2 ** -24), max: Math.fround(2 ** -14), noNaN: true }),
  fc.float({ min: Math.fround(2 ** -126), max: Math.fround(2 ** -24), noNaN: true }),
  fc.float({ min: 65504, max: Math.fround(65535.99), noNaN: true }),
).chain((a) => fc.boolean().map((neg) => (neg ? -a : a)));

describe('stochastic rounding to f16 (contract)', () => {
  it('gives one of the two f16 neighbours, the lower one for random bits 0 and the upper for all ones, sign kept', () => {
    fc.assert(fc.property(f32Value, fc.nat(0xffffffff), (x, r) => {
      const { lo, hi } = neighbours(x);
      const y = f16StochasticValue(x, r);
      const s = Math.sign(x);
      expect([s * lo, s * hi]).toContain(y);
      expect(f16StochasticBits(x, r)).toBe(f16bits(y));
      expect(fromF16bits(f16bits(y))).toBe(y); // an f16 value exactly
      expect(f16StochasticValue(x, 0)).toBe(s * lo);
      // All ones round up unless x is an f16 value (|x| = lo) or the up-chance is under 2^-24 (|x| < 2^-48).
      if (Math.abs(x) !== lo && Math.abs(x) >= 2 ** -48) expect(f16StochasticValue(x, 0xffffffff)).toBe(s * hi);
    }), { numRuns: 4000 });
  });

  it('specials: zeros, f32 subnormals to zero, infinities and NaN kept, from 2^16 on infinite', () => {
    for (const r of [0, 0x12345678, 0xffffffff]) {
      expect(Object.is(f16StochasticValue(-0, r), -0)).toBe(true);
      expect(Object.is(f16StochasticValue(-1e-40, r), -0)).toBe(true);
      expect(f16StochasticValue(Infinity, r)).toBe(Infinity);
      expect(f16StochasticValue(-65536, r)).toBe(-Infinity);
      expect(f16StochasticValue(1e30, r)).toBe(Infinity);
      expect(f16StochasticValue(65504, r)).toBe(65504);
      expect(f16StochasticValue(2 ** -24, r)).toBe(2 ** -24);
      expect(Number.isNaN(f16StochasticValue(NaN, r))).toBe(true);
      expect(f16StochasticBits(NaN, r)).toBe(0x7e00);
    }
  });

  it('is unbiased: the mean of 65536 draws is the f32 value within 4 standard errors (normal, subnormal, under 2^-24)', () => {
    const draws = 65536;
    for (const v of [1 + 2 ** -12, -3.14159, 0.001 * 1.37, 1000.3, 3.3e-6, -1.5e-8, 2 ** -30]) {
      const x = Math.fround(v);
      const { lo, hi } = neighbours(x);
      let sum = 0;
      for (let i = 0; i < draws; i++) sum += Math.abs(f16StochasticValue(x, roundingBits(7, 3, 1, i))) - lo;
      const p = (Math.abs(x) - lo) / (hi - lo);
      expect(p > 0 && p < 1, `${v}`).toBe(true);
      const se = (hi - lo) * Math.sqrt((p * (1 - p)) / draws);
      expect(Math.abs(sum / draws - (Math.abs(x) - lo)), `${v}`).toBeLessThanOrEqual(4 * se + (hi - lo) * 2 ** -24);
    }
  });
});

const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });

/** One SGD update of n f16 weights all `w` by gradient `g` (lr 1, no decay); the stored values. */
function update(w: number, g: number, n: number, stochastic?: { seed: number; param: number; format: 'f16' }, step = 1): ArrayLike<number> {
  const attrs = updateAttrs(sgdRule, { clipValue: null, scaled: false, master: false, ...(stochastic ? { stochastic } : {}) });
  const named: Record<string, HostTensor> = {
    p: { shape: [n], data: new Float64Array(n).fill(w) }, g: { shape: [n], data: new Float64Array(n).fill(g) },
    lr: scalar(1), wd: scalar(0), step: scalar(step),
  };
  const ins = Object.entries(attrs.inputs).sort((a, b) => a[1] - b[1]).map(([k]) => named[k]);
  return optimizerKernels.optimizerUpdate(ins, attrs, [{ shape: [n], dtype: 'f16' }], 'f32')[0].data;
}

describe('stochastic rounding in the f16 update (reference executor)', () => {
  it('an update under half an f16 ulp: nearest loses it, stochastic keeps it on average', () => {
    // At 1 the f16 step below is 2^-11; 1.2e-4 is a quarter of it. P(down) = 1.2e-4 / 2^-11 = 0.246.
    const n = 8192;
    expect(Array.from(update(1, 1.2e-4, n)).every((x) => x === 1)).toBe(true);
    const sr = Array.from(update(1, 1.2e-4, n, { seed: 1, param: 0, format: 'f16' }));
    expect(sr.every((x) => x === 1 || x === 1 - 2 ** -11)).toBe(true);
    const mean = sr.reduce((a, b) => a + b, 0) / n;
    // One draw's s.d. is 2^-11 * sqrt(p(1-p)) = 2.1e-4; over 8192 draws 2.3e-6: 5 sigma is 1.2e-5.
    expect(Math.abs(mean - Math.fround(1 - 1.2e-4))).toBeLessThan(1.2e-5);
  });

  it('f16 mlp tiny: each update rounds stochastically as f16; LOMO equals plain SGD bit for bit, and differs from nearest', () => {
    const cfg = resolveConfig(mlp, 'tiny');
    const { graph } = traceModel(mlp, cfg);
    const vocab = Number(cfg.classes);
    const base = randomFeeds(graph, 3, { vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])) });
    const feeds = { ...base, params: initParams(graph, 3, 'f64') };
    const opts = { dtype: 'f16' as const, rounding: 'stochastic' as const, roundingSeed: 9, verifyEach: true };
    const lomo = compileForward(graph, { optimizer: 'lomo', ...opts }).step;
    const sgd = compileForward(graph, { optimizer: 'sgd', master: false, ...opts }).step;
    const updates = lomo.nodes.filter((n) => n.op === 'optimizerUpdate').map((n) => (n.attrs as { stochastic?: { param: number } }).stochastic);
    expect(updates.sort((x, y) => x!.param - y!.param)).toEqual(graph.params.map((_, k) => ({ seed: 9, param: k, format: 'f16' })));
    const hyper = { lr: 0.05, weightDecay: 0.01, step: 4 };
    const [a, b] = [plainStep(lomo, stepFeeds(lomo, feeds, hyper)), plainStep(sgd, stepFeeds(sgd, feeds, hyper))];
    expect(bitDifferences(a, b)).toEqual([]);
    const nearest = plainStep(compileForward(graph, { optimizer: 'lomo', dtype: 'f16', rounding: 'nearest' }).step, stepFeeds(lomo, feeds, hyper));
    expect(bitDifferences(a, nearest).length).toBeGreaterThan(0);
  });
});
