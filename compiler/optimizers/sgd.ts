// SGD with weight decay: w' = w - lr * (u + wd * w). The plain baseline: all gradients, then all
// updates. LOMO (lomo.ts) uses the same rule, so the two build identical update nodes.
import type { OptimizerDescriptor, UpdateRule } from './descriptor.ts';

export const sgdRule: UpdateRule = {
  name: 'sgd',
  hyper: {},
  states: [],
  usesStep: false,
  reference: ({ w, u, lr, weightDecay }) => ({ w: w.map((x, i) => x - lr * (u[i] + weightDecay * x)), states: {} }),
  wgsl: {
    uniforms: () => ({}),
    body: (v) => `let w2 = ${v.w} - ${v.lr} * (${v.x} + ${v.wd} * ${v.w});`,
  },
};

export const sgd: OptimizerDescriptor = {
  name: 'sgd',
  summary: 'plain SGD: all gradients, then all updates',
  rule: sgdRule,
  inBackward: false,
  fuseMatmulUpdate: false,
  clipNorm: 'afterBackward',
  masterCopy: true,
};
