// Fused kernels compute what their nodes compute one by one: each group runs fused and unfused
// on the GPU and both are compared with the reference executor. The LOMO kernel (weight-gradient
// matmul + SGD update, the gradient never stored) equals matmul-then-update.
import { builtinOptimizers } from '../../compiler/optimizers/table.ts';
import { updateAttrs, updateInputs } from '../../compiler/optimizers/update-layout.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Fusion, GroupKind } from '../../compiler/ir/fusion.ts';
import { numel } from '../../compiler/ir/shape.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { fuse } from '../../compiler/passes/fuse.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { runOnGpu } from './harness.ts';
import { expectWithin, random, runs, seed, type Tolerance } from './kernel-check.ts';

const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });
const zero = (g: TestGraph) => g.one('fill', [], { value: 0, shape: [], dtype: 'f32' });

/**
 * Runs `g` fused (expecting a group of `kind`) and unfused; both must match the reference within
 * `tol`, and each other within `same` (the same f32 arithmetic, in registers instead of storage).
 */
async function fusedMatchesUnfused(g: Graph, feeds: Feeds, out: ValueId, kind: GroupKind, tol: Tolerance, same: Tolerance): Promise<Fusion> {
  const fusion = fuse(g, { matmulUpdate: true, elementwise: true, matmulEpilogue: true });
  expect(fusion.groups.map((grp) => grp.kind)).toContain(kind);
  const ref = execute(g, feeds, 'f32').values[out]!.data;
  const fused = (await runOnGpu(g, feeds, [out], fusion)).get(out)!;
  const plain = (await runOnGpu(g, feeds, [out])).get(out)!;
  expectWithin(fused, ref, tol, `fused ${kind}`);
  expectWithin(plain, ref, tol, 'unfused');
  expectWithin(fused, plain, same, `fused vs unfused ${kind}`);
  return fusion;
}

describe('the fused LOMO matmul-update kernel equals matmul-then-update', () => {
  /** dW = x^T dy, then w' = w - lr * (clamp(dW * scale) + wd * w): a weight gradient and its update. */
  function lomoGraph(m: number, k: number, n: number, clipValue: number | null, scaled: boolean): Graph {
    const t = new TestGraph('lomo');
    const x = t.input('x', [m, k]);
    const dy = t.input('dy', [m, n]);
    const w = t.param('w', [k, n], { kind: 'zeros' });
    const [lr, wd, sc] = [t.input('lr', []), t.input('weightDecay', []), t.input('scale', [])];
    const [grad] = t.b.node('matmul', [x, dy], { transA: true, transB: false }, loc, 'backward', 'grad');
    const attrs = updateAttrs(builtinOptimizers.sgd.rule, { clipValue, scaled, master: false });
    const [next] = t.b.node('optimizerUpdate', updateInputs(attrs, { p: w, g: grad, lr, wd, ...(scaled ? { scale: sc } : {}) }), attrs, loc, 'update', ['update']);
    return { ...t.finish(zero(t)), grads: { w: grad }, updates: { w: next } };
  }
  const dim = fc.integer({ min: 1, max: 70 });
  const variants = [
    ['plain SGD with weight decay', null, false],
    ['clip-value and a clip-norm factor', 0.3, true],
  ] as const;
  for (const [what, clipValue, scaled] of variants)
    it(`${what}: sizes 1..70, the param updated in place`, async () => {
      await fc.assert(
        fc.asyncProperty(dim, dim, dim, seed, async (m, k, n, s) => {
          const g = lomoGraph(m, k, n, clipValue, scaled);
          const feeds: Feeds = {
            inputs: { x: random([m, k], s), dy: random([m, n], s + 1), lr: scalar(0.1), weightDecay: scalar(0.01), scale: scalar(0.7) },
            params: { w: random([k, n], s + 2) },
          };
          const next = g.updates!.w;
          const fusion = await fusedMatchesUnfused(g, feeds, next, 'matmulUpdate', { abs: 2e-5, rel: 1e-5 }, { abs: 1e-6, rel: 1e-6 });
          // The gradient is internal: it has no storage in the fused plan.
          expect(fusion.internal).toContain(g.grads!.w);
        }),
        runs(4),
      );
    });
});

type Step =
  | { readonly kind: 'unary'; readonly op: 'neg' | 'tanh' | 'gelu' | 'silu' | 'relu' | 'scale' | 'expTanh' | 'logSq' | 'sqrtSq' | 'rsqrtSq' }
  | { readonly kind: 'binary'; readonly op: 'add' | 'sub' | 'mul' | 'div' | 'geluGrad' | 'siluGrad' | 'reluGrad' | 'tanhGrad'; readonly operand: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('unary' as const), op: fc.constantFrom('neg', 'tanh', 'gelu', 'silu', 'relu', 'scale', 'expTanh', 'logSq', 'sqrtSq', 'rsqrtSq') }),
  fc.record({ kind: fc.constant('binary' as const), op: fc.constantFrom('add', 'sub', 'mul', 'div', 'geluGrad', 'siluGrad', 'reluGrad', 'tanhGrad'), operand: fc.nat(3) }),
) as fc.Arbitrary<Step>;

/** A shape of rank 1..3 (sizes around workgroup edges) and three operand shapes broadcasting to it. */
const shapesArb = fc
  .array(fc.constantFrom(1, 2, 3, 5, 17, 64, 65), { minLength: 1, maxLength: 3 })
  .filter((s) => numel(s) <= 5000)
  .chain((shape) => {
    const operand = fc.tuple(fc.nat(shape.length), fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }))
      .map(([drop, ones]) => shape.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d)));
    return fc.tuple(fc.constant(shape), fc.array(operand, { minLength: 3, maxLength: 3 }));
  });

describe('fused elementwise chains equal their nodes one by one', () => {
  it('random chains with broadcast operands (a scalar among them), every op', async () => {
    await fc.assert(
      fc.asyncProperty(shapesArb, fc.array(stepArb, { minLength: 2, maxLength: 7 }), seed, async ([shape, operands], steps, s) => {
        const t = new TestGraph('chain');
        const ins = [...operands, []].map((sh, i) => t.input(`y${i}`, sh));
        const one = ins[3]; // a scalar 1, broadcast everywhere
        let v = t.input('x', shape);
        const sq1 = (p: ValueId) => t.one('add', [t.one('mul', [p, p], {}), one], {});
        for (const st of steps) {
          if (st.kind === 'binary') {
            const q = ins[st.operand % 3];
            if (st.op === 'div') v = t.one('div', [v, sq1(q)], {});
            else if (st.op.endsWith('Grad')) v = t.one(st.op, [v, t.one('add', [q, t.one('scale', [v], { c: 0 })], {})], {}); // dy broadcast to v's shape
            else v = t.one(st.op, [v, q], {});
          } else if (st.op === 'scale') v = t.one('scale', [v], { c: 0.75 });
          else if (st.op === 'expTanh') v = t.one('exp', [t.one('tanh', [v], {})], {});
          else if (st.op === 'logSq') v = t.one('log', [sq1(v)], {});
          else if (st.op === 'sqrtSq') v = t.one('sqrt', [sq1(v)], {});
          else if (st.op === 'rsqrtSq') v = t.one('rsqrt', [sq1(v)], {});
          else v = t.one(st.op, [v], {});
        }
        const g = t.finish(zero(t));
        const inputs: Record<string, HostTensor> = { x: random(shape, s), y3: scalar(1) };
        operands.forEach((sh, i) => (inputs[`y${i}`] = random(sh, s + 1 + i)));
        await fusedMatchesUnfused(g, { inputs, params: {} }, v, 'elementwise', { abs: 1e-4, rel: 1e-4 }, { abs: 1e-5, rel: 1e-5 });
      }),
      runs(8),
    );
  });

  it('a gradient partial sum accumulated in place inside a chain (one read_write binding)', async () => {
    const t = new TestGraph('acc');
    const acc = t.b.value([7, 9], 'f32', 'grad', loc, 'acc');
    t.b.inputs.push({ name: 'acc', value: acc, loc });
    const [p, q] = [t.input('p', [7, 9]), t.input('q', [9])];
    const part = t.one('mul', [t.one('tanh', [p], {}), q], {});
    const [sum] = t.b.node('add', [acc, part], {}, loc, 'backward', 'grad');
    const g = t.finish(zero(t));
    const feeds: Feeds = { inputs: { acc: random([7, 9], 1), p: random([7, 9], 2), q: random([9], 3) }, params: {} };
    await fusedMatchesUnfused(g, feeds, sum, 'elementwise', { abs: 1e-5, rel: 1e-5 }, { abs: 1e-6, rel: 1e-6 });
  });
});

describe('matmul epilogues equal matmul, then their elementwise nodes', () => {
  const dim = fc.integer({ min: 1, max: 70 });
  it('x W + b, then GELU: the pre-activation never stored', async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, dim, seed, async (m, k, n, s) => {
        const t = new TestGraph('mlp');
        const [x, w, b] = [t.input('x', [m, k]), t.input('w', [k, n]), t.input('b', [n])];
        const h = t.one('matmul', [x, w], { transA: false, transB: false });
        const y = t.one('gelu', [t.one('add', [h, b], {})], {});
        const g = t.finish(zero(t));
        const feeds: Feeds = { inputs: { x: random([m, k], s), w: random([k, n], s + 1), b: random([n], s + 2) }, params: {} };
        const fusion = await fusedMatchesUnfused(g, feeds, y, 'matmulEpilogue', { abs: 2e-4, rel: 1e-4 }, { abs: 1e-5, rel: 1e-5 });
        expect(fusion.internal).toContain(h);
      }),
      runs(4),
    );
  });

  it('batched, transposed, with a residual: tanh(x W^T + r)', async () => {
    const t = new TestGraph('res');
    const [x, w, r] = [t.input('x', [3, 33, 20]), t.input('w', [70, 20]), t.input('r', [3, 33, 70])];
    const y = t.one('tanh', [t.one('add', [t.one('matmul', [x, w], { transA: false, transB: true }), r], {})], {});
    const g = t.finish(zero(t));
    const feeds: Feeds = { inputs: { x: random([3, 33, 20], 4), w: random([70, 20], 5), r: random([3, 33, 70], 6) }, params: {} };
    await fusedMatchesUnfused(g, feeds, y, 'matmulEpilogue', { abs: 2e-4, rel: 1e-4 }, { abs: 1e-5, rel: 1e-5 });
  });

  const heads = fc.record({ b: fc.integer({ min: 1, max: 3 }), t: fc.integer({ min: 1, max: 20 }), h: fc.integer({ min: 1, max: 4 }), dh: fc.integer({ min: 1, max: 9 }), k: fc.integer({ min: 1, max: 24 }) });
  it('x W + b split into heads ([B, T, H, Dh] -> [B, H, T, Dh]): stored transposed by the epilogue', async () => {
    await fc.assert(
      fc.asyncProperty(heads, fc.boolean(), seed, async ({ b, t: T, h, dh, k }, bias, s) => {
        const t = new TestGraph('heads');
        const d = h * dh;
        const [x, w, c] = [t.input('x', [b, T, k]), t.input('w', [k, d]), t.input('c', [d])];
        const mm = t.one('matmul', [x, w], { transA: false, transB: false });
        const pre = bias ? t.one('add', [mm, c], {}) : mm;
        const y = t.one('transpose', [t.one('reshape', [pre], { shape: [b, T, h, dh] })], { perm: [0, 2, 1, 3] });
        const g = t.finish(zero(t));
        const feeds: Feeds = { inputs: { x: random([b, T, k], s), w: random([k, d], s + 1), c: random([d], s + 2) }, params: {} };
        const fusion = await fusedMatchesUnfused(g, feeds, y, 'matmulEpilogue', { abs: 2e-4, rel: 1e-4 }, { abs: 0, rel: 0 });
        expect(fusion.groups.find((grp) => grp.kind === 'matmulEpilogue')!.nodes.length).toBe(bias ? 4 : 3);
      }),
      runs(4),
    );
  });

  it('x W + b, then GELU, the pre-activation read later (as backward does): stored by the epilogue too', async () => {
    const t = new TestGraph('pre');
    const [x, w, b] = [t.input('x', [5, 7]), t.input('w', [7, 66]), t.input('b', [66])];
    const pre = t.one('add', [t.one('matmul', [x, w], { transA: false, transB: false }), b], {});
    // A reduction ends the chain; then pre is read again: it must be stored, and right.
    const total = t.one('sum', [t.one('gelu', [pre], {})], { axes: [0, 1], keepDims: false });
    const z = t.one('mul', [pre, total], {});
    const g = t.finish(zero(t));
    const feeds: Feeds = { inputs: { x: random([5, 7], 7), w: random([7, 66], 8), b: random([66], 9) }, params: {} };
    const fusion = await fusedMatchesUnfused(g, feeds, z, 'matmulEpilogue', { abs: 2e-3, rel: 1e-4 }, { abs: 1e-5, rel: 1e-5 });
    expect(fusion.groups.find((grp) => grp.kind === 'matmulEpilogue')!.nodes.length).toBe(3);
    expect(fusion.internal).not.toContain(pre);
  });
});
