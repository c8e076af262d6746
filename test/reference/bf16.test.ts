// bf16 storage and stochastic rounding on the host (contract/bf16.ts, contract/stochastic-round.ts):
// round-to-nearest-even against an independent rule, the bit round trip, and stochastic rounding
// that lands on a neighbour and is unbiased (the mean of many draws is the f32 value).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BF16_MAX, bf16bits, bf16round, f32bitsOf, fromBf16bits } from '../../contract/bf16.ts';
import { bf16StochasticBits, pcgHash, roundingBits } from '../../contract/stochastic-round.ts';

/** The two bf16 neighbours of a finite f32 (equal when it is one), from its bits: truncation and one step away from zero. */
function neighbours(x: number): [number, number] {
  const u = f32bitsOf(x);
  const down = fromBf16bits(u >>> 16);
  return (u & 0xffff) === 0 ? [down, down] : [down, fromBf16bits((u >>> 16) + 1)];
}

const finiteF32 = fc.float({ noNaN: true, noDefaultInfinity: true }).filter((x) => Math.abs(x) <= BF16_MAX * (1 - 2 ** -9));

describe('bf16 round to nearest even', () => {
  it('known values', () => {
    expect(bf16round(1 / 3)).toBe(0.333984375);
    expect(bf16round(Math.PI)).toBe(3.140625);
    expect(bf16round(1 + 2 ** -8)).toBe(1); // a tie: to the even mantissa
    expect(bf16round(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(bf16round(BF16_MAX)).toBe(BF16_MAX);
    expect(BF16_MAX).toBe((2 - 2 ** -7) * 2 ** 127);
    expect(bf16round(3.4e38)).toBe(Infinity);
    expect(bf16round(NaN)).toBeNaN();
    expect(bf16bits(NaN)).toBe(0x7fc0);
    expect(Object.is(bf16round(-0), -0)).toBe(true);
    expect(bf16round(-Infinity)).toBe(-Infinity);
  });

  it('every bf16 bit pattern survives the round trip', () => {
    for (let b = 0; b < 0x10000; b++) {
      const x = fromBf16bits(b);
      if (Number.isNaN(x)) continue;
      if (bf16bits(x) !== b) expect.fail(`bits ${b.toString(16)}: ${x} came back as ${bf16bits(x).toString(16)}`);
    }
  });

  it('rounds each f32 to the nearer neighbour, ties to the even one', () => {
    fc.assert(fc.property(finiteF32, (x) => {
      const [lo, hi] = neighbours(x);
      const y = bf16round(x);
      const [dl, dh] = [Math.abs(x - lo), Math.abs(hi - x)];
      const want = dl < dh ? lo : dh < dl ? hi : (bf16bits(lo) & 1) === 0 ? lo : hi;
      expect(y).toBe(want);
    }), { numRuns: 20000 });
  });
});

describe('bf16 stochastic rounding', () => {
  it('the hash is the documented PCG (golden values from an independent Python big-integer version)', () => {
    expect([pcgHash(0), pcgHash(1), pcgHash(0xffffffff)]).toEqual([129708002, 2831084092, 3861530882]);
    expect(roundingBits(7, 3, 2, 1000)).toBe(roundingBits(7, 3, 2, 1000));
    expect(new Set([roundingBits(7, 3, 2, 1000), roundingBits(8, 3, 2, 1000), roundingBits(7, 4, 2, 1000), roundingBits(7, 3, 3, 1000), roundingBits(7, 3, 2, 1001)]).size).toBe(5);
  });

  it('lands on one of the two neighbours, and keeps bf16 values, NaN and infinities', () => {
    fc.assert(fc.property(finiteF32, fc.integer({ min: 0, max: 0xffffffff }), (x, r) => {
      const y = fromBf16bits(bf16StochasticBits(x, r));
      expect(neighbours(x)).toContain(y);
    }), { numRuns: 20000 });
    for (const x of [0, 1, -2.5, BF16_MAX, Infinity, -Infinity]) expect(fromBf16bits(bf16StochasticBits(x, 0xffff))).toBe(x);
    expect(bf16StochasticBits(NaN, 5)).toBe(0x7fc0);
  });

  it('is unbiased: the mean of 20000 draws is the f32 value within 4 standard errors', () => {
    const draws = 20000;
    fc.assert(fc.property(finiteF32.filter((x) => x !== 0), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (x, seed) => {
      const fx = Math.fround(x);
      const [lo, hi] = neighbours(fx);
      let sum = 0;
      for (let i = 0; i < draws; i++) sum += fromBf16bits(bf16StochasticBits(fx, roundingBits(seed, 1, 0, i))) - lo;
      const p = (fx - lo) / (hi - lo || 1);
      const se = Math.abs(hi - lo) * Math.sqrt(p * (1 - p) / draws);
      expect(Math.abs(sum / draws - (fx - lo))).toBeLessThanOrEqual(4 * se + Math.abs(hi - lo) * 2 ** -16);
    }), { numRuns: 40 });
  });

  it('keeps an update round-to-nearest loses: 1 + 2^-10 added 1000 times', () => {
    let [nearest, stochastic] = [1, 1];
    for (let s = 0; s < 1000; s++) {
      nearest = bf16round(nearest + 2 ** -10);
      stochastic = fromBf16bits(bf16StochasticBits(stochastic + 2 ** -10, roundingBits(1, s, 0, 0)));
    }
    expect(nearest).toBe(1);
    expect(Math.abs(stochastic - (1 + 1000 * 2 ** -10))).toBeLessThan(0.1);
  });
});
