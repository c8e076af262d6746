// attention and attentionGrad kernels (to be written).
import type { Emitter, ScratchRule } from './emitter.ts';
export const attentionEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
export const attentionScratch: { readonly [O in 'attentionGrad']?: ScratchRule<O> } = {};
