// Every op's VJP matches central finite differences in f64, on random shapes, broadcasting included.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as L from '../../compiler/dsl/index.ts';
import type { Tensor } from '../../compiler/dsl/tensor.ts';
import { vjpRules } from '../../compiler/autodiff/vjp-rules.ts';
import { opNames } from '../../compiler/ir/ops.ts';
import { checkGradients } from '../support/gradcheck.ts';
import { randomFeeds, traceFn, type FeedRanges } from '../support/trace.ts';

const dim = fc.integer({ min: 1, max: 4 });
const shape = (min = 1, max = 3) => fc.array(dim, { minLength: min, maxLength: max });

/** A full shape and a shape that broadcasts against it (leading axes dropped, some set to 1). */
const broadcastPair = shape(1, 3).chain((full) =>
  fc
    .tuple(fc.integer({ min: 0, max: full.length - 1 }), fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }), fc.boolean())
    .map(([drop, ones, swap]) => {
      const small = full.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d));
      return swap ? ([small, full] as const) : ([full, small] as const);
    }),
);

/** loss = sum(y * w) for a random input w: every output element gets its own cotangent. */
function weighted(y: Tensor): Tensor {
  return L.sum(L.mul(y, L.input('cotangent', y.shape)));
}

function check(build: () => Tensor, seed: number, ranges: FeedRanges = {}): void {
  const g = traceFn(build);
  const res = checkGradients(g, randomFeeds(g, seed, ranges), { seed });
  expect(res.worst.err, `${res.worst.what}: fd ${res.worst.fd} vs autodiff ${res.worst.ad}`).toBeLessThanOrEqual(0);
}

const runs = { numRuns: 25 };
const positive: FeedRanges = { range: { x: [0.5, 2], b: [0.5, 2] } };

describe('VJP rules match finite differences (f64)', () => {
  it('the VJP table covers every op (null only for backward-only ops)', () => {
    const differentiable = opNames.filter((o) => vjpRules[o] !== null);
    expect(differentiable).toContain('attention');
    expect(Object.keys(vjpRules).sort()).toEqual([...opNames].sort());
  });

  const unary: [string, (x: Tensor) => Tensor, FeedRanges?][] = [
    ['neg', L.neg],
    ['scale', (x) => L.mul(x, -2.5)],
    ['exp', L.exp],
    ['log', L.log, positive],
    ['sqrt', L.sqrt, positive],
    ['rsqrt', L.rsqrt, positive],
    ['tanh', L.tanh],
    ['gelu', L.gelu],
    ['silu', L.silu],
    ['relu', L.relu],
    ['softmax', L.softmax],
    ['logSoftmax', L.logSoftmax],
    ['rope', (x) => L.rope(x, 100)],
  ];
  for (const [name, f, ranges] of unary) {
    it(`${name}`, () =>
      fc.assert(
        fc.property(shape(2, 3), fc.integer(), (s, seed) => {
          const even = [...s.slice(0, -1), 2 * s[s.length - 1]];
          check(() => weighted(f(L.param('x', name === 'rope' ? even : s))), seed, ranges);
        }),
        runs,
      ));
  }

  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    it(`${op} with broadcasting`, () =>
      fc.assert(
        fc.property(broadcastPair, fc.integer(), ([sa, sb], seed) =>
          check(() => weighted(L[op](L.param('a', sa), L.param('b', sb))), seed, op === 'div' ? positive : {}),
        ),
        runs,
      ));
  }

  it('matmul with transposes and broadcast batch axes', () =>
    fc.assert(
      fc.property(dim, dim, dim, shape(0, 2), fc.boolean(), fc.boolean(), fc.boolean(), fc.integer(), (m, k, n, batch, ta, tb, rank2b, seed) => {
        const a = [...batch, ...(ta ? [k, m] : [m, k])];
        const b = [...(rank2b ? [] : batch), ...(tb ? [n, k] : [k, n])];
        check(() => weighted(L.matmul(L.param('a', a), L.param('b', b), { transA: ta, transB: tb })), seed);
      }),
      runs,
    ));

  for (const op of ['sum', 'mean', 'max'] as const) {
    it(`${op} over random axes`, () =>
      fc.assert(
        fc.property(shape(1, 3), fc.array(fc.nat(), { maxLength: 3 }), fc.boolean(), fc.integer(), (s, ax, keep, seed) => {
          const axes = [...new Set(ax.map((a) => a % s.length))];
          check(() => weighted(L[op](L.param('x', s), axes.length ? axes : undefined, keep)), seed);
        }),
        runs,
      ));
  }

  it('reshape, transpose, broadcastTo', () =>
    fc.assert(
      fc.property(shape(1, 3), fc.integer(), (s, seed) => {
        const perm = s.map((_, i) => i).reverse();
        check(() => {
          const x = L.param('x', s);
          const r = L.reshape(L.transpose(x, perm), [-1]);
          return weighted(L.broadcastTo(L.reshape(r, [1, r.shape[0]]), [2, r.shape[0]]));
        }, seed);
      }),
      runs,
    ));

  it('slice, concat and pad (as slice\'s VJP and its own)', () =>
    fc.assert(
      fc.property(shape(1, 3), fc.nat(), fc.nat(), fc.integer(), (s, p, q, seed) => {
        const axis = p % s.length;
        const start = q % s[axis];
        check(() => {
          const x = L.param('x', s);
          const part = L.slice(x, axis, start, s[axis]);
          return weighted(L.concat([part, x, L.mul(part, 2)], axis));
        }, seed);
      }),
      runs,
    ));

  it('layerNorm and rmsNorm (input, gamma, beta)', () =>
    fc.assert(
      fc.property(shape(1, 3), fc.integer(), (s, seed) => {
        const d = s[s.length - 1] + 1;
        const x = [...s.slice(0, -1), d];
        check(() => weighted(L.layerNorm(L.param('x', x), L.param('g', [d]), L.param('b', [d]))), seed);
        check(() => weighted(L.rmsNorm(L.param('x', x), L.param('g', [d]))), seed);
      }),
      runs,
    ));

  it('embedding (scatter-add into the table, repeated ids included)', () =>
    fc.assert(
      fc.property(dim, dim, shape(1, 2), fc.integer(), (v, d, s, seed) =>
        check(() => weighted(L.embedding(L.param('table', [v, d]), L.input('ids', s, 'i32'))), seed, { vocab: { ids: v } }),
      ),
      runs,
    ));

  it('attention, causal and not', () =>
    fc.assert(
      fc.property(shape(0, 2), dim, dim, fc.boolean(), fc.integer(), (batch, t, dh, causal, seed) => {
        const s = [...batch, t, dh];
        check(() => weighted(L.attention(L.param('q', s), L.param('k', s), L.param('v', s), { causal })), seed);
      }),
      runs,
    ));

  it('crossEntropy against integer targets', () =>
    fc.assert(
      fc.property(shape(1, 2), dim, fc.integer(), (s, v, seed) =>
        check(() => weighted(L.crossEntropy(L.param('logits', [...s, v]), L.input('targets', s, 'i32'))), seed, {
          vocab: { targets: v },
        }),
      ),
      runs,
    ));

  it('a param used twice gets the sum of both contributions', () =>
    check(() => {
      const w = L.param('w', [3, 3]);
      const x = L.param('x', [2, 3]);
      return weighted(L.matmul(L.tanh(L.matmul(x, w)), w, { transB: true }));
    }, 7));
});
