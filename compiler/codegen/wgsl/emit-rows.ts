// Row kernels over the last axis (to be written).
import type { Emitter, ScratchRule } from './emitter.ts';
export const rowEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
export const rowScratch: { readonly [O in 'layerNormGrad' | 'rmsNormGrad']?: ScratchRule<O> } = {};
