// Stochastic rounding of f32 to bf16 and to f16, for LOMO's in-place 16-bit updates: an update
// smaller than half a 16-bit step would always be lost to round-to-nearest; rounded up with probability equal to
// the discarded fraction it survives on average. The random 16 bits come from a counter-based hash
// of (seed, step, param, element), pure u32 arithmetic that the WGSL helper (codegen/wgsl/
// stochastic-round.ts) repeats operation for operation, so the same seed gives the same bits on
// the reference executor and on WebGPU, in any dispatch order.
import { f32bitsOf } from './bf16.ts';
import { f16bits } from './f16.ts';

/** How a 16-bit param is rounded when an update stores it. */
export type Rounding = 'nearest' | 'stochastic';
export const roundings: readonly Rounding[] = ['nearest', 'stochastic'];

/** PCG's output permutation on a 32-bit state (O'Neill's pcg_hash, as used in GPU shaders). */
export function pcgHash(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> (((state >>> 28) + 4) & 31)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** 32 random bits for one element of one param at one step: nested hashes, one per coordinate. */
export function roundingBits(seed: number, step: number, param: number, index: number): number {
  return pcgHash((seed ^ pcgHash((step ^ pcgHash((param ^ pcgHash(index >>> 0)) >>> 0)) >>> 0)) >>> 0);
}

/**
 * The bf16 bits of f32(x) rounded down or up (in magnitude) with probability given by the
 * discarded low 16 bits: add 16 random bits below the kept ones and truncate. NaN becomes 0x7fc0;
 * infinities stay; a finite value may round up to infinity only from above BF16_MAX's step.
 */
export function bf16StochasticBits(x: number, random: number): number {
  const u = f32bitsOf(x);
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  if ((u & 0x7fffffff) === 0x7f800000) return u >>> 16;
  return ((u + (random & 0xffff)) >>> 16) & 0xffff;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fromF32bits = (b: number): number => {
  u32[0] = b >>> 0;
  return f32[0];
};

/**
 * The f16 value (as a number) of f32(x) rounded down or up in magnitude to a neighbouring f16,
 * up with probability equal to the discarded fraction of the step between them, from `random`:
 * - f16 normals (2^-14 <= |x| < 2^16): the step is 2^-10 of the binade, 13 f32 mantissa bits
 *   dropped: add that many random bits below the kept ones and truncate (as bf16 does with 16);
 * - f16 subnormals (2^-24 <= |x| < 2^-14): the step stays 2^-24, so 14..23 bits are dropped;
 * - |x| < 2^-24: 0 or 2^-24, up when (random >>> 8) + floor(|x| * 2^48) carries past 2^24
 *   (probability |x| / 2^-24 in steps of 2^-24, so never below 2^-48: f32 subnormals, which
 *   GPUs may flush, round to zero either way);
 * - overflow as bf16's: a value in (F16_MAX, 2^16) rounds up to infinity with the probability
 *   that takes it past F16_MAX's step (as if 2^16 were the next f16), from 2^16 on it is infinite;
 * signs, infinities and NaN are kept. The WGSL helper repeats these operations on the same bits.
 */
export function f16StochasticValue(x: number, random: number): number {
  const u = f32bitsOf(x);
  const a = u & 0x7fffffff;
  const s = (u & 0x80000000) >>> 0;
  if (a >= 0x7f800000) return fromF32bits(u);
  if (a < 0x00800000) return fromF32bits(s);
  const e = (a >>> 23) - 127;
  if (e >= 16) return fromF32bits(s | 0x7f800000);
  // Below 2^-24: 24 random bits added to floor(|x| / 2^-24 * 2^24), up on the carry past 2^24.
  if (e < -24) return fromF32bits(s | ((random >>> 8) + Math.floor(fromF32bits(a) * 2 ** 48) >= 2 ** 24 ? 0x33800000 : 0));
  const drop = e >= -14 ? 13 : -1 - e;
  const mask = (1 << drop) - 1;
  const t = ((a + ((random >>> 0) & mask)) & ~mask) >>> 0;
  return fromF32bits(s | (t >= 0x47800000 ? 0x7f800000 : t));
}

/** f16StochasticValue as binary16 bits (NaN as 0x7e00). */
export const f16StochasticBits = (x: number, random: number): number => f16bits(f16StochasticValue(x, random));
