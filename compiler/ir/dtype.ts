// The element types and shapes of IR values: the bottom of the IR, imported by ops.ts and types.ts.
export type DType = 'f32' | 'f16' | 'bf16' | 'i32';
export type Shape = readonly number[];
