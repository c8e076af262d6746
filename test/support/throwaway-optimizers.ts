// Throwaway optimizers that live only in the tests: each is its descriptor alone (rule, states,
// schedule facts), registered at run time, with no edit to any source file. SGD with momentum (one
// state of the param's shape, with WGSL), the same rule inside backward (LOMO-style), and factored
// second moments (a [rows] and a [columns] state per param, as AdaLomo's; reference only).
import type { OptimizerDescriptor, UpdateRule } from '../../compiler/optimizers/descriptor.ts';
import { optimizerNames, registerOptimizer } from '../../compiler/optimizers/table.ts';

const same = (p: readonly number[]) => p;

/** buf' = mu buf + u; w' = w - lr (buf' + wd w). */
const momentumRule: UpdateRule = {
  name: 'momentumSgd',
  hyper: { momentum: { default: 0.9, min: 0, max: 1, help: 'decay of the velocity' } },
  states: [{ name: 'buf', shape: same }],
  usesStep: false,
  reference: ({ w, u, lr, weightDecay, hyper: { momentum }, states: { buf } }) => {
    const b2 = buf.map((b, i) => momentum * b + u[i]);
    return { w: w.map((x, i) => x - lr * (b2[i] + weightDecay * x)), states: { buf: b2 } };
  },
  wgsl: {
    uniforms: ({ momentum }) => ({ mu: momentum }),
    body: (v) => `let b2 = ${v.uniform('mu')} * ${v.state('buf')} + ${v.x};\n${v.state('buf')} = b2;\nlet w2 = ${v.w} - ${v.lr} * (b2 + ${v.wd} * ${v.w});`,
  },
};
export const momentum: OptimizerDescriptor = {
  name: 'momentum', summary: 'SGD with momentum', rule: momentumRule,
  inBackward: false, fuseMatmulUpdate: false, clipNorm: 'afterBackward', masterCopy: true,
};
// The same rule updated inside backward: only the schedule and the clip-norm passes differ.
export const momentumLomo: OptimizerDescriptor = { ...momentum, name: 'momentumLomo', inBackward: true, clipNorm: 'twoPass', masterCopy: false };

/** The param as rows over its last axis: a [rows] and a [columns] state. */
const rowsCols = (p: readonly number[]) => {
  const cols = p.length ? p[p.length - 1] : 1;
  return { rows: p.reduce((a, b) => a * b, 1) / cols, cols };
};
/** r' = b r + (1 - b) rowmean(u^2); c' likewise by column; w' = w - lr (u / (sqrt(r'_i c'_j / mean r') + eps) + wd w). */
const factoredRule: UpdateRule = {
  name: 'factored',
  hyper: { beta: { default: 0.9, min: 0, max: 1, help: 'decay' }, eps: { default: 1e-3, min: 0, help: 'added to the root' } },
  states: [{ name: 'row', shape: (p) => [rowsCols(p).rows] }, { name: 'col', shape: (p) => [rowsCols(p).cols] }],
  usesStep: false,
  reference: ({ w, u, lr, weightDecay, paramShape, hyper: { beta, eps }, states: { row, col } }) => {
    const { rows, cols } = rowsCols(paramShape);
    const r2 = row.map((r, i) => beta * r + ((1 - beta) * u.slice(i * cols, (i + 1) * cols).reduce((a, x) => a + x * x, 0)) / cols);
    const c2 = col.map((c, j) => {
      let s = 0;
      for (let i = 0; i < rows; i++) s += u[i * cols + j] ** 2;
      return beta * c + ((1 - beta) * s) / rows;
    });
    const mean = r2.reduce((a, b) => a + b, 0) / rows;
    const w2 = w.map((x, k) => x - lr * (u[k] / (Math.sqrt((r2[Math.floor(k / cols)] * c2[k % cols]) / mean) + eps) + weightDecay * x));
    return { w: w2, states: { row: r2, col: c2 } };
  },
};
export const factored: OptimizerDescriptor = {
  name: 'factored', summary: 'factored second moments', rule: factoredRule,
  inBackward: true, fuseMatmulUpdate: false, clipNorm: 'twoPass', masterCopy: false,
};
/** Registers the three (once per test process: the table lives as long as the module). */
export function registerThrowaways(): void {
  for (const d of [momentum, momentumLomo, factored]) if (!optimizerNames().includes(d.name)) registerOptimizer(d);
}

