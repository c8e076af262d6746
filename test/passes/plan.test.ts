// The memory planner: buffers live at the same time never overlap, offsets are aligned, no piece
// exceeds one binding, and the peak is within 10% of the lower bound (the most bytes live at once).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { buildStep } from '../support/step.ts';
import { planViolations } from '../support/step-checks.ts';

const optimizers = ['sgd', 'adamw', 'lomo'] as const;

describe('memory plan', () => {
  it('random models: no overlap, aligned, within 10% of the lower bound', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...optimizers), fc.boolean(), ({ graph }, optimizer, clip) => {
        const { plan } = buildStep(graph, { optimizer, clipNorm: clip ? 1 : undefined });
        expect(planViolations(plan)).toEqual([]);
        expect(plan.peak).toBeGreaterThanOrEqual(plan.lowerBound);
        expect(plan.peak).toBeLessThanOrEqual(1.1 * plan.lowerBound);
      }),
      { numRuns: 80 },
    ));

  it('tiny binding and buffer limits split large tensors into pieces and still never overlap', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...optimizers), ({ graph }, optimizer) => {
        const { step } = buildStep(graph, { optimizer });
        const plan = planMemory(step, { alignment: 16, maxBindingBytes: 32, maxBufferBytes: 64 });
        expect(planViolations(plan)).toEqual([]);
        expect(plan.arenas.every((a) => a <= 64)).toBe(true);
      }),
      { numRuns: 40 },
    ));

  const cases: [string, ModelDef, string, number?, number?][] = [
    ['mlp', mlp, 'tiny'],
    ['gpt', gpt, 'tiny'],
    ['gpt', gpt, 'small'],
    ['gpt', gpt, 'gpt2'],
    ['llama', llama, 'tiny'],
    ['llama', llama, 'llama-7b', 8, 512],
  ];
  for (const [name, def, preset, batch, seq] of cases) {
    for (const dtype of ['f32', 'f16'] as const) {
      it(`${name} ${preset} ${dtype}: every optimizer's plan is valid and within 10% of the lower bound`, () => {
        for (const optimizer of optimizers) {
          const { plan } = compileStep(def, { preset, optimizer, dtype, batch, seq });
          expect(planViolations(plan)).toEqual([]);
          expect(plan.peak / plan.lowerBound).toBeLessThanOrEqual(1.1);
        }
      });
    }
  }
});
