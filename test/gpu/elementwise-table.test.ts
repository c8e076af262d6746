// Every op of the elementwise table (compiler/ir/elementwise-ops.ts), taken from the table rather
// than from a list here: its single-op kernel, a fused chain through it and a matmul epilogue
// through it match the reference executor (invariant 7), and fused equals unfused. A new
// elementwise op is checked on WGSL here without editing this file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { elementwiseDef, elementwiseOpNames, type ElementwiseOp } from '../../compiler/ir/elementwise-ops.ts';
import type { GroupKind } from '../../compiler/ir/fusion.ts';
import type { OpAttrs } from '../../compiler/ir/ops.ts';
import type { Graph, ValueId } from '../../compiler/ir/types.ts';
import { fuse } from '../../compiler/passes/fuse.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { TestGraph } from '../reference/graphs.ts';
import { runOnGpu } from './harness.ts';
import { anyTarget, compareOp, expectWithin, random, runs, seed, shapes, type Tolerance } from './kernel-check.ts';

/** WGSL's exp, log, tanh, sqrt are a few ULP; the reference rounds a double result once (as kernels-elementwise.test.ts). */
const transcendental: Tolerance = { abs: 1e-5, rel: 2e-5 };
const positive = (x: number) => Math.abs(x) + 0.1;
/** Away from 0, so a division stays well conditioned. */
const awayFromZero = (x: number) => Math.sign(x || 1) * positive(x);

const zero = (t: TestGraph) => t.one('fill', [], { value: 0, shape: [], dtype: 'f32' });

const attrsOf = (op: ElementwiseOp): OpAttrs[ElementwiseOp] =>
  Object.fromEntries((elementwiseDef(op).consts ?? []).map((c) => [c, -0.625])) as OpAttrs[ElementwiseOp];

/** The first operand in the op's domain, the second (if any) away from 0. */
function operands(op: ElementwiseOp, a: readonly number[], b: readonly number[], s: number): HostTensor[] {
  const def = elementwiseDef(op);
  const first = random(a, s, def.domain === 'positive' ? positive : undefined, 2);
  return def.operands === 'unary' ? [first] : [first, random(b, s + 1, awayFromZero)];
}

/** Shapes for the op: binary ones broadcast (either side smaller), the others take one shape. */
const shapePair = (op: ElementwiseOp) =>
  shapes(1, 3, 1 << 12).chain((a) =>
    elementwiseDef(op).operands !== 'binary'
      ? fc.constant([a, a] as const)
      : fc.tuple(fc.integer({ min: 0, max: a.length - 1 }), fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length }), fc.boolean())
          .map(([drop, ones, swap]) => {
            const b = a.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d));
            return swap ? ([b, a] as const) : ([a, b] as const);
          }),
  );

async function fusedMatchesUnfused(g: Graph, feeds: Feeds, out: ValueId, kind: GroupKind, what: string): Promise<void> {
  const fusion = fuse(g, { matmulUpdate: false, elementwise: true, matmulEpilogue: true });
  expect(fusion.groups.map((grp) => grp.kind), what).toContain(kind);
  const ref = execute(g, feeds, 'f32').values[out]!.data;
  const fused = (await runOnGpu(g, feeds, [out], fusion)).get(out)!;
  const plain = (await runOnGpu(g, feeds, [out])).get(out)!;
  expectWithin(fused, ref, { abs: 2e-4, rel: 1e-4 }, `${what}: fused ${kind}`);
  expectWithin(fused, plain, { abs: 1e-5, rel: 1e-5 }, `${what}: fused vs unfused`);
}

describe('every op of the elementwise table on WGSL', () => {
  for (const op of elementwiseOpNames) {
    const def = elementwiseDef(op);
    it(`${op}: its kernel, a chain through it and a matmul epilogue through it match the reference`, async () => {
      await fc.assert(fc.asyncProperty(shapePair(op), seed, anyTarget, async ([a, b], s, target) => {
        await compareOp(op, operands(op, a, b, s), attrsOf(op), transcendental, target);
      }), runs(3));

      await fc.assert(fc.asyncProperty(shapePair(op), seed, async ([a, b], s) => {
        // op(x, y) * z: the op's result never stored.
        const t = new TestGraph(op);
        const [x, y, z] = [t.input('x', a), t.input('y', b), t.input('z', [a[a.length - 1]])];
        const v = t.one(op, def.operands === 'unary' ? [x] : [x, y], attrsOf(op));
        const out = t.one('mul', [v, z], {});
        const [fx, fy] = operands(op, a, b, s);
        const feeds: Feeds = { inputs: { x: fx, y: fy ?? random(b, s + 1), z: random([a[a.length - 1]], s + 2) }, params: {} };
        await fusedMatchesUnfused(t.finish(zero(t)), feeds, out, 'elementwise', `${op} chain ${JSON.stringify([a, b])}`);
      }), runs(2));

      const dim = fc.integer({ min: 1, max: 40 });
      await fc.assert(fc.asyncProperty(dim, dim, dim, seed, async (m, k, n, s) => {
        // op(x W [exp'd into the op's domain], d): the matmul's output goes through the op before it is stored.
        const t = new TestGraph(op);
        const [x, w, d] = [t.input('x', [m, k]), t.input('w', [k, n]), t.input('d', [m, n])];
        let h = t.one('matmul', [x, w], { transA: false, transB: false });
        if (def.domain === 'positive') h = t.one('exp', [h], {});
        const out = t.one(op, def.operands === 'unary' ? [h] : [h, d], attrsOf(op));
        const feeds: Feeds = { inputs: { x: random([m, k], s, undefined, 0.5), w: random([k, n], s + 1, undefined, 0.5), d: random([m, n], s + 2, awayFromZero) }, params: {} };
        await fusedMatchesUnfused(t.finish(zero(t)), feeds, out, 'matmulEpilogue', `${op} epilogue ${m}x${k}x${n}`);
      }), runs(2));
    });
  }
});
