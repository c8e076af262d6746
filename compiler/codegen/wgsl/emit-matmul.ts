// matmul kernels (to be written).
import type { Emitter } from './emitter.ts';
export const matmulEmitters = {} satisfies { readonly [O in never]: Emitter<O> };
