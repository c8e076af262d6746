// The WGSL emitter of every op, in one table: an op without an emitter is a compile error.
// One file per family of kernels.
import type { Fusion } from '../../ir/fusion.ts';
import type { Op } from '../../ir/ops.ts';
import type { Graph, NodeOf } from '../../ir/types.ts';
import type { Emitter, ScratchRule } from './emitter.ts';
import { attentionEmitters, attentionScratch } from './emit-attention.ts';
import { elementwiseEmitters } from './emit-elementwise.ts';
import { inferenceEmitters } from './emit-inference.ts';
import { linearCrossEntropyEmitters, linearCrossEntropyScratch } from './emit-linear-ce.ts';
import { matmulEmitters } from './emit-matmul.ts';
import { matmulNormScratch } from './emit-matmul-norm.ts';
import { reduceEmitters, reduceScratch } from './emit-reduce.ts';
import { rowEmitters, rowScratch } from './emit-rows.ts';
import { tokenEmitters, tokenScratch } from './emit-tokens.ts';
import { updateEmitters, updateScratch } from './emit-update-phases.ts';
import type { KernelTarget } from './target.ts';

export const emitters = {
  ...elementwiseEmitters,
  ...reduceEmitters,
  ...rowEmitters,
  ...matmulEmitters,
  ...attentionEmitters,
  ...tokenEmitters,
  ...updateEmitters,
  ...inferenceEmitters,
  ...linearCrossEntropyEmitters,
} satisfies { readonly [O in Op]: Emitter<O> };

/** Ops whose kernels need scratch buffers while they run. */
export const scratchRules: { readonly [O in Op]?: ScratchRule<O> } = {
  ...rowScratch,
  ...reduceScratch,
  ...attentionScratch,
  ...tokenScratch,
  ...updateScratch,
  ...linearCrossEntropyScratch,
};

/** Scratch bytes each kernel group needs (fused groups none but the fused head's, matmulNorm's partials, and a normSum's or reduction + update's reduction) on `target`: the planner reserves them. */
export function groupScratch(g: Graph, fusion: Fusion, target: KernelTarget): (group: number) => readonly number[] {
  return (k) => {
    const group = fusion.groups[k];
    if (group.kind === 'matmulNorm') return matmulNormScratch(g.nodes[group.nodes[0]] as NodeOf<'matmul'>, g, target);
    // A reduction + update runs the reduction's kernels (their partials included), then no more.
    if (group.kind !== 'single' && group.kind !== 'lossUpdate' && group.kind !== 'normSum' && group.kind !== 'reduceUpdate') return [];
    const n = g.nodes[group.nodes[0]];
    const rule = scratchRules[n.op] as ScratchRule<Op> | undefined;
    return rule ? rule(n as never, g, target) : [];
  };
}
