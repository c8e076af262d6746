// bfloat16: the top 16 bits of an f32 (8 exponent bits, 7 mantissa bits), the dtype of most
// published LLM checkpoints. Stored values come from f32 by round-to-nearest-even on the bits,
// exactly what the WGSL store does (codegen/wgsl/half-storage.ts), so host and device agree bit for bit.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 bit pattern of `x` after rounding it to f32. */
export function f32bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** The bf16 bit pattern nearest to f32(x), ties to even; NaN becomes the quiet NaN 0x7fc0. */
export function bf16bits(x: number): number {
  const u = f32bitsOf(x);
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The value of a bf16 bit pattern. */
export function fromBf16bits(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/**
 * The bf16 value nearest to f32(x), ties to even (NaN, infinities and signed zeros pass through).
 * @example bf16round(1 / 3) === 0.333984375
 */
export const bf16round = (x: number): number => fromBf16bits(bf16bits(x));

/** The largest finite bf16: (2 - 2^-7) * 2^127. */
export const BF16_MAX = fromBf16bits(0x7f7f);
