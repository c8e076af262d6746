// Stochastic rounding of f32 to bf16 in WGSL, operation for operation the host's
// contract/stochastic-round.ts: the PCG hash of (seed, step, param, element) gives 16 random bits
// added below the kept ones before truncating, so the same seed gives the same bits on the
// reference executor and on WebGPU. u32 arithmetic wraps in WGSL as Math.imul and >>> 0 do in JS.
// For the in-place bf16 update's store of p (an update smaller than half a bf16 step survives on
// average instead of being lost to round-to-nearest).

/** pcgHash, roundingBits and f32ToBf16Stochastic(v, r) -> the bf16 bits in the low 16 bits. */
export const stochasticRoundWgsl = `fn pcgHash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn roundingBits(seed: u32, step: u32, param: u32, index: u32) -> u32 {
  return pcgHash(seed ^ pcgHash(step ^ pcgHash(param ^ pcgHash(index))));
}
fn f32ToBf16Stochastic(v: f32, r: u32) -> u32 {
  let u = bitcast<u32>(v);
  let a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { return 0x7fc0u; }
  if (a == 0x7f800000u) { return u >> 16u; }
  return (u + (r & 0xffffu)) >> 16u;
}`;
