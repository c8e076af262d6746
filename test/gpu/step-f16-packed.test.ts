// Packed f16 (the choice halfForAdapter makes for an adapter without shader-f16, as `lomoc run`
// and `lomoc train` now do) trains like native f16: gpt tiny LOMO, 3 steps on lavapipe (which has
// both), same seed and batches. The two store the same f16 bits (pack2x16float rounds as f16 does),
// so losses and params are equal bit for bit.
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import { halfForAdapter, kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import gpt from '../../models/gpt.ts';
import { gpu } from './harness.ts';
import { runBoth } from './step-compare.ts';

describe('packed f16 chosen per adapter', () => {
  it('halfForAdapter: packed exactly where shader-f16 is missing', () => {
    expect(halfForAdapter({ features: new Set(['shader-f16']) })).toBe('native');
    expect(halfForAdapter({ features: new Set<string>() })).toBe('packed');
  });

  it('gpt tiny f16 LOMO, forced packed on lavapipe, trains as native f16 does', async () => {
    const acq = await gpu();
    const runOf = async (half: 'native' | 'packed') => {
      const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', dtype: 'f16', target: { ...kernelTargets.cpu, half } });
      expect(c.program.features).toEqual(half === 'native' ? ['shader-f16'] : []);
      return runBoth(acq, c, { vocab: idRanges(c.step), seed: 7, lr: 0.1, steps: 3 });
    };
    const [native, packed] = [await runOf('native'), await runOf('packed')];
    expect(packed.gpu.losses).toEqual(native.gpu.losses);
    for (const [name, want] of Object.entries(native.gpu.params)) expect(Array.from(packed.gpu.params[name]), name).toEqual(Array.from(want));
  }, 600_000);
});
