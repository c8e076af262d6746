// Codegen: the scheduled, fused and planned step becomes a StepProgram of WGSL dispatches.
// Requires: a plan made with the same fusion and the scratch rules of this codegen for the same target.
// Ensures: dispatches in schedule order; every binding inside its planned range; at most 8
// storage bindings per dispatch; identical shaders stored once.
// Cost: O(nodes + dispatches): one emitter call per kernel group, shaders deduplicated by key.
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import type { Fusion } from '../../ir/fusion.ts';
import type { MemoryPlan } from '../../ir/memory-plan.ts';
import type { Op } from '../../ir/ops.ts';
import { byteSize, fmtShape } from '../../ir/shape.ts';
import type { Graph, Node, ValueId } from '../../ir/types.ts';
import { fmtLoc } from '../../diagnostics.ts';
import { gradFactorOutput, type Dispatch, type StepProgram, type TensorSlot } from '../../../contract/program.ts';
import { defaultLimits, type EmitContext, type Emitter, type KernelCall, type Limits, type Slot } from './emitter.ts';
import { emitters } from './emitters.ts';
import { withF16Storage } from './f16-storage.ts';
import { emitGroup } from './fused.ts';
import type { KernelTarget } from './target.ts';

export const maxStorageBindings = 8;

function slotOf(g: Graph, plan: MemoryPlan, v: ValueId): Slot {
  const b = plan.buffers[plan.bufferOf[v]];
  if (!b) throw new CompilerBug(`codegen: %${v} has no planned storage`);
  const value = g.values[v];
  if (b.pieces.length !== 1)
    throw new LomocError(
      `${fmtLoc(value.loc)}: a ${value.dtype}${fmtShape(value.shape)} tensor needs ${b.pieces.length} storage bindings; kernels that address split tensors are not implemented yet`,
    );
  const p = b.pieces[0];
  return { value: v, ref: { arena: p.arena, offset: p.offset, bytes: byteSize(value.shape, value.dtype) }, shape: value.shape, dtype: value.dtype };
}

/**
 * `target` must be the one the plan's scratch was reserved for (groupScratch). `groupStarts`, when
 * given, receives the index of each kernel group's first dispatch (a program with entry points
 * maps node ranges to dispatch ranges with it).
 */
export function lowerStep(g: Graph, plan: MemoryPlan, fusion: Fusion, target: KernelTarget, limits: Limits = defaultLimits, groupStarts?: number[]): StepProgram {
  const shaders: Record<string, string> = {};
  const dispatches: Dispatch[] = [];
  let maxBindings = 0;
  fusion.groups.forEach((group, k) => {
    groupStarts?.push(dispatches.length);
    const ctx: EmitContext = {
      g,
      limits,
      target,
      // WebGPU binds storage in multiples of 4 bytes (an odd count of f16s rounds up into the planned piece's padding).
      slot: (v) => {
        const s = slotOf(g, plan, v);
        return { ...s, ref: { ...s.ref, bytes: Math.ceil(s.ref.bytes / 4) * 4 } };
      },
      scratch: (i) => {
        const b = plan.buffers[plan.scratchOf[k]?.[i]];
        if (!b) throw new CompilerBug(`codegen: group ${k} has no scratch buffer ${i}`);
        return { ...b.pieces[0], bytes: b.bytes };
      },
      sameStorage: (a, c) => plan.bufferOf[a] >= 0 && plan.bufferOf[a] === plan.bufferOf[c],
    };
    const nodes = group.nodes.map((i) => g.nodes[i]);
    const calls: KernelCall[] =
      group.kind === 'single' ? (emitters[nodes[0].op] as Emitter<Op>)(nodes[0] as never, ctx) : emitGroup(group, nodes, ctx);
    const label = labelOf(nodes);
    for (const emitted of calls) {
      const call = withF16Storage(emitted, target.half ?? 'native');
      if (call.bindings.length > maxStorageBindings)
        throw new CompilerBug(`codegen: ${label} binds ${call.bindings.length} storage buffers, more than ${maxStorageBindings}`);
      maxBindings = Math.max(maxBindings, call.bindings.length);
      const prev = shaders[call.key];
      if (prev !== undefined && prev !== call.code) throw new CompilerBug(`codegen: two shaders share the key ${call.key}`);
      shaders[call.key] = call.code;
      dispatches.push({ shader: call.key, label, bindings: call.bindings, uniforms: call.uniforms, workgroups: call.workgroups });
    }
  });
  const tensor = (name: string, v: ValueId): TensorSlot => {
    const s = slotOf(g, plan, v);
    return { name, ...s.ref, shape: s.shape, dtype: s.dtype };
  };
  const stored = (v: ValueId) => plan.bufferOf[v] >= 0;
  return {
    version: 1,
    name: g.name,
    arenas: plan.arenas,
    inputs: g.inputs.filter((d) => stored(d.value)).map((d) => tensor(d.name, d.value)),
    params: g.params.map((d) => ({ ...tensor(d.name, d.value), init: d.init })),
    state: (g.state ?? []).map((d) => tensor(d.name, d.value)),
    loss: tensor('loss', g.loss),
    ...(g.outputs?.[gradFactorOutput] === undefined ? {} : { outputs: [tensor(gradFactorOutput, g.outputs[gradFactorOutput])] }),
    shaders,
    dispatches,
    limits: {
      maxStorageBuffersPerShaderStage: Math.max(maxBindings, 4),
      maxComputeInvocationsPerWorkgroup: limits.maxWorkgroupSize,
      maxComputeWorkgroupStorageSize: limits.maxWorkgroupStorageBytes,
    },
    // Packed f16 (and bf16, always packed) needs no feature: that is the point of packing.
    features: target.half !== 'packed' && g.values.some((v) => v.dtype === 'f16') ? ['shader-f16'] : [],
  };
}

const labelOf = (nodes: readonly Node[]): string =>
  `${nodes.map((n) => n.op).join('+')} @ ${fmtLoc(nodes[nodes.length - 1].loc)}`;
