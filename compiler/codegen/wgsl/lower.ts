// Codegen: the scheduled, fused and planned step becomes a StepProgram of WGSL dispatches.
// Requires: a plan made with the same fusion and the scratch rules of this codegen for the same target.
// Ensures: dispatches in schedule order; every binding inside its planned range; at most 8
// storage bindings per dispatch; identical shaders stored once.
// Cost: O(nodes + dispatches): one emitter call per kernel group, shaders deduplicated by key.
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import type { Fusion } from '../../ir/fusion.ts';
import type { MemoryPlan } from '../../ir/memory-plan.ts';
import type { Op } from '../../ir/ops.ts';
import { byteSize } from '../../ir/shape.ts';
import type { Graph, Node, ValueId } from '../../ir/types.ts';
import { fmtLoc } from '../../diagnostics.ts';
import { gradFactorOutput, type BufferRef, type Dispatch, type StepProgram, type TensorSlot } from '../../../contract/program.ts';
import { fmtBytes } from '../../../contract/units.ts';
import { isSplitRef, splitBindings, splitBuffer, splitRef, type SplitPieces } from './split-storage.ts';
import { defaultLimits, type EmitContext, type Emitter, type KernelCall, type Limits, type Slot } from './emitter.ts';
import { emitters } from './emitters.ts';
import { withF16Storage } from './f16-storage.ts';
import { emitGroup } from './fused.ts';
import { enableSubgroups } from './subgroup-reduce.ts';
import type { KernelTarget } from './target.ts';

export const maxStorageBindings = 8;

/** A value's storage; a tensor in several pieces gets a stand-in range (split-storage.ts). */
function slotOf(g: Graph, plan: MemoryPlan, v: ValueId): Slot {
  const id = plan.bufferOf[v];
  const b = plan.buffers[id];
  if (!b) throw new CompilerBug(`codegen: %${v} has no planned storage`);
  const value = g.values[v];
  const bytes = byteSize(value.shape, value.dtype);
  const p = b.pieces[0];
  const ref = b.pieces.length > 1 ? splitRef(id, bytes) : { arena: p.arena, offset: p.offset, bytes };
  return { value: v, ref, shape: value.shape, dtype: value.dtype };
}

/** The pieces of a stand-in range, each bound with the bytes it holds of the tensor (whole words). */
function piecesOf(plan: MemoryPlan, r: BufferRef): SplitPieces {
  const b = plan.buffers[splitBuffer(r)];
  if (!b || b.pieces.length < 2) throw new CompilerBug(`codegen: a split binding names buffer ${splitBuffer(r)}, which is not split`);
  const pieceBytes = b.pieces[0].bytes;
  const pieces = b.pieces.map((p, j) => ({ ...p, bytes: Math.min(p.bytes, Math.ceil((r.bytes - j * pieceBytes) / 4) * 4) }));
  if (pieces.some((p, j) => p.bytes <= 0 || (j < pieces.length - 1 && p.bytes !== pieceBytes)))
    throw new CompilerBug(`codegen: buffer ${splitBuffer(r)}'s pieces do not hold its ${r.bytes} bytes in pieces of ${pieceBytes}`);
  return { pieces, pieceBytes };
}

/** The smallest binding size (a multiple of `alignment`) at which `bytes` fit in `most` bindings, or undefined. */
export function smallestBinding(bytes: readonly number[], most: number, alignment: number): number | undefined {
  const fits = (m: number) => bytes.reduce((n, b) => n + Math.ceil(b / m), 0) <= most;
  let hi = Math.ceil(Math.max(...bytes, 1) / alignment) * alignment;
  if (!fits(hi)) return undefined;
  let lo = alignment;
  if (fits(lo)) return lo;
  while (hi - lo > alignment) {
    const mid = Math.floor((lo + hi) / 2 / alignment) * alignment;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
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
        const id = plan.scratchOf[k]?.[i];
        const b = plan.buffers[id];
        if (!b) throw new CompilerBug(`codegen: group ${k} has no scratch buffer ${i}`);
        return b.pieces.length > 1 ? splitRef(id, b.bytes) : { ...b.pieces[0], bytes: b.bytes };
      },
      sameStorage: (a, c) => plan.bufferOf[a] >= 0 && plan.bufferOf[a] === plan.bufferOf[c],
      pieces: (r) => (isSplitRef(r) ? piecesOf(plan, r).pieces : [r]),
      maxBindingBytes: plan.maxBindingBytes,
    };
    const nodes = group.nodes.map((i) => g.nodes[i]);
    const calls: KernelCall[] =
      group.kind === 'single' ? (emitters[nodes[0].op] as Emitter<Op>)(nodes[0] as never, ctx) : emitGroup(group, nodes, ctx);
    const label = labelOf(nodes);
    for (const emitted of calls) {
      const half = withF16Storage(emitted, target.half ?? 'native');
      const call = splitBindings(half, (r) => piecesOf(plan, r));
      if (call.bindings.length > maxStorageBindings) {
        if (half.bindings.length > maxStorageBindings)
          throw new CompilerBug(`codegen: ${label} binds ${half.bindings.length} storage buffers, more than ${maxStorageBindings}`);
        throw tooManyPieces(nodes, half.bindings, call.bindings.length, plan);
      }
      maxBindings = Math.max(maxBindings, call.bindings.length);
      const prev = shaders[call.key];
      if (prev !== undefined && prev !== call.code) throw new CompilerBug(`codegen: two shaders share the key ${call.key}`);
      shaders[call.key] = call.code;
      dispatches.push({ shader: call.key, label, bindings: call.bindings, uniforms: call.uniforms, workgroups: call.workgroups });
    }
  });
  const tensor = (name: string, v: ValueId): TensorSlot => {
    const s = slotOf(g, plan, v);
    if (!isSplitRef(s.ref)) return { name, ...s.ref, shape: s.shape, dtype: s.dtype };
    const { pieces } = piecesOf(plan, s.ref);
    return { name, arena: pieces[0].arena, offset: pieces[0].offset, bytes: s.ref.bytes, shape: s.shape, dtype: s.dtype, pieces };
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
    // subgroups only when some kernel uses them (target.subgroups, and a reduction across threads).
    features: [
      ...(target.half !== 'packed' && g.values.some((v) => v.dtype === 'f16') ? ['shader-f16'] : []),
      ...(Object.values(shaders).some((code) => code.includes(enableSubgroups)) ? ['subgroups'] : []),
    ],
  };
}

/** A kernel whose split tensors need more than 8 bindings: the binding size that would fit it, at the user's line. */
function tooManyPieces(nodes: readonly Node[], bindings: readonly BufferRef[], count: number, plan: MemoryPlan): LomocError {
  const fixed = bindings.filter((b) => !isSplitRef(b)).length;
  const least = smallestBinding(bindings.filter(isSplitRef).map((b) => b.bytes), maxStorageBindings - fixed, plan.alignment);
  const ops = nodes.map((n) => n.op).join('+');
  return new LomocError(
    `${ops}: with storage bindings of at most ${fmtBytes(plan.maxBindingBytes)} (--max-binding) this kernel's split tensors take ${count} bindings, more than ${maxStorageBindings}; ` +
      (least === undefined ? 'no binding size fits them' : `the smallest --max-binding it works with is ${least} (${fmtBytes(least)})`),
    nodes[nodes.length - 1].loc,
  );
}

/** What a dispatch computes and where; a batch of one op (an update batch) as `op*count`. */
const labelOf = (nodes: readonly Node[]): string =>
  `${nodes.length > 2 && nodes.every((n) => n.op === nodes[0].op) ? `${nodes[0].op}*${nodes.length}` : nodes.map((n) => n.op).join('+')} @ ${fmtLoc(nodes[nodes.length - 1].loc)}`;
