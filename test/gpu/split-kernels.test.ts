// Every kernel family on tensors split across storage bindings (forced by a small binding limit)
// equals the same kernel unsplit, bit for bit on lavapipe (splitting moves elements between
// bindings, never changes an order of sums), and the reference executor within the family's
// tolerance. Shapes are drawn so split points fall at odd places: pieces are multiples of 64 f32
// (128 f16/bf16) elements, rows are 63, 65, 127 ... long, so a piece ends inside a row.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lowerStep } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { LomocError } from '../../compiler/diagnostics.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import type { Op, OpAttrs } from '../../compiler/ir/ops.ts';
import { byteSize, numel } from '../../compiler/ir/shape.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { createExecutor } from '../../runtime/webgpu/executor.ts';
import { opGraph } from '../reference/helpers.ts';
import { lowerInference, planInference } from '../../compiler/inference/compile-inference.ts';
import { createGpuDecoder } from '../../runtime/webgpu/generator.ts';
import { gpt as loadGpt, llama as loadLlama, setup, stepLogits } from '../generate/support.ts';
import { gpu, scratchFor } from './harness.ts';
import { expectWithin, random, runs, seed, type Tolerance } from './kernel-check.ts';

type Half = 'f32' | 'f16' | 'bf16';
const packed: KernelTarget = { ...kernelTargets.cpu, half: 'packed' };

/** Runs `g` once with storage bindings of at most `maxBindingBytes`: the outputs and how many dispatches bound a split tensor. */
async function runWith(g: Graph, feeds: Feeds, read: readonly ValueId[], maxBindingBytes?: number) {
  const { device } = await gpu();
  const fusion = noFusion(g.nodes.length);
  const plan = planMemory(g, { fusion, scratch: scratchFor(g, fusion, packed), keep: read, ...(maxBindingBytes ? { maxBindingBytes } : {}) });
  const program = lowerStep(g, plan, fusion, packed);
  const ex = await createExecutor(device, program);
  try {
    const toDevice = (t: HostTensor) => (t.data instanceof Int32Array ? t.data : Float32Array.from(t.data));
    for (const s of program.inputs) ex.write(s, toDevice(feeds.inputs[s.name]));
    ex.step();
    const outs = await ex.readMany(read.map((v) => {
      const b = plan.buffers[plan.bufferOf[v]];
      const value = g.values[v];
      const bytes = byteSize(value.shape, value.dtype);
      const pieces = b.pieces.map((p, j) => ({ ...p, bytes: Math.min(p.bytes, Math.ceil((bytes - j * b.pieces[0].bytes) / 4) * 4) }));
      return { ...pieces[0], bytes, shape: value.shape, dtype: value.dtype, ...(pieces.length > 1 ? { pieces } : {}) };
    }));
    return { outs, split: program.dispatches.filter((d) => d.shader.includes('|split:')).length };
  } finally {
    ex.destroy();
  }
}

/**
 * One `op` over `ins` (floats stored as `dtype`): split at a binding limit of about a third (else a
 * half) of its largest tensor, compared with the unsplit run bit for bit and with the reference.
 */
async function checkSplit<O extends Op>(op: O, ins: readonly HostTensor[], attrs: OpAttrs[O], dtype: Half, tol: Tolerance): Promise<void> {
  const { g, outs } = opGraph(op, ins, attrs, dtype);
  const feeds: Feeds = { inputs: Object.fromEntries(ins.map((t, i) => [`x${i}`, t])), params: {} };
  const what = `${op} (${dtype}) ${ins.map((t) => `[${t.shape.join(',')}]`).join(' ')}`;
  const largest = Math.max(...g.values.map((v) => byteSize(v.shape, v.dtype)));
  const whole = await runWith(g, feeds, outs);
  // A third of the largest tensor; where that takes more than 8 bindings, the size the error names (which must then work).
  let split: Awaited<ReturnType<typeof runWith>>;
  try {
    split = await runWith(g, feeds, outs, Math.max(256, Math.ceil(largest / 3 / 256) * 256));
  } catch (e) {
    const named = e instanceof LomocError ? /the smallest --max-binding it works with is (\d+) /.exec(e.message) : null;
    if (!named) throw e;
    split = await runWith(g, feeds, outs, Number(named[1]));
  }
  expect(split.split, `${what}: dispatches that bind a split tensor`).toBeGreaterThan(0);
  const ref = execute(g, feeds, 'f32');
  outs.forEach((v, k) => {
    expect(Array.from(split.outs[k]), `${what} output ${k}: split equals unsplit`).toEqual(Array.from(whole.outs[k]));
    expectWithin(split.outs[k], ref.values[v]!.data, tol, `${what} output ${k} against the reference`);
  });
}

/** Row lengths that no piece size divides; every tensor drawn is above 256 bytes even in bf16, so some piece boundary cuts it. */
const rowLen = fc.constantFrom(63, 65, 127, 129, 300);
const rowCount = fc.constantFrom(3, 5, 7, 9);
const dtypes = fc.constantFrom<Half>('f32', 'f16', 'bf16');
/** f16 and bf16 outputs round once: a relative half-unit of bf16 (2^-8) bounds them. */
const tolOf = (d: Half, t: Tolerance): Tolerance => (d === 'f32' ? t : { abs: Math.max(t.abs, 1e-2), rel: 1e-2 });

describe('split tensors: every kernel family equals the unsplit kernel', () => {
  it('elementwise (broadcast add, exp) and layout (transpose, slice, concat, pad)', async () => {
    await fc.assert(fc.asyncProperty(rowCount, rowLen, dtypes, seed, async (r, c, d, s) => {
      const x = random([r, c], s);
      await checkSplit('add', [x, random([c], s + 1)], {}, d, tolOf(d, { abs: 0, rel: 0 }));
      await checkSplit('exp', [x], {}, d, tolOf(d, { abs: 1e-6, rel: 1e-6 }));
      await checkSplit('transpose', [x], { perm: [1, 0] }, d, tolOf(d, { abs: 0, rel: 0 }));
      await checkSplit('slice', [x], { starts: [1, 2], ends: [r, c] }, d, tolOf(d, { abs: 0, rel: 0 }));
      await checkSplit('concat', [x, random([r, c], s + 2)], { axis: 1 }, d, tolOf(d, { abs: 0, rel: 0 }));
      await checkSplit('pad', [x], { before: [1, 0], after: [0, 3] }, d, tolOf(d, { abs: 0, rel: 0 }));
    }), runs(3));
  }, 600_000);

  it('matmul: the LM head and its two gradients (transA, transB)', async () => {
    await fc.assert(fc.asyncProperty(rowCount, fc.constantFrom(8, 13, 16), rowLen, dtypes, seed, async (m, k, n, d, s) => {
      const tol = tolOf(d, { abs: 1e-5, rel: 1e-5 });
      await checkSplit('matmul', [random([m, k], s), random([k, n], s + 1)], { transA: false, transB: false }, d, tol);
      await checkSplit('matmul', [random([m, n], s), random([k, n], s + 1)], { transA: false, transB: true }, d, tol);
      await checkSplit('matmul', [random([m, k], s), random([m, n], s + 1)], { transA: true, transB: false }, d, tol);
    }), runs(3));
  }, 600_000);

  it('embedding and its scatter-add gradient, cross-entropy and its gradient', async () => {
    await fc.assert(fc.asyncProperty(rowLen, fc.constantFrom(5, 13, 16), rowCount, dtypes, seed, async (vocab, width, tokens, d, s) => {
      const ids = randomTokens([tokens], vocab, s);
      await checkSplit('embedding', [random([vocab, width], s), ids], {}, d, tolOf(d, { abs: 0, rel: 0 }));
      await checkSplit('embeddingGrad', [ids, random([tokens, width], s + 1)], { vocab }, d, tolOf(d, { abs: 1e-5, rel: 1e-5 }));
      const targets = randomTokens([tokens], vocab, s + 2);
      const logits = random([tokens, vocab], s + 3, undefined, 3);
      await checkSplit('crossEntropy', [logits, targets], {}, d, tolOf(d, { abs: 1e-5, rel: 1e-5 }));
      await checkSplit('crossEntropyGrad', [logits, targets, random([tokens], s + 4)], {}, d, tolOf(d, { abs: 1e-5, rel: 1e-4 }));
    }), runs(3));
  }, 600_000);

  it('reductions, rows (softmax) and norms', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(9, 17, 33), rowLen, dtypes, seed, async (r, c, d, s) => {
      const x = random([r, c], s);
      const tol = tolOf(d, { abs: 1e-4, rel: 1e-4 });
      await checkSplit('sum', [x], { axes: [0], keepDims: false }, d, tol);
      await checkSplit('sum', [x], { axes: [1], keepDims: true }, d, tol);
      await checkSplit('sumSquares', [x], {}, d, tol);
      await checkSplit('softmax', [x], {}, d, tol);
      await checkSplit('layerNorm', [x, random([c], s + 1), random([c], s + 2)], { eps: 1e-5 }, d, tol);
      await checkSplit('rmsNorm', [x, random([c], s + 1)], { eps: 1e-5 }, d, tol);
    }), runs(3));
  }, 600_000);

  // The gradients of norms and attention bind 8 tensors of one size already (attention's dkv: q, k, v, dy, stats, dq, dk, dv),
  // and attention itself 5 since it writes its f32 lse: splitting their [T, Dh] tensors passes 8
  // bindings, and codegen says so, naming the smallest binding size that works (split-storage.test.ts checks that message too).
  it('attention: split [T, Dh] operands are refused, naming the binding size that works, which equals the unsplit run', async () => {
    const [q, k, v] = [0, 1, 2].map((j) => random([2, 33, 8], j));
    const { g, outs } = opGraph('attention', [q, k, v], { scale: 0.3, causal: true }, 'f32');
    const feeds: Feeds = { inputs: { x0: q, x1: k, x2: v }, params: {} };
    await expect(runWith(g, feeds, outs, 768)).rejects.toThrow(new LomocError(
      "attention: with storage bindings of at most 768 B (--max-binding) this kernel's split tensors take 13 bindings, more than 8; the smallest --max-binding it works with is 2304 (2.25 KiB)",
      g.nodes[0].loc,
    ));
    const [whole, named] = [await runWith(g, feeds, outs), await runWith(g, feeds, outs, 2304)];
    expect(named.split).toBe(0);
    outs.forEach((_, k) => expect(Array.from(named.outs[k])).toEqual(Array.from(whole.outs[k])));
  });

  for (const [name, load] of [['gpt', loadGpt], ['llama', loadLlama]] as const)
    it(`inference kernels (prefill, decode, key/value cache): ${name} tiny with an odd vocabulary, a logits row across two pieces, a split embedding, equals unsplit bit for bit`, async () => {
      const { device } = await gpu();
      const s = setup(await load(), { sets: ['vocab=67'], chunk: 8 }, 4, 'f32');
      const params = Object.fromEntries(Object.entries(s.params).map(([k, t]) => [k, Float32Array.from(t.data)]));
      const tokens = [3, 17, 1, 30, 8, 8, 21, 2];
      const logitsAt = async (maxBindingBytes?: number) => {
        const program = lowerInference(planInference(s.c, maxBindingBytes ? { plan: { maxBindingBytes } } : {}));
        const dec = await createGpuDecoder(device, program, params);
        try {
          return { logits: await stepLogits(dec, tokens, 6), split: program.dispatches.filter((d) => d.shader.includes('|split:')).length, outs: program.outputs! };
        } finally {
          dec.destroy();
        }
      };
      const whole = await logitsAt();
      const split = await logitsAt(1536);
      expect(split.split).toBeGreaterThan(3);
      // Prefill's [8, 67] f32 logits (2144 bytes) are split at byte 1536: the 6th row (bytes 1340..1608), read back, straddles both pieces.
      expect(split.outs.find((o) => o.name === 'prefill.logits')?.pieces?.length).toBe(2);
      expect([...split.logits.keys()]).toEqual([...whole.logits.keys()]);
      for (const [p, row] of whole.logits) expect(Array.from(split.logits.get(p)!), `position ${p}`).toEqual(Array.from(row));
    }, 600_000);
});
