// The optimizer step's kernels: the update of one param by its rule (compiler/optimizers/), and the
// clip-norm reduction. Each new value is computed in doubles from the stored inputs (the rule's
// `reference`) and rounded once when stored.
import { fromBf16bits } from '../../contract/bf16.ts';
import { bf16StochasticBits, f16StochasticValue, roundingBits } from '../../contract/stochastic-round.ts';
import type { ClipFactorAttrs, UpdateAttrs, UpdateWindow } from '../ir/ops.ts';
import { updateRule } from '../optimizers/table.ts';
import { updateInput } from '../optimizers/update-layout.ts';
import type { Kernel } from './kernel.ts';
import { result } from './kernel.ts';

/**
 * The new param values as stored: under stochastic rounding each is rounded to f32 (as the GPU
 * computes it), then to a bf16 (f16) neighbour by roundingBits(seed, step, param, element); the
 * executor's own 16-bit store then keeps it exactly. Otherwise the executor rounds to nearest.
 */
function stored(w: ArrayLike<number>, n: number, a: UpdateAttrs, step: { data: ArrayLike<number> } | undefined, index: (i: number) => number): ArrayLike<number> {
  const s = a.stochastic;
  if (s === undefined) return w;
  const t = step!.data[0] >>> 0;
  const round = s.format === 'f16' ? f16StochasticValue : (x: number, r: number) => fromBf16bits(bf16StochasticBits(x, r));
  return Float64Array.from({ length: n }, (_, i) => round(w[i], roundingBits(s.seed, t, s.param, index(i))));
}

/** The param's element index of each element of `window` (all of them when there is none). */
function windowIndex(shape: readonly number[], window: UpdateWindow | undefined): (i: number) => number {
  if (!window) return (i) => i;
  const inner = shape.slice(window.axis + 1).reduce((x, y) => x * y, 1);
  const [width, whole] = [(window.end - window.start) * inner, shape[window.axis] * inner];
  return (i) => Math.floor(i / width) * whole + window.start * inner + (i % width);
}

/** ClipFactorAttrs's formula in doubles, from the node's scalar inputs in order. */
export function clipFactorOf(a: ClipFactorAttrs, ins: readonly number[]): number {
  const [total, scale] = [ins[0], a.unscale ? ins[1] : 1];
  const previous = a.previous ? ins[ins.length - 1] : 0;
  const overflow = a.unscale === true && !Number.isFinite(total);
  if (a.result === 'norm') return overflow ? previous : Math.sqrt(total) / scale;
  if (overflow) return -1;
  const norm = Math.max(Math.sqrt(total) / scale, previous);
  return (a.maxNorm === null ? 1 : Math.min(1, a.maxNorm / (norm + 1e-6))) / scale;
}

const optimizerUpdate: Kernel<'optimizerUpdate'> = (ins, a, out, precision) => {
  const rule = updateRule(a.rule);
  const named = (name: string) => updateInput(a, ins, name);
  const [p, g] = [named('p')!, named('g')!];
  const scale = a.scaled ? named('scale')!.data[0] : 1;
  // A negative factor is an overflow under loss scaling: the step is skipped, every value kept.
  if (scale < 0) return out.map((t, k) => result(t, precision, (k === 0 ? p : named(a.states[k - 1])!).data));
  const cv = a.clipValue;
  // The update direction: the gradient scaled by the clip-norm factor, then clamped.
  const u = Float64Array.from(g.data, (x) => {
    const v = x * scale;
    return cv === null ? v : Math.min(cv, Math.max(-cv, v));
  });
  // A window update runs the rule on the window's elements of the param and its states only.
  const index = windowIndex(p.shape, a.window);
  // Without a window every array is whole (a factored state is not shaped like the param).
  const part = (data: ArrayLike<number>) => (a.window ? Float64Array.from({ length: u.length }, (_, i) => data[index(i)]) : Float64Array.from(data));
  const next = rule.reference({
    w: part((a.master ? named('master')! : p).data),
    u,
    paramShape: a.window ? g.shape : p.shape,
    lr: named('lr')!.data[0],
    weightDecay: named('wd')!.data[0],
    step: rule.usesStep ? named('step')!.data[0] : 0,
    hyper: a.hyper,
    states: Object.fromEntries(rule.states.map((s) => [s.name, part(named(s.name)!.data)])),
  });
  const values = [stored(next.w, u.length, a, named('step'), index), ...a.states.map((s) => (s === 'master' ? next.w : next.states[s]))];
  const whole = (k: number, v: ArrayLike<number>): ArrayLike<number> => {
    if (!a.window) return v;
    const all = Float64Array.from((k === 0 ? p : named(a.states[k - 1])!).data);
    for (let i = 0; i < v.length; i++) all[index(i)] = v[i];
    return all;
  };
  return out.map((t, k) => result(t, precision, whole(k, values[k])));
};

export const optimizerKernels = {
  optimizerUpdate,
  sumSquares: (ins, _a, out, precision) => {
    let s = 0;
    for (const x of ins[0].data) s += x * x;
    return [result(out[0], precision, [s])];
  },
  clipFactor: (ins, a, out, precision) => [result(out[0], precision, [clipFactorOf(a, ins.map((t) => t.data[0]))])],
} satisfies { readonly [O in 'optimizerUpdate' | 'sumSquares' | 'clipFactor']: Kernel<O> };
