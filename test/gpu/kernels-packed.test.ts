// 16-bit storage packed in u32 words (codegen/wgsl/packed-storage.ts). lavapipe offers shader-f16,
// so both f16 forms run here: every kernel family with its float operands packed must give the
// same bits as with native array<f16>. bf16 (always packed) matches the reference executor's
// bf16 emulation: both round each stored value once to bf16, the kernel from f32 and the
// reference from a double, so besides the op's f32 tolerance one bf16 step (2^-7 relative) may
// separate them.
import { describe, expect, it } from 'vitest';
import type { Op, OpAttrs } from '../../compiler/ir/ops.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { opGraph } from '../reference/helpers.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { attentionLse, compareOp, random, type Tolerance } from './kernel-check.ts';

const native = kernelTargets.cpu;
const packed = { ...kernelTargets.cpu, half: 'packed' as const };

/** Runs one op with f16 operands natively and packed; every output must have the same bits. */
async function sameBits<O extends Op>(op: O, ins: readonly HostTensor[], attrs: OpAttrs[O]): Promise<void> {
  const { g, outs } = opGraph(op, ins, attrs, 'f16');
  const feeds = { inputs: Object.fromEntries(ins.map((t, i) => [`x${i}`, t])), params: {} };
  const fusion = noFusion(g.nodes.length);
  const program = lowerStep(g, planMemory(g, { fusion, scratch: scratchFor(g, fusion, packed), keep: outs }), fusion, packed);
  expect(program.features, `${op}: packed f16 needs no shader-f16`).toEqual([]);
  expect(Object.values(program.shaders).some((s) => /enable f16|array<f16>/.test(s)), `${op}: packed shaders use no f16 type`).toBe(false);
  const [a, b] = [await runOnGpu(g, feeds, outs, undefined, undefined, native), await runOnGpu(g, feeds, outs, undefined, undefined, packed)];
  for (const v of outs) {
    const [x, y] = [new Uint32Array(Float32Array.from(a.get(v)!).buffer), new Uint32Array(Float32Array.from(b.get(v)!).buffer)];
    const i = x.findIndex((bits, k) => bits !== y[k]);
    if (i >= 0 || x.length !== y.length) expect.fail(`${op} ${ins.map((t) => `[${t.shape}]`).join(' ')}: element ${i} native ${a.get(v)![i]}, packed ${b.get(v)![i]}`);
  }
}

const ids = (shape: number[], vocab: number, s: number): HostTensor => randomTokens(shape, vocab, s);

describe('packed f16 equals native f16 bit for bit (lavapipe has both)', () => {
  it('elementwise, layout and reductions, odd sizes', async () => {
    for (const shape of [[1], [7], [2, 5, 65]]) {
      const x = random(shape, shape.length);
      await sameBits('add', [x, random(shape.slice(-1), 1)], {});
      await sameBits('mul', [x, random(shape, 2)], {});
      await sameBits('gelu', [x], {});
      await sameBits('transpose', [x], { perm: shape.map((_, i) => shape.length - 1 - i) });
      await sameBits('pad', [x], { before: shape.map(() => 1), after: shape.map((_, i) => i % 2) });
      await sameBits('concat', [x, x], { axis: shape.length - 1 });
      await sameBits('sum', [x], { axes: [shape.length - 1], keepDims: false });
      await sameBits('sumSquares', [x], {});
    }
  });

  it('row kernels: softmax, norms, rope, cross-entropy', async () => {
    for (const [r, n] of [[1, 1], [3, 1031]]) {
      const x = random([r, n], n);
      await sameBits('softmax', [x], {});
      await sameBits('layerNorm', [x, random([n], 9), random([n], 10)], { eps: 1e-5 });
      await sameBits('rmsNormGrad', [x, random([n], 2), random([r, n], 3)], { eps: 1e-5 });
      await sameBits('crossEntropy', [x, ids([r], n, 5)], {});
      await sameBits('crossEntropyGrad', [x, ids([r], n, 5), random([r], 7)], {});
    }
    await sameBits('rope', [random([2, 5, 8], 1)], { base: 10000, inverse: false });
  });

  it('matmul (scalar and vec4 B), attention and embeddings', async () => {
    for (const [m, k, n, transB] of [[1, 1, 1, false], [13, 7, 8, false], [3, 130, 13, true]] as const)
      await sameBits('matmul', [random([m, k], m + k), random(transB ? [n, k] : [k, n], k + n)], { transA: false, transB });
    for (const [b, t, d] of [[1, 1, 1], [2, 33, 8]]) {
      const [q, kk, v, dout] = [random([b, t, d], 1), random([b, t, d], 2), random([b, t, d], 3), random([b, t, d], 4)];
      await sameBits('attention', [q, kk, v], { scale: 1 / Math.sqrt(d), causal: true });
      const attrs = { scale: 1 / Math.sqrt(d), causal: t > 1 };
      await sameBits('attentionGrad', [q, kk, v, attentionLse([q, kk, v], attrs, 'f16'), dout], attrs);
    }
    await sameBits('embedding', [random([11, 7], 1), ids([2, 5], 11, 2)], {});
    await sameBits('embeddingGrad', [ids([2, 9], 5, 3), random([2, 9, 3], 4)], { vocab: 5 });
  });
});

const bf16Step = (f32: Tolerance): Tolerance => ({ abs: f32.abs + 2 ** -133, rel: f32.rel + 2 ** -7 });
const exact = bf16Step({ abs: 1e-6, rel: 1e-6 });
const math = bf16Step({ abs: 1e-5, rel: 2e-5 });
const dot = (k: number) => bf16Step({ abs: 2e-6 * Math.sqrt(k) * 4, rel: 1e-5 });

describe('bf16 storage kernels match the reference bf16 emulation', () => {
  const cmp = <O extends Op>(op: O, ins: HostTensor[], attrs: OpAttrs[O], tol: Tolerance) => compareOp(op, ins, attrs, tol, kernelTargets.cpu, 'bf16');
  it('elementwise, layout, reductions and rows, odd sizes', async () => {
    for (const shape of [[1], [3, 13], [2, 5, 65]]) {
      const x = random(shape, shape.length);
      await cmp('add', [x, random(shape.slice(-1), 1)], {}, exact);
      await cmp('exp', [x], {}, math);
      await cmp('transpose', [x], { perm: shape.map((_, i) => shape.length - 1 - i) }, exact);
      await cmp('sum', [x], { axes: [shape.length - 1], keepDims: false }, dot(shape.at(-1)!));
    }
    const x = random([3, 1031], 3);
    await cmp('softmax', [x], {}, bf16Step({ abs: 1e-5, rel: 1e-5 }));
    await cmp('rmsNorm', [x, random([1031], 9)], { eps: 1e-5 }, bf16Step({ abs: 1e-5, rel: 1e-5 }));
    await cmp('crossEntropy', [x, ids([3], 1031, 5)], {}, bf16Step({ abs: 1e-5, rel: 1e-5 }));
  });

  it('matmul (scalar and vec4 B), attention and embeddings', async () => {
    for (const [m, k, n] of [[1, 1, 1], [13, 7, 8], [3, 130, 13]])
      await cmp('matmul', [random([m, k], m + k), random([k, n], k + n)], { transA: false, transB: false }, dot(k));
    const [q, kk, v] = [random([2, 33, 8], 1), random([2, 33, 8], 2), random([2, 33, 8], 3)];
    await cmp('attention', [q, kk, v], { scale: 1 / Math.sqrt(8), causal: true }, bf16Step({ abs: 1e-5, rel: 1e-5 }));
    await cmp('embedding', [random([11, 7], 1), ids([2, 5], 11, 2)], {}, exact);
    await cmp('embeddingGrad', [ids([2, 9], 5, 3), random([2, 9, 3], 4)], { vocab: 5 }, dot(18));
  });
});
