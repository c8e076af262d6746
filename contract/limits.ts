// The device limits a compiled program needs beyond WebGPU's defaults, by WebGPU name: read by
// the runtime when it requests a device and by the bundle writer when it records them.
import type { StepProgram } from './program.ts';

export type ProgramNeeds = Pick<StepProgram, 'limits' | 'arenas' | 'features'> & Partial<Pick<StepProgram, 'dispatches'>>;

/**
 * The limits `program` needs, by WebGPU name. A compatibility-mode adapter (Dawn's GLES) grants
 * only 128 invocations per workgroup by default, so everything above the core defaults is
 * requested explicitly.
 */
export function neededLimits(program?: ProgramNeeds): Record<string, number> {
  const invocations = Math.max(256, program?.limits.maxComputeInvocationsPerWorkgroup ?? 256);
  // A loop, not Math.max(...spread): a program of 100k dispatches overflows the call stack.
  let bindingBytes = 128 * 2 ** 20;
  for (const d of program?.dispatches ?? []) for (const b of d.bindings) bindingBytes = Math.max(bindingBytes, Math.ceil(b.bytes / 4) * 4);
  return {
    maxStorageBuffersPerShaderStage: Math.max(8, program?.limits.maxStorageBuffersPerShaderStage ?? 8),
    maxComputeInvocationsPerWorkgroup: invocations,
    maxComputeWorkgroupSizeX: invocations,
    maxComputeWorkgroupSizeY: invocations,
    maxComputeWorkgroupStorageSize: Math.max(16384, program?.limits.maxComputeWorkgroupStorageSize ?? 16384),
    maxBufferSize: (program?.arenas ?? []).reduce((a, b) => Math.max(a, b), 256 * 2 ** 20),
    maxStorageBufferBindingSize: bindingBytes,
  };
}

