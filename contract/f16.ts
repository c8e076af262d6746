// Rounding to IEEE 754 binary16, the analogue of Math.fround (Math.f16round is not in Node 20).
// It rounds the double directly, once: going through f32 first would round twice and could
// land on the other side of a tie.

/** The largest finite f16. */
export const F16_MAX = 65504;
/** Halfway between F16_MAX and 2^16: from here on, round-to-nearest-even overflows to infinity. */
const F16_OVERFLOW = 65520;
/** The smallest normal exponent; below it the spacing stays 2^-24 (subnormals). */
const F16_MIN_EXP = -14;
const F16_MANTISSA_BITS = 10;

/** The binary exponent of a positive finite double: 2^e <= a < 2^(e+1). */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  // log2 can be off by one ulp next to powers of two.
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

/**
 * The f16 value nearest to `x`, ties to even; NaN, infinities and signed zeros pass through,
 * magnitudes from 65520 up become infinities.
 * @example f16round(1 / 3) === 0.333251953125
 */
export function f16round(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= F16_OVERFLOW) return x > 0 ? Infinity : -Infinity;
  const quantum = 2 ** (Math.max(exponentOf(a), F16_MIN_EXP) - F16_MANTISSA_BITS);
  // Exact: dividing by a power of two, and the quotient is below 2^11.
  const steps = a / quantum;
  const floor = Math.floor(steps);
  const frac = steps - floor;
  const up = frac > 0.5 || (frac === 0.5 && floor % 2 === 1);
  const y = (up ? floor + 1 : floor) * quantum;
  return x < 0 ? -y : y;
}

/** The binary16 bit pattern of a value that f16 represents exactly (an f16round result). */
export function f16bits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  const e = exponentOf(a);
  if (e < F16_MIN_EXP) return sign | Math.round(a / 2 ** (F16_MIN_EXP - F16_MANTISSA_BITS));
  return sign | ((e + 15) << F16_MANTISSA_BITS) | Math.round((a / 2 ** e - 1) * 2 ** F16_MANTISSA_BITS);
}

/** The value of a binary16 bit pattern. */
export function fromF16bits(b: number): number {
  const sign = b & 0x8000 ? -1 : 1;
  const e = (b >> F16_MANTISSA_BITS) & 0x1f;
  const m = b & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (F16_MIN_EXP - F16_MANTISSA_BITS);
  return sign * (1 + m / 2 ** F16_MANTISSA_BITS) * 2 ** (e - 15);
}
