// docs/memory.md's count of what LLaMA-7B saves for backward, checked against the plan itself: per layer
// 8 width-sized tensors and 4 FFN-sized ones, plus the logits (or, with the fused loss, only the
// per-token log-sum-exp) and a few inputs.
import { describe, expect, it } from 'vitest';
import { compileStep } from '../../compiler/pipeline.ts';
import { savedActivations } from '../../compiler/report/saved-activations.ts';
import llama from '../../models/llama.ts';

describe('saved activations', () => {
  for (const fuseLoss of [false, true])
  it(`llama-7b f16 at batch 8 x seq 512 saves 8 width-sized and 4 FFN-sized tensors per layer (fused loss ${fuseLoss ? 'on' : 'off'})`, () => {
    const { step, plan } = compileStep(llama, { preset: 'llama-7b', optimizer: 'lomo', dtype: 'f16', batch: 8, seq: 512, fuseLoss });
    const groups = savedActivations(step, plan);
    const tokens = 8 * 512;
    const count = (elements: number) =>
      groups.filter((g) => g.shape.reduce((a, b) => a * b, 1) === elements).reduce((a, g) => a + g.buffers, 0);
    expect(count(tokens * 11008)).toBe(4 * 32);
    // x, both norms' outputs, q, k, v, attention output, h = x + attn: 8 a layer; plus the last
    // block's output and the final norm's, read by the final norm's and the LM head's backward.
    expect(count(tokens * 4096)).toBe(8 * 32 + 2);
    expect(count(tokens * 32000)).toBe(fuseLoss ? 0 : 1); // the logits
    const perLayer = (8 * 4096 + 4 * 11008) * tokens * 2;
    const total = groups.reduce((a, g) => a + g.bytes, 0);
    const rest = total - 32 * perLayer;
    // Besides: the two width-sized tensors above, the logits (fused: the f32 lse per token), the
    // i32 tokens and targets (read by the embedding's and the loss's backward), each layer's
    // attention lse (f32 per token and head, 16 MiB in all), and at most a few bytes of scalar step inputs.
    const besides = 2 * tokens * 4096 * 2 + (fuseLoss ? tokens * 4 : tokens * 32000 * 2) + 2 * tokens * 4 + 32 * tokens * 32 * 4;
    expect(rest - besides).toBeGreaterThanOrEqual(0);
    expect(rest - besides).toBeLessThanOrEqual(16);
    expect(total / 2 ** 30).toBeCloseTo(fuseLoss ? 18.83 : 19.07, 2);
  });
});
