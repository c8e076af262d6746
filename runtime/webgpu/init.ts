// Initial parameter values on the host, from each param's `init`, and random batches, from the
// same seeded streams as the reference executor's (runtime/random.ts).
import type { ParamInit, TensorSlot } from '../../contract/program.ts';
import { deriveSeed, mulberry32, normals } from '../../contract/random.ts';
import { numel, type HostArray } from './host-data.ts';

export { deriveSeed, mulberry32, normals } from '../../contract/random.ts';

/** One parameter's initial values (doubles, rounded by the upload to the slot's dtype). */
export function initValues(init: ParamInit, shape: readonly number[], seed: number): Float64Array {
  const out = new Float64Array(numel(shape));
  switch (init.kind) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'normal':
    case 'fanIn': {
      // fanIn: the product of every dimension but the last.
      const std = init.kind === 'normal' ? init.std : init.gain / Math.sqrt(numel(shape.slice(0, -1)));
      const next = normals(seed);
      for (let i = 0; i < out.length; i++) out[i] = std * next();
      return out;
    }
  }
}

/** Every param's initial values, by name, each from its own stream of `seed`. */
export function initialParams(
  program: { readonly params: readonly { readonly name: string; readonly shape: readonly number[]; readonly init: ParamInit }[] },
  seed: number,
): Record<string, Float64Array> {
  return Object.fromEntries(program.params.map((p) => [p.name, initValues(p.init, p.shape, deriveSeed(seed, p.name))]));
}

/**
 * Random data for `slots`: i32 inputs get uniform ids below `vocab[name]`, floats standard
 * normals. Each input has its own stream of `seed`.
 */
export function randomBatch(slots: readonly Pick<TensorSlot, 'name' | 'shape' | 'dtype'>[], vocab: Readonly<Record<string, number>>, seed: number): Record<string, HostArray> {
  const out: Record<string, HostArray> = {};
  for (const s of slots) {
    const n = numel(s.shape);
    const stream = deriveSeed(seed, s.name);
    if (s.dtype === 'i32') {
      const v = vocab[s.name];
      if (!(v >= 1)) throw new Error(`randomBatch: no vocabulary size for the i32 input '${s.name}'`);
      const u = mulberry32(stream);
      out[s.name] = Int32Array.from({ length: n }, () => Math.floor(u() * v));
    } else {
      const z = normals(stream);
      out[s.name] = Float32Array.from({ length: n }, z);
    }
  }
  return out;
}
