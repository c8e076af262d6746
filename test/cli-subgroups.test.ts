// --subgroups on run and train: an adapter without the feature is refused, never silently run
// with the shared-memory kernels (the GPU half is in test/gpu/step.test.ts).
import { describe, expect, it } from 'vitest';
import { LomocError } from '../compiler/diagnostics.ts';
import { subgroupsCheck } from '../cli/adapter-target.ts';
import { runRequest } from '../cli/run-request.ts';
import { trainRequest } from '../cli/train-request.ts';

const adapter = (features: string[], info?: { description?: string; device?: string }) => ({ features: new Set(features), ...(info ? { info } : {}) });

describe('--subgroups', () => {
  it('an adapter with the feature passes; one without it is a clear error naming the adapter and the command', () => {
    expect(subgroupsCheck('run', adapter(['subgroups', 'shader-f16']))).toBe(true);
    const cases: [string, ReturnType<typeof adapter>, string][] = [
      ['run', adapter(['shader-f16'], { description: 'NVIDIA H200' }), 'lomoc run --subgroups: NVIDIA H200 lacks the WebGPU feature subgroups; run without --subgroups'],
      ['train', adapter([], { description: '', device: 'llvmpipe' }), 'lomoc train --subgroups: llvmpipe lacks the WebGPU feature subgroups; run without --subgroups'],
      ['run', adapter([]), 'lomoc run --subgroups: the adapter lacks the WebGPU feature subgroups; run without --subgroups'],
    ];
    for (const [command, a, message] of cases) {
      expect(() => subgroupsCheck(command, a)).toThrow(LomocError);
      expect(() => subgroupsCheck(command, a)).toThrowError(new LomocError(message)); // the whole message
    }
  });

  it('run and train parse it (off by default)', () => {
    expect(runRequest(['m.ts'], { steps: '1' }).subgroups).toBe(false);
    expect(runRequest(['m.ts'], { steps: '1', subgroups: true }).subgroups).toBe(true);
    expect(trainRequest(['m.ts'], { steps: '1' }).subgroups).toBe(false);
    expect(trainRequest(['m.ts'], { steps: '1', subgroups: true }).subgroups).toBe(true);
  });
});
