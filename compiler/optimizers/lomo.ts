// LOMO (Lv et al. 2023): SGD's rule, each update fused into backward right after its gradient is
// complete, so gradients never pile up. Clipping by norm needs a second backward pass (section 3.3);
// no f32 master copy (the paper updates f16 weights directly).
import type { OptimizerDescriptor } from './descriptor.ts';
import { sgdRule } from './sgd.ts';

export const lomo: OptimizerDescriptor = {
  name: 'lomo',
  summary: 'SGD fused into backward: each update right after its gradient',
  rule: sgdRule,
  inBackward: true,
  fuseMatmulUpdate: true,
  clipNorm: 'twoPass',
  masterCopy: false,
};
