// The kernel target `lomoc run` and `lomoc train` compile a model file for, read from the adapter
// the program will run on (a bundle's target was fixed when it was compiled): the kernel shapes
// (--target auto), f16 storage (packed in u32 words where the adapter lacks shader-f16, as on
// NVIDIA's Vulkan) and, with --subgroups, subgroup reductions. Subgroups are off by default: a
// subgroup sum's order follows the subgroup size the driver picks per pipeline, so its bits could
// differ from a bundle of the same step (measured on lavapipe); compile --subgroups is the bundle's switch.
import { halfForAdapter, kernelTargets, subgroupsForAdapter, type KernelTarget, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import { probeAdapter } from '../runtime/webgpu/node.ts';
import { resolveTarget, type TargetChoice } from './args.ts';

export interface AdapterTarget {
  readonly target: TargetName;
  readonly kernel: KernelTarget;
  /** How the target was chosen, with what the compiled program uses (its WebGPU features). */
  describe(features: readonly string[]): string;
}

/** `command` names the command in errors; `subgroups`: --subgroups was given (refused where the adapter lacks the feature). */
export async function adapterTarget(command: string, choice: TargetChoice, dtype: string | undefined, subgroupsAsked: boolean): Promise<AdapterTarget> {
  const probed = choice === 'auto' || dtype === 'f16' || subgroupsAsked ? (await probeAdapter())?.adapter : undefined;
  const { target, how } = resolveTarget(choice, choice === 'auto' ? probed : undefined);
  const half = probed ? halfForAdapter(probed) : 'native';
  const subgroups = subgroupsAsked && probed !== undefined && subgroupsCheck(command, probed);
  return {
    target,
    kernel: { ...kernelTargets[target], half, ...(subgroups ? { subgroups } : {}) },
    describe: (features) =>
      [how, ...(dtype === 'f16' && half === 'packed' ? ['f16 packed in u32 words: the adapter lacks shader-f16'] : []), ...(features.includes('subgroups') ? ['subgroup reductions'] : [])].join('; '),
  };
}

/** The adapter offers subgroups, else a clear error: never a silent fallback to the slower kernels. */
export function subgroupsCheck(command: string, adapter: { readonly features: { has(feature: string): boolean }; readonly info?: { readonly description?: string; readonly device?: string } }): true {
  if (subgroupsForAdapter(adapter)) return true;
  const name = adapter.info?.description || adapter.info?.device || 'the adapter';
  throw new LomocError(`lomoc ${command} --subgroups: ${name} lacks the WebGPU feature subgroups; run without --subgroups`);
}
