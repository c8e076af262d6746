// optimizer kernels (to be written).
import type { Emitter } from './emitter.ts';
export const optimizerEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
