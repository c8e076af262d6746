import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { F16_MAX, f16round } from '../../contract/f16.ts';

/** Decodes an f16 bit pattern independently of the code under test. */
function decode(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

describe('f16round', () => {
  it('keeps values that are already f16', () => {
    for (const x of [0, 1, -2, 0.5, 65504, -65504, 2 ** -14, 2 ** -24, 1023 * 2 ** -24, 2048, 0.333251953125])
      expect(f16round(x)).toBe(x);
    expect(F16_MAX).toBe(65504);
  });

  it('rounds known values to nearest', () => {
    expect(f16round(1 / 3)).toBe(0.333251953125);
    expect(f16round(0.1)).toBe(0.0999755859375);
    expect(f16round(Math.PI)).toBe(3.140625);
    expect(f16round(-Math.E)).toBe(-2.71875);
    expect(f16round(1e-5)).toBe(168 * 2 ** -24);
  });

  it('overflows to infinity from 65520, the tie above the largest finite value', () => {
    expect(f16round(65519.99)).toBe(65504);
    expect(f16round(65520)).toBe(Infinity);
    expect(f16round(-65520)).toBe(-Infinity);
    expect(f16round(1e10)).toBe(Infinity);
  });

  it('rounds ties to even', () => {
    expect(f16round(1 + 2 ** -11)).toBe(1);
    expect(f16round(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
    expect(f16round(2049)).toBe(2048);
    expect(f16round(2051)).toBe(2052);
    expect(f16round(-2049)).toBe(-2048);
  });

  it('handles subnormals, their ties, and the step up to the smallest normal', () => {
    expect(f16round(2 ** -25)).toBe(0);
    expect(f16round(2 ** -25 * 1.0001)).toBe(2 ** -24);
    expect(f16round(3 * 2 ** -25)).toBe(2 ** -23);
    expect(f16round(5 * 2 ** -26)).toBe(2 ** -24);
    expect(f16round(1023.5 * 2 ** -24)).toBe(2 ** -14);
    expect(f16round(1e-30)).toBe(0);
    expect(Object.is(f16round(-1e-30), -0)).toBe(true);
  });

  it('passes NaN, infinities and signed zeros through', () => {
    expect(f16round(NaN)).toBeNaN();
    expect(f16round(-Infinity)).toBe(-Infinity);
    expect(Object.is(f16round(-0), -0)).toBe(true);
  });

  it('exhaustively: each midpoint of neighbouring f16 values goes to the even one, points beside it to the nearer', () => {
    const wrong: string[] = [];
    const check = (x: number, want: number) => {
      if (!Object.is(f16round(x), want)) wrong.push(`f16round(${x}) = ${f16round(x)}, expected ${want}`);
    };
    for (let h = 0; h < 0x7bff; h++) {
      const [lo, hi] = [decode(h), decode(h + 1)];
      const mid = (lo + hi) / 2;
      const even = h % 2 === 0 ? lo : hi;
      check(mid, even);
      check(-mid, -even);
      const eps = (hi - lo) * 2 ** -20;
      check(mid - eps, lo);
      check(mid + eps, hi);
      check(lo, lo);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it('is idempotent and monotone on random doubles', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), fc.double({ noNaN: true }), (a, b) => {
        const [ra, rb] = [f16round(a), f16round(b)];
        expect(f16round(ra)).toBe(ra);
        if (a <= b) expect(ra <= rb).toBe(true);
      }),
    );
  });
});
