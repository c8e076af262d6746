// The stochastically rounded bf16 and f16 update kernels on WebGPU equal the reference executor
// bit for bit: the same (seed, step, param, element) hash picks the same 16-bit neighbour of the
// same f32 result (f16 stored natively and packed in u32 words). Updates are a fraction of an
// ulp, so nearest would store the old weights.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bf16round } from '../../contract/bf16.ts';
import { f16round } from '../../contract/f16.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { builtinOptimizers } from '../../compiler/optimizers/table.ts';
import { updateAttrs, updateInputs } from '../../compiler/optimizers/update-layout.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { runOnGpu } from './harness.ts';
import { awkwardSize, random, runs, seed } from './kernel-check.ts';

const formats = [
  { name: 'bf16', dtype: 'bf16', round: bf16round, target: kernelTargets.cpu },
  { name: 'f16 native', dtype: 'f16', round: f16round, target: kernelTargets.cpu },
  { name: 'f16 packed', dtype: 'f16', round: f16round, target: { ...kernelTargets.cpu, half: 'packed' as const } },
] as const;

describe.each(formats)('stochastic $name update kernel', ({ dtype, round, target }) => {
  it('equals the reference bit for bit, in place, any size, seed, step and param id', async () => {
    await fc.assert(fc.asyncProperty(awkwardSize, seed, fc.nat(0xffffffff), fc.integer({ min: 1, max: 5000 }), fc.nat(300), fc.boolean(),
      async (n, s, rseed, step, param, clip) => {
        const g = new TestGraph('sr');
        const p = g.b.value([n], dtype, 'param', loc, 'w');
        g.b.params.push({ name: 'w', value: p, init: { kind: 'zeros' }, loc });
        const stochastic = { seed: rseed, param, ...(dtype === 'f16' ? { format: 'f16' as const } : {}) };
        const attrs = updateAttrs(builtinOptimizers.sgd.rule, { clipValue: clip ? 0.5 : null, scaled: false, master: false, stochastic });
        const [next] = g.b.node('optimizerUpdate', updateInputs(attrs, {
          p, g: g.input('g', [n]), lr: g.input('lr', []), wd: g.input('weightDecay', []), step: g.input('step', []),
        }), attrs, loc, 'update', ['update']);
        const graph = { ...g.finish(g.input('zero', [])), updates: { w: next } };
        const scalar = (x: number): HostTensor => ({ shape: [], data: Float32Array.of(x) });
        const w = random([n], s);
        const feeds = {
          inputs: { g: random([n], s + 1), lr: scalar(dtype === 'f16' ? 1e-4 : 1e-3), weightDecay: scalar(0.01), step: scalar(step), zero: scalar(0) },
          params: { w: { shape: [n], data: Float32Array.from(w.data, round) } },
        };
        const want = Array.from(execute(graph, feeds, 'f32').values[next]!.data);
        const got = Array.from((await runOnGpu(graph, feeds, [p], undefined, undefined, target)).get(p)!);
        expect(got).toEqual(want);
      }), runs(dtype === 'f16' ? 10 : 20));
  });
});
