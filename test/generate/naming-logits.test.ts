// output('logits', t) marks a value and changes nothing else: the compiled training step (nodes,
// values, memory plan) is the same with and without it; misuses are errors at the user's line.
import { describe, expect, it } from 'vitest';
import { compileInference } from '../../compiler/inference/compile-inference.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { bidirectional, named, notATensor, twice, unnamed } from '../fixtures/generate/tiny-lm.ts';
import { gpt, llama } from './support.ts';

/** The graph without source locations and without its marks. */
const shape = (g: Graph) => ({
  values: g.values.map(({ loc: _, ...v }) => v),
  nodes: g.nodes.map(({ loc: _, ...n }) => n),
  inputs: g.inputs.map(({ loc: _, ...d }) => d),
  params: g.params.map(({ loc: _, ...d }) => d),
  loss: g.loss, grads: g.grads, updates: g.updates, state: g.state,
});

describe('naming the logits', { timeout: 60_000 }, () => {
  for (const optimizer of ['lomo', 'adamw'] as const)
    it(`leaves the ${optimizer} training step unchanged: same nodes, same values, same plan`, () => {
      const a = compileStep(named, { optimizer, verifyEach: true });
      const b = compileStep(unnamed, { optimizer, verifyEach: true });
      expect(a.forward.outputs).toEqual({ logits: expect.any(Number) });
      expect(b.forward.outputs).toBeUndefined();
      expect(shape(a.step)).toEqual(shape(b.step));
      expect(a.fusion).toEqual(b.fusion);
      expect(a.plan).toEqual(b.plan);
    });

  it("gpt and llama name the logits their cross-entropy reads", async () => {
    for (const def of [await gpt(), await llama()]) {
      const c = compileStep(def, { optimizer: 'lomo' });
      const ce = c.forward.nodes.find((n) => n.op === 'crossEntropy')!;
      expect(c.forward.outputs?.logits).toBe(ce.inputs[0]);
    }
  });

  it('misuses: a model without named logits cannot generate; output() twice or of a non-tensor is an error', () => {
    expect(() => compileInference(unnamed)).toThrow("error: model 'tiny-lm' names no logits: add output('logits', logits) before returning the loss, to generate with it");
    expect(() => compileStep(twice, { optimizer: 'lomo' })).toThrow(
      "test/fixtures/generate/tiny-lm.ts:13:26: error: output 'logits': declared twice\n  note: test/fixtures/generate/tiny-lm.ts:12:74: first declared here",
    );
    expect(() => compileStep(notATensor, { optimizer: 'lomo' })).toThrow("test/fixtures/generate/tiny-lm.ts:14:28: error: output 'logits': expected a tensor, got number 3");
  });

  it('a model the key/value-cache rewrite cannot follow is an error at its op', () => {
    expect(() => compileInference(bidirectional)).toThrow(
      'test/fixtures/generate/tiny-lm.ts:10:31: error: inference: attention is not causal (a key/value cache needs causal attention); the key/value-cache program cannot follow the sequence axis through it',
    );
  });

  it('the inference steps of the tiny model verify and hold one key and one value cache', () => {
    const c = compileInference(named, { verifyEach: true });
    expect(c.decode.state?.map((s) => [s.name, c.decode.values[s.value].shape])).toEqual([['kv.0.k', [1, 2, 5, 2]], ['kv.0.v', [1, 2, 5, 2]]]);
    expect(c.decode.nodes.map((n) => n.op)).not.toContain('attention');
    expect(c.prefill.values[c.prefill.loss].shape).toEqual([1, 5, 11]);
    expect(c.decode.values[c.decode.loss].shape).toEqual([1, 1, 11]);
  });
});
