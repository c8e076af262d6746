// tokens kernels (to be written).
import type { Emitter } from './emitter.ts';
export const tokenEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
