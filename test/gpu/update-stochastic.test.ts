// The stochastically rounded bf16 update kernel on WebGPU equals the reference executor bit for
// bit: the same (seed, step, param, element) hash picks the same bf16 neighbour of the same f32
// result. Updates are a fraction of a bf16 ulp, so nearest would store the old weights.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bf16round } from '../../contract/bf16.ts';
import { builtinOptimizers } from '../../compiler/optimizers/table.ts';
import { updateAttrs, updateInputs } from '../../compiler/optimizers/update-layout.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { runOnGpu } from './harness.ts';
import { awkwardSize, random, runs, seed } from './kernel-check.ts';

describe('stochastic bf16 update kernel', () => {
  it('equals the reference bit for bit, in place, any size, seed, step and param id', async () => {
    await fc.assert(fc.asyncProperty(awkwardSize, seed, fc.nat(0xffffffff), fc.integer({ min: 1, max: 5000 }), fc.nat(300), fc.boolean(),
      async (n, s, rseed, step, param, clip) => {
        const g = new TestGraph('sr');
        const p = g.b.value([n], 'bf16', 'param', loc, 'w');
        g.b.params.push({ name: 'w', value: p, init: { kind: 'zeros' }, loc });
        const attrs = updateAttrs(builtinOptimizers.sgd.rule, { clipValue: clip ? 0.5 : null, scaled: false, master: false, stochastic: { seed: rseed, param } });
        const [next] = g.b.node('optimizerUpdate', updateInputs(attrs, {
          p, g: g.input('g', [n]), lr: g.input('lr', []), wd: g.input('weightDecay', []), step: g.input('step', []),
        }), attrs, loc, 'update', ['update']);
        const graph = { ...g.finish(g.input('zero', [])), updates: { w: next } };
        const scalar = (x: number): HostTensor => ({ shape: [], data: Float32Array.of(x) });
        const w = random([n], s);
        const feeds = {
          inputs: { g: random([n], s + 1), lr: scalar(1e-3), weightDecay: scalar(0.01), step: scalar(step), zero: scalar(0) },
          params: { w: { shape: [n], data: Float32Array.from(w.data, bf16round) } },
        };
        const want = Array.from(execute(graph, feeds, 'f32').values[next]!.data);
        const got = Array.from((await runOnGpu(graph, feeds, [p])).get(p)!);
        expect(got).toEqual(want);
      }), runs(20));
  });
});
