// Initial parameter values from each ParamDecl's Init. The same seed gives the same doubles
// under both precisions; an f32 run holds them rounded to f32, so f32 and f64 runs start from
// the same point up to that rounding.
import { numel } from '../ir/shape.ts';
import type { DType, Graph, Init, Shape } from '../ir/types.ts';
import { deriveSeed, randomTensor } from './random.ts';
import { type HostTensor, type Precision, store } from './tensor.ts';

/** The standard deviation of a normal init; fanIn is the product of all dimensions but the last. */
export function initStd(init: Extract<Init, { kind: 'normal' | 'fanIn' }>, shape: Shape): number {
  if (init.kind === 'normal') return init.std;
  const fanIn = numel(shape.slice(0, -1));
  return init.gain / Math.sqrt(fanIn);
}

/** One parameter's initial value; `seed` is already this parameter's own stream. */
export function initTensor(init: Init, shape: Shape, dtype: DType, seed: number, precision: Precision): HostTensor {
  switch (init.kind) {
    case 'zeros':
      return store(shape, dtype, precision, new Float64Array(numel(shape)));
    case 'ones':
      return store(shape, dtype, precision, new Float64Array(numel(shape)).fill(1));
    case 'normal':
    case 'fanIn':
      return randomTensor(shape, seed, precision, dtype, initStd(init, shape));
  }
}

/** Every parameter of `g`, by name, drawn from a stream derived from `seed` and the name. */
export function initParams(g: Graph, seed: number, precision: Precision): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const p of g.params) {
    const v = g.values[p.value];
    out[p.name] = initTensor(p.init, v.shape, v.dtype, deriveSeed(seed, p.name), precision);
  }
  return out;
}
