// Seeded tensors for parameter init and tests, from the shared streams of runtime/random.ts.
import { numel } from '../ir/shape.ts';
import type { DType, Shape } from '../ir/types.ts';
import { type HostTensor, type Precision, store } from './tensor.ts';

export { deriveSeed, mulberry32, normals } from '../../contract/random.ts';
import { mulberry32, normals } from '../../contract/random.ts';

/** Normal(0, std) entries, rounded into the storage of `dtype` under `precision`. */
export function randomTensor(shape: Shape, seed: number, precision: Precision, dtype: DType = 'f32', std = 1): HostTensor {
  const next = normals(seed);
  const values = new Float64Array(numel(shape));
  for (let i = 0; i < values.length; i++) values[i] = std * next();
  return store(shape, dtype, precision, values);
}

/** Uniform token ids in [0, vocab), as i32. */
export function randomTokens(shape: Shape, vocab: number, seed: number): HostTensor {
  const uniform = mulberry32(seed);
  const ids = new Int32Array(numel(shape));
  for (let i = 0; i < ids.length; i++) ids[i] = Math.floor(uniform() * vocab);
  return { shape: [...shape], data: ids };
}
