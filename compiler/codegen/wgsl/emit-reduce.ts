// reduce kernels (to be written).
import type { Emitter } from './emitter.ts';
export const reduceEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
