// Loading 16-bit checkpoints (runtime/checkpoint/float-tensor.ts): F16 and BF16 tensors decode
// exactly to f32, and a 16-bit tensor whose dtype is not the run's is named as a conversion.
import { describe, expect, it } from 'vitest';
import { bf16bits } from '../../contract/bf16.ts';
import { f16bits, f16round } from '../../contract/f16.ts';
import { conversionOf, floatValues } from '../../runtime/checkpoint/float-tensor.ts';
import type { SafeTensor } from '../../runtime/checkpoint/safetensors.ts';

const halves = (dtype: 'F16' | 'BF16', bits: number[]): SafeTensor => ({ dtype, shape: [bits.length], data: new Uint8Array(Uint16Array.from(bits).buffer) });

describe('16-bit checkpoint tensors', () => {
  it('decode F16 and BF16 exactly, F32 as is', () => {
    const xs = [0, -1.5, 1 / 3, 65504, 2 ** -24];
    expect(Array.from(floatValues('w', halves('F16', xs.map((x) => f16bits(f16round(x))))))).toEqual(xs.map(f16round));
    expect(Array.from(floatValues('w', halves('BF16', [0x3eab, 0xc000, 0x8000, 0x7f80])))).toEqual([0.333984375, -2, -0, Infinity]);
    expect(bf16bits(1 / 3)).toBe(0x3eab);
    expect(Array.from(floatValues('w', { dtype: 'F32', shape: [2], data: new Uint8Array(Float32Array.of(1.25, -2).buffer) }))).toEqual([1.25, -2]);
  });

  it('refuses other dtypes, naming the tensor', () => {
    expect(() => floatValues('w', { dtype: 'I32', shape: [1], data: new Uint8Array(4) })).toThrow("tensor 'w' is I32, expected F32, F16 or BF16");
  });

  it('names a 16-bit tensor stored in another dtype as a conversion', () => {
    const t = halves('F16', [0]);
    expect(conversionOf(t, 'bf16')).toBe('F16 to bf16');
    expect(conversionOf(t, 'f32')).toBe('F16 to f32');
    expect(conversionOf(t, 'f16')).toBeUndefined();
    expect(conversionOf(halves('BF16', [0]), 'f16')).toBe('BF16 to f16');
    expect(conversionOf({ dtype: 'F32', shape: [1], data: new Uint8Array(4) }, 'bf16')).toBeUndefined();
  });
});
