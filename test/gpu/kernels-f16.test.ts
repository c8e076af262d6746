// f16 storage: every kernel family, with its float operands stored as f16, matches the reference
// executor's f16 emulation (runtime/reference/tensor.ts: inputs and each stored result rounded
// to f16, the arithmetic in doubles) on both kernel targets, over shapes that are not multiples
// of any tile and size 1.
//
// Tolerance: both sides read the same f16 inputs and round each stored output once to f16; the
// kernels compute in f32 (the reference in doubles), so before that rounding they differ by the
// op's f32 tolerance (the one its f32 test uses). That difference can move the final rounding by
// one f16 step: at most 2^-10 of |ref| for normal values (an 11-bit significand), 2^-24 absolute
// among subnormals. So each check allows the f32 tolerance plus one f16 step.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { bothTargets } from './harness.ts';
import { attentionLse, awkwardSize, compareOp, random, runs, seed, type Tolerance } from './kernel-check.ts';

const f16Step = (f32: Tolerance): Tolerance => ({ abs: f32.abs + 2 ** -24, rel: f32.rel + 2 ** -10 });
const exact = f16Step({ abs: 1e-6, rel: 1e-6 });
const math = f16Step({ abs: 1e-5, rel: 2e-5 });
const rows = f16Step({ abs: 1e-5, rel: 1e-5 });
/** Sums of K products of values of size ~1: the f32 matmul tolerance grows with sqrt(K). */
const dot = (k: number) => f16Step({ abs: 2e-6 * Math.sqrt(k) * 4, rel: 1e-5 });

const ids = (shape: number[], vocab: number, s: number): HostTensor => randomTokens(shape, vocab, s);

describe('f16 storage kernels match the reference f16 emulation', () => {
  for (const target of bothTargets) {
    it(`elementwise, layout and reductions (${target.name} target)`, async () => {
      const cmp = <O extends Parameters<typeof compareOp>[0]>(op: O, ins: HostTensor[], attrs: Parameters<typeof compareOp<O>>[2], tol: Tolerance) =>
        compareOp(op, ins, attrs, tol, target, 'f16');
      await fc.assert(fc.asyncProperty(fc.array(awkwardSize, { minLength: 1, maxLength: 3 }), seed, async (shape, s) => {
        const x = random(shape, s);
        await cmp('add', [x, random(shape.slice(-1), s + 1)], {}, exact);
        await cmp('mul', [x, random(shape, s + 2)], {}, exact);
        await cmp('scale', [x], { c: 0.3 }, exact);
        await cmp('exp', [x], {}, math);
        await cmp('gelu', [x], {}, math);
        await cmp('geluGrad', [x, random(shape, s + 3)], {}, math);
        await cmp('transpose', [x], { perm: shape.map((_, i) => shape.length - 1 - i) }, exact);
        await cmp('pad', [x], { before: shape.map(() => 1), after: shape.map((_, i) => i % 2) }, exact);
        await cmp('concat', [x, x], { axis: shape.length - 1 }, exact);
        await cmp('sum', [x], { axes: [shape.length - 1], keepDims: false }, dot(shape[shape.length - 1]));
        await cmp('max', [x], { axes: [0], keepDims: true }, exact);
        await cmp('sumSquares', [x], {}, f16Step({ abs: 1e-5, rel: 1e-5 }));
      }), runs(3));
      await cmp('fill', [], { value: 1 / 3, shape: [3, 5], dtype: 'f16' }, exact);
    });

    it(`row kernels: softmax, norms, rope, cross-entropy (${target.name} target)`, async () => {
      const cmp = <O extends Parameters<typeof compareOp>[0]>(op: O, ins: HostTensor[], attrs: Parameters<typeof compareOp<O>>[2], tol: Tolerance) =>
        compareOp(op, ins, attrs, tol, target, 'f16');
      for (const [r, n] of [[1, 1], [3, 1031]]) {
        const x = random([r, n], n);
        await cmp('softmax', [x], {}, rows);
        await cmp('logSoftmax', [x], {}, rows);
        await cmp('softmaxGrad', [random([r, n], 3, (v) => Math.exp(v) / n), random([r, n], 4)], {}, rows);
        await cmp('layerNorm', [x, random([n], 9), random([n], 10)], { eps: 1e-5 }, rows);
        await cmp('rmsNorm', [x, random([n], 9)], { eps: 1e-5 }, rows);
        const gradTol = f16Step({ abs: 1e-5 * Math.sqrt(r) * (n === 1 ? 1 / Math.sqrt(1e-5) : 1), rel: 1e-5 });
        await cmp('layerNormGrad', [x, random([n], 2), random([r, n], 3)], { eps: 1e-5 }, gradTol);
        await cmp('rmsNormGrad', [x, random([n], 2), random([r, n], 3)], { eps: 1e-5 }, gradTol);
        const t = ids([r], n, 5);
        await cmp('crossEntropy', [x, t], {}, rows);
        await cmp('crossEntropyGrad', [x, t, random([r], 7)], {}, rows);
      }
      await cmp('rope', [random([2, 5, 8], 1)], { base: 10000, inverse: false }, math);
    });

    it(`matmul (scalar and vec4 B), attention and embeddings (${target.name} target)`, async () => {
      const cmp = <O extends Parameters<typeof compareOp>[0]>(op: O, ins: HostTensor[], attrs: Parameters<typeof compareOp<O>>[2], tol: Tolerance) =>
        compareOp(op, ins, attrs, tol, target, 'f16');
      // N = 8, 20 take the vec4 path for B (batched over a broadcast B); 1, 13 and transposed B the scalar one.
      const cases = [[1, 1, 1, false, false], [13, 7, 8, false, false], [65, 33, 20, true, false], [3, 130, 13, false, true]] as const;
      for (const [m, k, n, transA, transB] of cases) {
          const a = random(transA ? [k, m] : [m, k], m + k);
          const b = random(transB ? [n, k] : [k, n], k + n);
          await cmp('matmul', [a, b], { transA, transB }, dot(k));
        }
      for (const [b, t, d] of [[1, 1, 1], [2, 33, 8]]) {
        const q = random([b, t, d], 1);
        const [kk, v, dout] = [random([b, t, d], 2), random([b, t, d], 3), random([b, t, d], 4)];
        await cmp('attention', [q, kk, v], { scale: 1 / Math.sqrt(d), causal: true }, rows);
        const attrs = { scale: 1 / Math.sqrt(d), causal: t > 1 };
        await cmp('attentionGrad', [q, kk, v, attentionLse([q, kk, v], attrs, 'f16'), dout], attrs, f16Step({ abs: 1e-4, rel: 1e-4 }));
      }
      await cmp('embedding', [random([11, 7], 1), ids([2, 5], 11, 2)], {}, exact);
      await cmp('embeddingGrad', [ids([2, 9], 5, 3), random([2, 9, 3], 4)], { vocab: 5 }, dot(18));
    });
  }
});
