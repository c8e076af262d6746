// Shared by the kernel tests: run a one-op graph on the GPU and on the reference executor (f32
// storage), compare every output within a stated tolerance, and the shape generators the
// properties draw from (sizes that are not multiples of any workgroup size, and size 1).
import fc from 'fast-check';
import { expect } from 'vitest';
import type { Op, OpAttrs } from '../../compiler/ir/ops.ts';
import { numel } from '../../compiler/ir/shape.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { randomTensor } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { opGraph } from '../reference/helpers.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { bothTargets, runOnGpu } from './harness.ts';

/** |gpu - ref| <= abs + rel * |ref| per element; NaN must meet NaN, and infinities their equal. */
export interface Tolerance {
  readonly abs: number;
  readonly rel: number;
}

export function expectWithin(gpu: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance, what: string): void {
  expect(gpu.length, `${what}: length`).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const [a, e] = [gpu[i], ref[i]];
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)) || a === e) continue;
    if (!(Math.abs(a - e) <= tol.abs + tol.rel * Math.abs(e)))
      expect.fail(`${what}: element ${i} of ${ref.length}: reference ${e}, gpu ${a} (|diff| ${Math.abs(a - e)} > ${tol.abs} + ${tol.rel}*|ref|)`);
  }
}

/** Runs `g` on both executors (the GPU with `target`'s kernel shapes) and compares the values `outs`. */
export async function compareGraph(g: Graph, feeds: Feeds, outs: readonly ValueId[], tol: Tolerance, what: string, target: KernelTarget = kernelTargets.cpu): Promise<void> {
  const ref = execute(g, feeds, 'f32');
  const gpu = await runOnGpu(g, feeds, outs, undefined, undefined, target);
  outs.forEach((v, k) => expectWithin(gpu.get(v)!, ref.values[v]!.data, tol, `${what} output ${k} (${target.name} target)`));
}

/** One `op` node over inputs x0, x1, ... fed with `ins` (float ones stored as `dtype`); every output compared. */
export async function compareOp<O extends Op>(op: O, ins: readonly HostTensor[], attrs: OpAttrs[O], tol: Tolerance, target: KernelTarget = kernelTargets.cpu, dtype: 'f32' | 'f16' | 'bf16' = 'f32'): Promise<void> {
  const { g, outs } = opGraph(op, ins, attrs, dtype);
  const inputs = Object.fromEntries(ins.map((t, i) => [`x${i}`, t]));
  const shapes = ins.map((t) => `[${t.shape.join(',')}]`).join(' ');
  await compareGraph(g, { inputs, params: {} }, outs, tol, `${op}${dtype === 'f32' ? '' : ` (${dtype})`} ${shapes} ${JSON.stringify(attrs)}`, target);
}

/** Normal(0, std) f32 values; `map` reshapes the distribution (e.g. positive for log). */
export function random(shape: readonly number[], seed: number, map?: (x: number) => number, std = 1): HostTensor {
  const t = randomTensor(shape, seed, 'f32', 'f32', std);
  if (map) for (let i = 0; i < t.data.length; i++) t.data[i] = map(t.data[i]);
  return t;
}

/** Sizes that straddle workgroup sizes: 1, small odd ones, and 63/65, 255/257 around 64 and 256. */
export const awkwardSize = fc.constantFrom(1, 1, 2, 3, 5, 7, 8, 13, 31, 63, 64, 65, 127, 257);

/** Shapes of rank `min..max` with at most `maxElems` elements. */
export function shapes(min: number, max: number, maxElems = 1 << 15, size = awkwardSize): fc.Arbitrary<number[]> {
  return fc.array(size, { minLength: min, maxLength: max }).filter((s) => numel(s) <= maxElems);
}

export const seed = fc.integer({ min: 0, max: 2 ** 31 - 1 });

/** A kernel target per property run: both get drawn, and a counterexample names its target. */
export const anyTarget = fc.constantFrom(...bothTargets);

/** Runs per property: each run compiles its pipelines (tens of ms on lavapipe). */
export const runs = (n = 12) => ({ numRuns: n });

/** attention's lse of q, k, v stored as `dtype` (by the reference): attentionGrad's input 3, consistent with q and k. */
export function attentionLse(qkv: readonly HostTensor[], attrs: OpAttrs['attention'], dtype: 'f32' | 'f16' | 'bf16' = 'f32'): HostTensor {
  const { g, outs } = opGraph('attention', qkv, attrs, dtype);
  const lse = execute(g, { inputs: Object.fromEntries(qkv.map((t, i) => [`x${i}`, t])), params: {} }, 'f32').values[outs[1]]!;
  return { shape: lse.shape, data: Float32Array.from(lse.data) };
}
