// A checkpoint's float tensor in the dtype a run stores: F32, F16 and BF16 files all load, as
// f32 values the upload then rounds to the run's storage (host-data.ts). A 16-bit file whose dtype
// differs from the run's is converted, and the caller says so: an F16 checkpoint in a bf16 run
// keeps 8 mantissa bits of its 11 and gains bf16's range; one in an f32 run loses nothing.
import { fromBf16bits } from '../../contract/bf16.ts';
import { fromF16bits } from '../../contract/f16.ts';
import type { StorageDType } from '../../contract/program.ts';
import { SafetensorsError, type SafeTensor } from './safetensors.ts';

const fileDtype = { f32: 'F32', f16: 'F16', bf16: 'BF16' } as const;

/** The f32 values of an F32, F16 or BF16 tensor (a copy); an error naming the tensor for any other dtype. */
export function floatValues(name: string, t: SafeTensor): Float32Array {
  const bytes = new Uint8Array(t.data);
  if (t.dtype === 'F32') return new Float32Array(bytes.buffer);
  if (t.dtype === 'F16' || t.dtype === 'BF16') return Float32Array.from(new Uint16Array(bytes.buffer), t.dtype === 'F16' ? fromF16bits : fromBf16bits);
  throw new SafetensorsError(`tensor '${name}' is ${t.dtype}, expected F32, F16 or BF16`);
}

/**
 * "F16 to bf16" when a 16-bit tensor of the file is stored by the run in another dtype (the
 * conversion a user should hear about); undefined when the dtypes agree or the file has F32.
 */
export function conversionOf(t: SafeTensor, run: StorageDType): string | undefined {
  if ((t.dtype !== 'F16' && t.dtype !== 'BF16') || run === 'i32' || fileDtype[run] === t.dtype) return undefined;
  return `${t.dtype} to ${run}`;
}
