// Random well-formed models trace, verify, differentiate, and their gradients match finite differences.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differentiate } from '../../compiler/autodiff/index.ts';
import { verifyProblems } from '../../compiler/ir/verify.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { checkGradients } from '../support/gradcheck.ts';
import { randomFeeds } from '../support/trace.ts';

describe('random models', () => {
  it('trace and differentiate into verified graphs with a gradient for every param', () =>
    fc.assert(
      fc.property(arbitraryModel, ({ graph }) => {
        expect(verifyProblems(graph)).toEqual([]);
        const d = differentiate(graph);
        expect(verifyProblems(d)).toEqual([]);
        for (const p of graph.params) expect(d.values[d.grads![p.name]].shape).toEqual(d.values[p.value].shape);
        // backward only appends: the forward part is untouched
        expect(d.nodes.slice(0, graph.nodes.length)).toEqual(graph.nodes);
      }),
      { numRuns: 60 },
    ));

  it('gradients match central finite differences (f64)', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.integer(), ({ recipe, graph }, seed) => {
        const feeds = randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } });
        const res = checkGradients(graph, feeds, { seed, rtol: 1e-4, atol: 1e-6 });
        expect(res.worst.err, `${res.worst.what}: fd ${res.worst.fd} vs autodiff ${res.worst.ad}`).toBeLessThanOrEqual(0);
      }),
      { numRuns: 40 },
    ));
});
