// Host arrays to device bytes and back. f32 and i32 travel as they are; f16 and bf16 tensors are
// stored as 16-bit patterns on the device and seen as Float32Array on the host (rounded once, ties to even).
import type { StorageDType } from '../../contract/program.ts';
import { bf16bits, fromBf16bits } from '../../contract/bf16.ts';
import { f16bits, f16round, fromF16bits } from '../../contract/f16.ts';

export type HostArray = Float32Array | Int32Array;

/** Bytes of one element. */
export const elementBytes = (dtype: StorageDType): number => (dtype === 'f16' || dtype === 'bf16' ? 2 : 4);

/** The bytes to upload for `data` stored as `dtype` (padded to a multiple of 4, as writeBuffer needs). */
export function toDeviceBytes(dtype: StorageDType, data: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  const n = data.length;
  const bytes = new Uint8Array(Math.ceil((n * elementBytes(dtype)) / 4) * 4);
  if (dtype === 'f16') {
    const out = new Uint16Array(bytes.buffer, 0, bytes.byteLength / 2);
    for (let i = 0; i < n; i++) out[i] = f16bits(f16round(data[i]));
  } else if (dtype === 'bf16') {
    const out = new Uint16Array(bytes.buffer, 0, bytes.byteLength / 2);
    for (let i = 0; i < n; i++) out[i] = bf16bits(data[i]);
  } else if (dtype === 'i32') {
    new Int32Array(bytes.buffer).set(data);
  } else {
    new Float32Array(bytes.buffer).set(data);
  }
  return bytes;
}

/** `count` elements of `dtype` read from device bytes. */
export function fromDeviceBytes(dtype: StorageDType, bytes: ArrayBuffer, count: number): HostArray {
  if (dtype === 'i32') return new Int32Array(bytes, 0, count).slice();
  if (dtype === 'f32') return new Float32Array(bytes, 0, count).slice();
  const half = new Uint16Array(bytes, 0, count);
  return Float32Array.from(half, dtype === 'bf16' ? fromBf16bits : fromF16bits);
}

export { numel } from '../../contract/units.ts';
