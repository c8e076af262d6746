// Fused kernel groups (to be written with passes/fuse.ts).
import { CompilerBug } from '../../diagnostics.ts';
import type { KernelGroup } from '../../ir/fusion.ts';
import type { Node } from '../../ir/types.ts';
import type { EmitContext, KernelCall } from './emitter.ts';
export function emitGroup(group: KernelGroup, nodes: readonly Node[], c: EmitContext): KernelCall[] {
  void nodes; void c;
  throw new CompilerBug(`codegen: no emitter for ${group.kind} groups yet`);
}
