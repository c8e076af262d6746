// Stochastic rounding of f32 to bf16 and to f16 in WGSL, operation for operation the host's
// contract/stochastic-round.ts: the PCG hash of (seed, step, param, element) gives 16 random bits
// added below the kept ones before truncating, so the same seed gives the same bits on the
// reference executor and on WebGPU. u32 arithmetic wraps in WGSL as Math.imul and >>> 0 do in JS.
// For the in-place bf16 update's store of p (an update smaller than half a bf16 step survives on
// average instead of being lost to round-to-nearest).

/**
 * pcgHash, roundingBits, f32ToBf16Stochastic(v, r) -> the bf16 bits in the low 16 bits, and
 * f32ToF16Stochastic(v, r) -> the f16 value as an f32 (contract's f16StochasticValue: every case
 * there, on the same bits), which the f16 store, native or packed, keeps exactly.
 */
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
}
fn f32ToF16Stochastic(v: f32, r: u32) -> f32 {
  let u = bitcast<u32>(v);
  let a = u & 0x7fffffffu;
  let s = u & 0x80000000u;
  if (a >= 0x7f800000u) { return v; }
  if (a < 0x00800000u) { return bitcast<f32>(s); }
  let e = i32(a >> 23u) - 127;
  if (e >= 16) { return bitcast<f32>(s | 0x7f800000u); }
  if (e < -24) {
    let y = u32(floor(bitcast<f32>(a) * 281474976710656.0));
    return bitcast<f32>(s | select(0u, 0x33800000u, (r >> 8u) + y >= 16777216u));
  }
  let drop = select(u32(-1 - e), 13u, e >= -14);
  let mask = (1u << drop) - 1u;
  let t = (a + (r & mask)) & ~mask;
  return bitcast<f32>(s | select(t, 0x7f800000u, t >= 0x47800000u));
}`;
