// Kernels over the last axis, one workgroup per row (row-kernel.ts): softmax and log-softmax and
// their gradients, cross-entropy and its gradient; the norms and rope live in their own files and
// join the table here. Like the reference, softmaxes subtract the row max before exp.
import type { Op } from '../../ir/ops.ts';
import type { NodeOf } from '../../ir/types.ts';
import type { EmitContext, Emitter, KernelCall, ScratchRule } from './emitter.ts';
import { normEmitters, normScratch } from './emit-norm.ts';
import { ropeEmitters } from './emit-rope.ts';
import { rowKernel, rowsOf, type RowSum } from './row-kernel.ts';
import { Bindings, elemOf, floatOnly, Uniforms } from './wgsl-kernel.ts';

/** The row's max m and sum of exp(x - m) over `x[base + j]`, in every thread. */
const stats = (x: string, loop: string, sum: RowSum) => `var m = negInfF32();
${loop} { m = maxNan(m, ${x}[base + j]); }
m = wgMax(m, t);
var s = 0.0;
${sum(['s'], `s += exp(${x}[base + j] - m);`)}
s = wgSum(s, t);`;

function rowOp(op: 'softmax' | 'logSoftmax' | 'softmaxGrad' | 'logSoftmaxGrad'): Emitter<Op> {
  return (n, c) => {
    floatOnly(n, c);
    const b = new Bindings(c);
    const ins = n.inputs.map((v) => b.value(v, false));
    const y = b.value(n.outputs[0], true);
    const [x, dy] = ins;
    const body = (loop: string, sum: RowSum): string => {
      switch (op) {
        case 'softmax':
          return `${stats(x, loop, sum)}\n${loop} { ${y}[base + j] = exp(${x}[base + j] - m) / s; }`;
        case 'logSoftmax':
          return `${stats(x, loop, sum)}\nlet lse = m + log(s);\n${loop} { ${y}[base + j] = ${x}[base + j] - lse; }`;
        case 'softmaxGrad': // dx = y * (dy - sum(dy * y)), x holding y
          return `var d = 0.0;\n${sum(['d'], `d += ${dy}[base + j] * ${x}[base + j];`)}\nd = wgSum(d, t);
${loop} { ${y}[base + j] = ${x}[base + j] * (${dy}[base + j] - d); }`;
        case 'logSoftmaxGrad': // dx = dy - exp(y) * sum(dy), x holding y
          return `var d = 0.0;\n${sum(['d'], `d += ${dy}[base + j];`)}\nd = wgSum(d, t);
${loop} { ${y}[base + j] = ${dy}[base + j] - exp(${x}[base + j]) * d; }`;
      }
    };
    return [rowKernel(c, `row:${op}`, b, new Uniforms(), rowsOf(c.g.values[n.inputs[0]].shape), body)];
  };
}

/**
 * The row's target, or -1 when it is outside [0, n): an out-of-range target gives NaN (loss and
 * gradient row) rather than a read out of bounds.
 */
const target = (ids: string) => `let tg = ${ids}[row];\nlet valid = tg >= 0 && tg < i32(u.n);\nlet tj = select(0u, u32(tg), valid);`;

/** loss = logsumexp(logits) - logits[target], per row. */
const crossEntropy = (n: NodeOf<'crossEntropy'>, c: EmitContext): KernelCall[] => {
  elemOf(n, c, n.inputs[0]);
  elemOf(n, c, n.inputs[1], ['i32']);
  elemOf(n, c, n.outputs[0]);
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false);
  const ids = b.value(n.inputs[1], false, 'i32');
  const loss = b.value(n.outputs[0], true);
  return [rowKernel(c, 'row:crossEntropy', b, new Uniforms(), rowsOf(c.g.values[n.inputs[0]].shape), (loop, sum) => `${stats(x, loop, sum)}
${target(ids)}
if (t == 0u) { ${loss}[row] = select(nanF32(), m + log(s) - ${x}[base + tj], valid); }`)];
};

/** dlogits = (softmax(logits) - onehot(target)) * dloss. */
const crossEntropyGrad = (n: NodeOf<'crossEntropyGrad'>, c: EmitContext): KernelCall[] => {
  elemOf(n, c, n.inputs[0]);
  elemOf(n, c, n.inputs[1], ['i32']);
  elemOf(n, c, n.inputs[2]);
  elemOf(n, c, n.outputs[0]);
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false);
  const ids = b.value(n.inputs[1], false, 'i32');
  const dloss = b.value(n.inputs[2], false);
  const dx = b.value(n.outputs[0], true);
  return [rowKernel(c, 'row:crossEntropyGrad', b, new Uniforms(), rowsOf(c.g.values[n.inputs[0]].shape), (loop, sum) => `${stats(x, loop, sum)}
${target(ids)}
let g = select(nanF32(), ${dloss}[row], valid);
${loop} { ${dx}[base + j] = (exp(${x}[base + j] - m) / s - select(0.0, 1.0, j == tj)) * g; }`)];
};

export const rowEmitters = {
  softmax: rowOp('softmax'),
  logSoftmax: rowOp('logSoftmax'),
  softmaxGrad: rowOp('softmaxGrad'),
  logSoftmaxGrad: rowOp('logSoftmaxGrad'),
  crossEntropy,
  crossEntropyGrad,
  ...normEmitters,
  ...ropeEmitters,
} satisfies {
  readonly [O in Extract<Op, 'softmax' | 'logSoftmax' | 'softmaxGrad' | 'logSoftmaxGrad' | 'crossEntropy' | 'crossEntropyGrad' | 'layerNorm' | 'rmsNorm' | 'layerNormGrad' | 'rmsNormGrad' | 'rope'>]: Emitter<O>;
};

/** Scratch buffers of this family's kernels (the norms' row statistics). */
export const rowScratch: { readonly [O in 'layerNormGrad' | 'rmsNormGrad']?: ScratchRule<O> } = normScratch;
