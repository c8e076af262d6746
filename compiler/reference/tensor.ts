// Host tensors: a shape and a typed array, row-major. The typed array is the rounding rule:
//   precision 'f64': float values live in Float64Array, nothing is rounded;
//   precision 'f32': f32 values live in Float32Array, so every stored op result is rounded to f32,
//                    and f16 and bf16 values also live in Float32Array but are rounded to f16 or
//                    bf16 (round to nearest even) on store.
//   i32 values are Int32Array under both.
// Kernels compute each output element in JS doubles from the stored inputs and round it once,
// when `store` writes it; nothing inside one op is rounded on the way.
import { fmtShape, numel, strides } from '../ir/shape.ts';
import type { DType, Shape } from '../ir/types.ts';
import { bf16round } from '../../contract/bf16.ts';
import { f16round } from '../../contract/f16.ts';

export type Precision = 'f32' | 'f64';
export type TensorData = Float64Array | Float32Array | Int32Array;

export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: TensorData;
}

type Storage = 'f64' | 'f32' | 'f16' | 'bf16' | 'i32';

function storageOf(dtype: DType, precision: Precision): Storage {
  if (dtype === 'i32') return 'i32';
  if (precision === 'f64') return 'f64';
  return dtype === 'f16' || dtype === 'bf16' ? dtype : 'f32';
}

function toInt32(x: number): number {
  if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31)
    throw new Error(`an i32 value must be an integer in [-2^31, 2^31), got ${x}`);
  return x;
}

/** A zero tensor in the storage of `dtype` under `precision`. */
export function alloc(shape: Shape, dtype: DType, precision: Precision): HostTensor {
  const n = numel(shape);
  const s = storageOf(dtype, precision);
  const data = s === 'i32' ? new Int32Array(n) : s === 'f64' ? new Float64Array(n) : new Float32Array(n);
  return { shape: [...shape], data };
}

/** Stores exact values (usually doubles a kernel computed) with one rounding per element. */
export function store(shape: Shape, dtype: DType, precision: Precision, values: ArrayLike<number>): HostTensor {
  if (values.length !== numel(shape))
    throw new Error(`a tensor of shape ${fmtShape(shape)} needs ${numel(shape)} values, got ${values.length}`);
  const t = alloc(shape, dtype, precision);
  const s = storageOf(dtype, precision);
  const out = t.data;
  // Float32Array and Float64Array round on assignment; f16 and i32 need their own rule.
  if (s === 'f16') for (let i = 0; i < values.length; i++) out[i] = f16round(values[i]);
  else if (s === 'bf16') for (let i = 0; i < values.length; i++) out[i] = bf16round(values[i]);
  else if (s === 'i32') for (let i = 0; i < values.length; i++) out[i] = toInt32(values[i]);
  else for (let i = 0; i < values.length; i++) out[i] = values[i];
  return t;
}

/** Test and feed convenience: `tensor([2, 2], [1, 2, 3, 4])` is an f32 value held in f64. */
export function tensor(
  shape: Shape,
  values: ArrayLike<number>,
  dtype: DType = 'f32',
  precision: Precision = 'f64',
): HostTensor {
  return store(shape, dtype, precision, values);
}

/** Whether `t` already sits in the storage `dtype` and `precision` call for (so needs no copy). */
export function isStored(t: HostTensor, dtype: DType, precision: Precision): boolean {
  switch (storageOf(dtype, precision)) {
    case 'i32':
      return t.data instanceof Int32Array;
    case 'f64':
      return t.data instanceof Float64Array;
    case 'f32':
      return t.data instanceof Float32Array;
    case 'f16':
      return t.data instanceof Float32Array && t.data.every((x) => f16round(x) === x || Number.isNaN(x));
    case 'bf16':
      return t.data instanceof Float32Array && t.data.every((x) => bf16round(x) === x || Number.isNaN(x));
  }
}

/** `t` in the storage of `dtype` under `precision`, rounding if needed; `t` itself when it already is. */
export function conform(t: HostTensor, dtype: DType, precision: Precision): HostTensor {
  return isStored(t, dtype, precision) ? t : store(t.shape, dtype, precision, t.data);
}

export const toArray = (t: HostTensor): number[] => Array.from(t.data);

/**
 * Offsets into a strided buffer for every element of `shape`, in row-major order: element
 * (i0, i1, ...) maps to offset + i0*st[0] + i1*st[1] + .... Transpose, slice, pad, concat,
 * broadcasting and reductions are all this one walk with different strides.
 */
export function strided(shape: Shape, st: readonly number[], offset = 0): Int32Array {
  const n = numel(shape);
  const out = new Int32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  let off = offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let a = shape.length - 1; a >= 0; a--) {
      idx[a]++;
      off += st[a];
      if (idx[a] < shape[a]) break;
      off -= st[a] * shape[a];
      idx[a] = 0;
    }
  }
  return out;
}

/** For each element of `to`, the flat index of the element of `from` that numpy broadcasting reads. */
export function broadcastIndex(from: Shape, to: Shape): Int32Array {
  const lead = to.length - from.length;
  const fs = strides(from);
  const st = to.map((_, i) => (i < lead || from[i - lead] === 1 ? 0 : fs[i - lead]));
  return strided(to, st);
}

/** The multi-index of a flat row-major position, for error messages. */
export function unravel(flat: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = flat % shape[a];
    flat = Math.floor(flat / shape[a]);
  }
  return idx;
}
