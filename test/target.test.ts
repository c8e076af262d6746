// Kernel targets: which adapters get the cpu (software) shapes, what --target resolves to, and
// that the two presets differ exactly where lavapipe's tuning changed a shape.
import { describe, expect, it } from 'vitest';
import { kernelTargets, targetForAdapter } from '../compiler/codegen/wgsl/target.ts';
import { resolveTarget, targetChoice } from '../cli/args.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import { groupScratch } from '../compiler/codegen/wgsl/emitters.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { planSteps } from '../cli/plan.ts';
import llama from '../models/llama.ts';

describe('targetForAdapter', () => {
  it('software adapters get the cpu target', () => {
    // What Dawn reports on this machine: lavapipe through Vulkan, llvmpipe through GLES.
    const lavapipe = { vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1', isFallbackAdapter: true };
    const gles = { vendor: '', architecture: '', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'OpenGL version OpenGL ES 3.2 Mesa 25.0.7-2~bpo12+1', isFallbackAdapter: false };
    expect(targetForAdapter(lavapipe)).toBe('cpu');
    expect(targetForAdapter({ ...lavapipe, isFallbackAdapter: false })).toBe('cpu');
    expect(targetForAdapter(gles)).toBe('cpu');
    expect(targetForAdapter({ vendor: 'google', architecture: '', device: 'SwiftShader Device (Subzero)', description: 'SwiftShader Device (Subzero) (0x0000C0DE)' })).toBe('cpu');
    expect(targetForAdapter({ vendor: 'unknown', description: 'some adapter', adapterType: 'CPU' })).toBe('cpu');
    expect(targetForAdapter({ isFallbackAdapter: true })).toBe('cpu');
  });

  it('every other adapter gets the gpu target', () => {
    expect(targetForAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' })).toBe('gpu');
    expect(targetForAdapter({ vendor: 'apple', architecture: 'metal-3', description: '' })).toBe('gpu');
    expect(targetForAdapter({ vendor: 'intel', architecture: 'gen-12lp', adapterType: 'integrated GPU', isFallbackAdapter: false })).toBe('gpu');
    expect(targetForAdapter({})).toBe('gpu');
  });
});

describe('--target', () => {
  it('auto follows the adapter; cpu and gpu are taken as given', () => {
    const nvidia = { info: { vendor: 'nvidia', description: 'NVIDIA H200' } };
    const lavapipe = { info: { vendor: 'mesa', device: 'llvmpipe', isFallbackAdapter: true } };
    expect(resolveTarget(targetChoice('run', undefined), nvidia)).toEqual({ target: 'gpu', how: 'auto: hardware adapter' });
    expect(resolveTarget('auto', lavapipe)).toEqual({ target: 'cpu', how: 'auto: software adapter' });
    expect(resolveTarget('gpu', lavapipe)).toEqual({ target: 'gpu', how: '--target' });
    expect(resolveTarget('cpu', nvidia)).toEqual({ target: 'cpu', how: '--target' });
    expect(() => targetChoice('train', 'tpu')).toThrow(new LomocError("lomoc train: option '--target' expects auto, cpu or gpu, got 'tpu'"));
  });
});

describe('the plan and the kernel target', () => {
  it('compileStep records the target its scratch was planned for (cpu unless given)', () => {
    expect(compileStep(llama, { preset: 'tiny', optimizer: 'lomo' }).target.name).toBe('cpu');
    expect(compileStep(llama, { preset: 'tiny', optimizer: 'lomo', target: 'gpu' }).target.name).toBe('gpu');
  });

  it("today both targets' kernels need the same scratch, so lomoc plan's target line names no difference", async () => {
    const c = compileStep(llama, { preset: 'tiny', optimizer: 'adamw', clipNorm: 1 });
    const [cpu, gpu] = [groupScratch(c.step, c.fusion, kernelTargets.cpu), groupScratch(c.step, c.fusion, kernelTargets.gpu)];
    expect(c.fusion.groups.map((_, k) => gpu(k))).toEqual(c.fusion.groups.map((_, k) => cpu(k)));
    const r = await planSteps({ file: 'models/llama.ts', preset: 'tiny', sets: [], optimizers: ['adamw', 'lomo'], step: { target: 'cpu' }, json: false });
    expect(r.targetNote.differs).toBe(false);
    expect(r.rows.map((x) => x.compiled.target.name)).toEqual(['cpu', 'cpu']);
  });
});
