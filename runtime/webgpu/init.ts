// Initial parameter values on the host, from each param's `init`, and random batches. The
// streams are the reference executor's (runtime/reference/random.ts: FNV-1a seed per name,
// mulberry32, Box-Muller), written again here because that file depends on compiler/ helpers;
// a test checks that both give the same bits.
import type { ParamInit, TensorSlot } from '../program.ts';
import { numel, type HostArray } from './host-data.ts';

/** Uniform doubles in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Standard normals, two per pair of uniforms. */
export function normals(seed: number): () => number {
  const uniform = mulberry32(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const z = spare;
      spare = undefined;
      return z;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/** A seed for one named stream: FNV-1a over the name mixed with `seed`, then an avalanche. */
export function deriveSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

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
