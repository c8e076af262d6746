// The public DSL: `import { model, input, param, matmul, ... } from 'lomoc'`.
export { model, type ModelDef, type Config } from './model.ts';
export { input, param, block, output, normal, zeros, ones, fanIn } from './declare.ts';
export * from './ops.ts';
export type { Tensor } from './tensor.ts';
