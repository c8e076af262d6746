// The norm pass's memory: with exact clipping (or loss scaling) under LOMO, every weight gradient
// pass 1 computes by a matmul is summed into the squared norm inside the matmul's kernel
// (a matmulNorm group) and has no storage in the plan; SGD's clipped step forms the same groups
// over the same shapes (storing its gradients for the updates), which is what makes the two sum
// the same partials in the same order on the device (test/gpu/norm-pass.test.ts runs them). The
// running sum of squared norms costs no dispatch of its own: each add is folded into a reduction.
// A norm pass sharing the top of the backward with pass 2 (passes/norm-share.ts) stores exactly the
// shared gradients, in the same kernels as SGD; the rest as above.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import type { Graph, Node } from '../../compiler/ir/types.ts';
import type { StepOptions } from '../../compiler/passes/optimizer-step.ts';
import { compileForward } from '../../compiler/pipeline.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';

type Norm = Pick<StepOptions, 'clipNorm' | 'lossScale'>;
const norms: Norm[] = [{ clipNorm: 0.05 }, { lossScale: true }, { clipNorm: 1, lossScale: true }];

/** Each squared norm of a matmul's output: its kernel group's kind, whether the gradient has storage, and the matmul's shapes. */
function matmulNorms(forward: Graph, optimizer: 'lomo' | 'sgd', norm: Norm, share: boolean | number = false) {
  const c = compileForward(forward, { optimizer, ...norm, shareNormPass: share });
  const g = c.step;
  const producer = new Map<number, Node>();
  g.nodes.forEach((n) => n.outputs.forEach((o) => producer.set(o, n)));
  const groupOf = new Map<number, string>();
  c.fusion.groups.forEach((grp) => grp.nodes.forEach((i) => groupOf.set(i, grp.kind)));
  return g.nodes.flatMap((n, i) => {
    const mm = producer.get(n.inputs[0]);
    if (n.op !== 'sumSquares' || mm?.op !== 'matmul') return [];
    const grad = n.inputs[0];
    return [{
      kind: groupOf.get(i),
      stored: c.plan.bufferOf[grad] >= 0,
      phase: mm.phase,
      // Read by an update: a gradient of the shared top (a clone's is read by its squared norm alone).
      updated: g.nodes.some((m) => m.phase === 'update' && m.inputs.includes(grad)),
      shape: JSON.stringify([...mm.inputs.map((x) => g.values[x].shape), mm.attrs]),
    }];
  });
}

/** The clip-norm chain's adds (scalars summing squared norms) that run as a dispatch of their own. */
function loneSumAdds(forward: Graph, optimizer: 'lomo' | 'sgd', norm: Norm, share: boolean | number = false): number {
  const c = compileForward(forward, { optimizer, ...norm, shareNormPass: share });
  const ss = new Set(c.step.nodes.filter((n) => n.op === 'sumSquares').map((n) => n.outputs[0]));
  return c.fusion.groups.filter((grp) => grp.kind === 'single' && c.step.nodes[grp.nodes[0]].op === 'add' && ss.has(c.step.nodes[grp.nodes[0]].inputs[1])).length;
}

function check(forward: Graph, norm: Norm) {
  expect(loneSumAdds(forward, 'lomo', norm)).toBe(0);
  expect(loneSumAdds(forward, 'sgd', norm)).toBe(0);
  const lomo = matmulNorms(forward, 'lomo', norm);
  const sgd = matmulNorms(forward, 'sgd', norm);
  // LOMO: pass 1's weight gradients are summed in their matmul's kernel, never stored.
  expect(lomo.filter((s) => s.kind !== 'matmulNorm' || s.stored || s.phase !== 'norm')).toEqual([]);
  // SGD: the same kernels, storing the gradient its update reads later.
  expect(sgd.filter((s) => s.kind !== 'matmulNorm' || !s.stored)).toEqual([]);
  expect(lomo.map((s) => s.shape).sort()).toEqual(sgd.map((s) => s.shape).sort());
  // Sharing k gradients: the shared ones stored as SGD stores them, the rest as above; one matmulNorm each either way.
  const k = Math.floor(lomo.length / 2) + 1;
  expect(loneSumAdds(forward, 'lomo', norm, k)).toBe(0);
  const shared = matmulNorms(forward, 'lomo', norm, k);
  expect(shared.filter((s) => s.kind !== 'matmulNorm' || s.phase !== 'norm' || s.stored !== s.updated)).toEqual([]);
  expect(shared.map((s) => s.shape).sort()).toEqual(sgd.map((s) => s.shape).sort());
  return lomo.length;
}

describe('the norm pass stores no weight gradient it does not share', () => {
  it('on random models: every matmul-made gradient of pass 1 is summed in its kernel with no storage; SGD sums the same shapes the same way; no add of the running sum is a dispatch of its own', () => {
    let seen = 0;
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...norms), ({ graph }, norm) => {
        seen += check(graph, norm);
      }),
      { numRuns: 30 },
    );
    expect(seen).toBeGreaterThan(0);
  });

  for (const [name, def, count] of [['mlp', mlp, 3], ['gpt', gpt, 12], ['llama', llama, 14]] as [string, ModelDef, number][])
    it(`${name} tiny: ${count} weight gradients, none stored in pass 1`, () => {
      const { graph } = traceModel(def, resolveConfig(def, 'tiny'));
      expect(check(graph, { clipNorm: 1 })).toBe(count);
    });

  it('f16 storage keeps the plain reduction of the stored (rounded) gradient: the accumulator is not what is stored', () => {
    const { graph } = traceModel(gpt, resolveConfig(gpt, 'tiny'));
    const c = compileForward(graph, { optimizer: 'lomo', clipNorm: 1, dtype: 'f16' });
    expect(c.fusion.groups.filter((grp) => grp.kind === 'matmulNorm')).toEqual([]);
  });
});
