// Stochastic rounding of f32 to bf16, for LOMO's in-place 16-bit updates: an update smaller than
// half a bf16 step would always be lost to round-to-nearest; rounded up with probability equal to
// the discarded fraction it survives on average. The random 16 bits come from a counter-based hash
// of (seed, step, param, element), pure u32 arithmetic that the WGSL helper (codegen/wgsl/
// stochastic-round.ts) repeats operation for operation, so the same seed gives the same bits on
// the reference executor and on WebGPU, in any dispatch order.
import { f32bitsOf } from './bf16.ts';

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
