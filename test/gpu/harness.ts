// Runs graphs on the WebGPU device through the real pipeline (plan -> lowerStep -> executor), for
// kernel tests against the reference executor. One device per test process.
import type { Fusion } from '../../compiler/ir/fusion.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { groupScratch } from '../../compiler/codegen/wgsl/emitters.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import type { Feeds } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import type { Acquired } from '../../runtime/webgpu/device.ts';
import { acquireDevice } from '../../runtime/webgpu/node.ts';
import { createExecutor } from '../../runtime/webgpu/executor.ts';
import type { Limits } from '../../compiler/codegen/wgsl/emitter.ts';
import { kernelTargets, targetNames, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';

let acquired: Promise<Acquired> | undefined;
/**
 * The process's device, with shader-f16 for the f16 storage kernels; a test fails (never skips)
 * when there is none, naming the setup script.
 */
export const gpu = (): Promise<Acquired> =>
  (acquired ??= acquireDevice({
    limits: { maxStorageBuffersPerShaderStage: 8, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupStorageSize: 16384 },
    arenas: [],
    features: ['shader-f16'],
  }));

/** Scratch bytes per group, from the codegen's rules for `target` (default cpu: lavapipe's). */
export const scratchFor = (g: Graph, fusion: Fusion, target: KernelTarget = kernelTargets.cpu) => groupScratch(g, fusion, target);

/** Both kernel targets, for tests that run each kernel under each (the gpu target's kernels must be right on lavapipe too). */
export const bothTargets = targetNames.map((name) => kernelTargets[name]);

const toDevice = (t: HostTensor): Float32Array | Int32Array =>
  t.data instanceof Int32Array ? t.data : Float32Array.from(t.data);

/** Runs every node of `g` once on the GPU, with `target`'s kernel shapes, and reads back the values in `read`. */
export async function runOnGpu(g: Graph, feeds: Feeds, read: readonly ValueId[], fusion: Fusion = noFusion(g.nodes.length), limits?: Limits, target: KernelTarget = kernelTargets.cpu): Promise<Map<ValueId, Float32Array | Int32Array>> {
  const { device } = await gpu();
  const plan = planMemory(g, { fusion, scratch: scratchFor(g, fusion, target), keep: read });
  const program = lowerStep(g, plan, fusion, target, limits);
  const ex = await createExecutor(device, program);
  try {
    for (const s of program.inputs) ex.write(s, toDevice(feeds.inputs[s.name]));
    for (const s of program.params) ex.write(s, toDevice(feeds.params[s.name]));
    for (const s of program.state) ex.write(s, toDevice(feeds.state![s.name]));
    ex.step();
    const out = new Map<ValueId, Float32Array | Int32Array>();
    for (const v of read) {
      const b = plan.buffers[plan.bufferOf[v]];
      const value = g.values[v];
      out.set(v, await ex.read({ name: `%${v}`, ...b.pieces[0], bytes: value.shape.reduce((a, x) => a * x, 1) * (value.dtype === 'f16' || value.dtype === 'bf16' ? 2 : 4), shape: value.shape, dtype: value.dtype }));
    }
    return out;
  } finally {
    ex.destroy();
  }
}
