// AdaLomo (Lv et al. 2023, arXiv 2310.10195): Adafactor's factored second moment without momentum,
// each update fused into backward as LOMO's. The param is seen as [rows, cols] (cols its last axis;
// a vector is one row, so v = c is its full second moment, and r one extra float):
//   b = 1 - t^decayRate;  r' = b r + (1 - b) (rowmean(x^2) + eps1);  c' likewise over columns
//   u = x / sqrt(r'_i c'_j / mean(r'));  u /= max(1, RMS(u) / clipThreshold)
//   w' = w (1 - s wd) - s u,  s = lr max(eps2, RMS(w))
// as OpenLMLab/LOMO's lomo_optim/adalomo.py computes it (weight decay scaled by the same s), with
// its defaults: eps = (1e-30, 1e-3), clip_threshold 1.0, decay_rate -0.8. Clip-norm is two passes,
// as that code does (its grad_norm, then fused_backward).
//
// WGSL (the reduction form): row sums of x^2 update r, column sums update c, one whole-param sum
// gives mean(r'), RMS(u) and RMS(w), then each element is updated. RMS(u) is summed from g again
// rather than from a stored u: g is read 4 times and w twice, in 5 dispatches (6 past 256 rows,
// where column sums go through row-chunk partials), and the scratch is 3 floats plus at most 2^18
// partials (1 MiB; 3 * 1024 for a short matrix): nothing param-sized beyond LOMO's one gradient,
// which AdaLomo must store (LOMO fuses it into the weight-gradient matmul; AdaLomo needs its sums).
import { matrixShape, type OptimizerDescriptor, type UpdateRule, type WgslPhaseNames } from './descriptor.ts';

/** b and 1 - b at step t, with 1 - b = t^decayRate taken exactly (it is 1 at t = 1: no history). */
const decay = (v: WgslPhaseNames) => `let ob = pow(${v.step}, ${v.uniform('decay')});\nlet b = 1.0 - ob;`;

export const adalomoRule: UpdateRule = {
  name: 'adalomo',
  hyper: {
    eps1: { default: 1e-30, min: 0, help: 'added to each squared gradient' },
    eps2: { default: 1e-3, min: 0, help: 'the least param RMS the step is scaled by' },
    clipThreshold: { default: 1, min: 1e-6, help: 'the update RMS above which the update is scaled down' },
    decayRate: { default: -0.8, min: -10, max: 0, help: 'the second moments decay as 1 - step^decayRate' },
  },
  states: [{ name: 'row', shape: (p) => [matrixShape(p).rows] }, { name: 'col', shape: (p) => [matrixShape(p).cols] }],
  usesStep: true,
  reference: ({ w, u: x, lr, weightDecay, step, paramShape, hyper: { eps1, eps2, clipThreshold, decayRate }, states: { row, col } }) => {
    const { rows, cols } = matrixShape(paramShape);
    const ob = step ** decayRate;
    const b = 1 - ob;
    const r = new Float64Array(rows);
    const c = new Float64Array(cols);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) {
        const q = x[i * cols + j] ** 2;
        r[i] += q;
        c[j] += q;
      }
    for (let i = 0; i < rows; i++) r[i] = b * row[i] + ob * (r[i] / cols + eps1);
    for (let j = 0; j < cols; j++) c[j] = b * col[j] + ob * (c[j] / rows + eps1);
    const meanR = r.reduce((a, v) => a + v, 0) / rows;
    const n = w.length;
    const u = Float64Array.from(x, (g, k) => g / Math.sqrt((r[Math.floor(k / cols)] * c[k % cols]) / meanR));
    const rms = (a: Float64Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / n);
    const s = lr * Math.max(eps2, rms(w));
    const shrink = s / Math.max(1, rms(u) / clipThreshold);
    return { w: w.map((v, k) => v * (1 - s * weightDecay) - shrink * u[k]), states: { row: r, col: c } };
  },
  reduction: {
    uniforms: ({ eps1, eps2, clipThreshold, decayRate }) => ({ eps1, eps2, clip: clipThreshold, decay: decayRate }),
    phases: [
      {
        over: 'rows',
        terms: { sq: (v) => `${v.x} * ${v.x}` },
        finish: (v) => `${decay(v)}\n${v.row('row')} = b * ${v.row('row')} + ob * (${v.sum('sq')} / ${v.cols} + ${v.uniform('eps1')});`,
      },
      {
        over: 'cols',
        terms: { sq: (v) => `${v.x} * ${v.x}` },
        finish: (v) => `${decay(v)}\n${v.col('col')} = b * ${v.col('col')} + ob * (${v.sum('sq')} / ${v.rows} + ${v.uniform('eps1')});`,
      },
      {
        // sum(u^2) = mean(r') * sum((x / sqrt(r'_i) / sqrt(c'_j))^2): each root taken alone, since
        // r'_i c'_j underflows f32 where a row and a column saw only zeros (both near eps1 = 1e-30).
        over: 'total',
        terms: {
          uu: (v) => `pow2(${v.x} * inverseSqrt(${v.row('row')}) * inverseSqrt(${v.col('col')}))`,
          rr: (v) => v.row('row'),
          ww: (v) => `${v.w} * ${v.w}`,
        },
        scalars: ['meanR', 'shrink', 'keep'],
        finish: (v) => `let meanR = ${v.sum('rr')} / ${v.count};
let s = ${v.lr} * max(${v.uniform('eps2')}, sqrt(${v.sum('ww')} / ${v.count}));
${v.scalar('meanR')} = meanR;
${v.scalar('shrink')} = s / max(1.0, sqrt(meanR * ${v.sum('uu')} / ${v.count}) / ${v.uniform('clip')});
${v.scalar('keep')} = 1.0 - s * ${v.wd};`,
      },
    ],
    functions: 'fn pow2(a: f32) -> f32 { return a * a; }',
    body: (v) => `let uu = ${v.x} * inverseSqrt(${v.row('row')} / ${v.scalar('meanR')}) * inverseSqrt(${v.col('col')});
let w2 = ${v.scalar('keep')} * ${v.w} - ${v.scalar('shrink')} * uu;`,
  },
};

export const adalomo: OptimizerDescriptor = {
  name: 'adalomo',
  summary: 'AdaLomo: factored second moments and update normalisation, fused into backward',
  rule: adalomoRule,
  inBackward: true,
  fuseMatmulUpdate: false,
  clipNorm: 'twoPass',
  masterCopy: false,
};
