// elementwise kernels (to be written).
import type { Emitter } from './emitter.ts';
export const elementwiseEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
