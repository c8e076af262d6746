// Small helpers for tests: trace a build function, and make feeds for every input and param.
import { model, traceModel } from '../../compiler/dsl/model.ts';
import type { Tensor } from '../../compiler/dsl/tensor.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';

export function traceFn(build: () => Tensor, name = 'test'): Graph {
  return traceModel(model(name, build, { presets: { t: {} } }), {}).graph;
}

/** A seeded uniform stream in [0, 1). */
export function uniform(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

export interface FeedRanges {
  /** Value range per input or param name (default [-1, 1]). */
  readonly range?: Readonly<Record<string, readonly [number, number]>>;
  /** Vocabulary size per i32 input (default 5). */
  readonly vocab?: Readonly<Record<string, number>>;
}

/** Random f64 feeds for every input and param of `g`. */
export function randomFeeds(g: Graph, seed: number, opts: FeedRanges = {}): Feeds {
  const rand = uniform(seed);
  const make = (name: string, v: number): HostTensor => {
    const { shape, dtype } = g.values[v];
    const n = shape.reduce((a, b) => a * b, 1);
    if (dtype === 'i32') {
      const vocab = opts.vocab?.[name] ?? 5;
      return { shape, data: Int32Array.from({ length: n }, () => Math.floor(rand() * vocab)) };
    }
    const [lo, hi] = opts.range?.[name] ?? [-1, 1];
    return { shape, data: Float64Array.from({ length: n }, () => lo + (hi - lo) * rand()) };
  };
  return {
    inputs: Object.fromEntries(g.inputs.map((i) => [i.name, make(i.name, i.value)])),
    params: Object.fromEntries(g.params.map((p) => [p.name, make(p.name, p.value)])),
  };
}
