// The WGSL emitter of every op, in one table: an op without an emitter is a compile error.
// One file per family of kernels.
import type { Op } from '../../ir/ops.ts';
import type { Emitter, ScratchRule } from './emitter.ts';
import { attentionEmitters, attentionScratch } from './emit-attention.ts';
import { elementwiseEmitters } from './emit-elementwise.ts';
import { matmulEmitters } from './emit-matmul.ts';
import { optimizerEmitters } from './emit-optimizer.ts';
import { reduceEmitters, reduceScratch } from './emit-reduce.ts';
import { rowEmitters, rowScratch } from './emit-rows.ts';
import { tokenEmitters, tokenScratch } from './emit-tokens.ts';

export const emitters = {
  ...elementwiseEmitters,
  ...reduceEmitters,
  ...rowEmitters,
  ...matmulEmitters,
  ...attentionEmitters,
  ...tokenEmitters,
  ...optimizerEmitters,
} satisfies { readonly [O in Op]: Emitter<O> };

/** Ops whose kernels need scratch buffers while they run. */
export const scratchRules: { readonly [O in Op]?: ScratchRule<O> } = { ...rowScratch, ...reduceScratch, ...attentionScratch, ...tokenScratch };
