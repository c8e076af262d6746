// The op table is the one home of an op's traits: every op has them, the fuse pass's fusible set
// is exactly the table's elementwise ops, every elementwise entry carries a reference and a WGSL
// formula (with the helpers it calls, callees first), and each elementwise op, taken from the
// table rather than from a list in this file, differentiates (finite differences, f64) and fuses
// into a chain. A new elementwise op is covered here without editing this file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { vjpRules } from '../../compiler/autodiff/vjp-rules.ts';
import { emit } from '../../compiler/dsl/trace.ts';
import * as L from '../../compiler/dsl/index.ts';
import type { Tensor } from '../../compiler/dsl/tensor.ts';
import { elementwiseDef, elementwiseOpNames, wgslHelpers, type ElementwiseOp, type WgslHelper } from '../../compiler/ir/elementwise-ops.ts';
import { fusibleOps, opTraits } from '../../compiler/ir/op-traits.ts';
import { opNames, type OpAttrs } from '../../compiler/ir/ops.ts';
import { shapeRules } from '../../compiler/ir/shape-rules.ts';
import { elementwiseOps, fuse } from '../../compiler/passes/fuse.ts';
import { kernels } from '../../compiler/reference/kernels.ts';
import { helperCode } from '../../compiler/codegen/wgsl/wgsl-math.ts';
import { emitters } from '../../compiler/codegen/wgsl/emitters.ts';
import { checkGradients } from '../support/gradcheck.ts';
import { randomFeeds, traceFn, type FeedRanges } from '../support/trace.ts';
import { TestGraph } from '../reference/graphs.ts';

const sorted = (xs: Iterable<string>) => [...xs].sort();

/** Attrs for an elementwise op: each const a number (scale's c). */
const attrsOf = (op: ElementwiseOp, k = 0.75): OpAttrs[ElementwiseOp] =>
  Object.fromEntries((elementwiseDef(op).consts ?? []).map((c) => [c, k])) as OpAttrs[ElementwiseOp];

/** The op over param a and, when it takes two operands, param b (traced through the DSL's emit, as its DSL function would). */
const apply = (op: ElementwiseOp, s: readonly number[], k?: number): Tensor =>
  emit(op, elementwiseDef(op).operands === 'unary' ? [L.param('a', s)] : [L.param('a', s), L.param('b', s)], attrsOf(op, k))[0];

describe('op traits', () => {
  it('every op has traits, a shape rule, a VJP entry, a reference kernel and a WGSL emitter', () => {
    for (const table of [opTraits, shapeRules, vjpRules, kernels, emitters]) expect(sorted(Object.keys(table))).toEqual(sorted(opNames));
  });

  it("an elementwise op's attrs are its consts, one number each", () => {
    const scale: OpAttrs['scale'] = { c: 2 };
    // @ts-expect-error scale's attrs need its const c
    const noC: OpAttrs['scale'] = {};
    expect([scale, noC].length).toBe(2);
    expect(elementwiseDef('scale').consts).toEqual(['c']);
  });

  it("the fuse pass's fusible set is exactly the table's elementwise ops", () => {
    const fromTable = opNames.filter((op) => opTraits[op].kind === 'elementwise');
    expect(sorted(elementwiseOps)).toEqual(sorted(fromTable));
    expect(sorted(fusibleOps)).toEqual(sorted(elementwiseOpNames));
    // Ops that are per element but not formulas stay out of chains.
    for (const op of ['fill', 'maxGrad', 'matmul', 'sum', 'softmax', 'sgdUpdate'] as const) expect(elementwiseOps.has(op), op).toBe(false);
  });

  it('every elementwise op carries a reference formula and a WGSL formula over its operands', () => {
    for (const op of elementwiseOpNames) {
      const def = elementwiseDef(op);
      const traits = opTraits[op];
      expect(traits.kind === 'elementwise' && traits.def, op).toBe(def);
      const k = Object.fromEntries((def.consts ?? []).map((c) => [c, `u.${c}`]));
      const wgsl = def.wgsl('A_', 'B_', k);
      expect(wgsl, op).toContain('A_');
      if (def.operands !== 'unary') expect(wgsl, op).toContain('B_');
      for (const c of def.consts ?? []) expect(wgsl, `${op} reads its const ${c}`).toContain(`u.${c}`);
      // The reference formula is a real number on its domain.
      const x = def.domain === 'positive' ? 0.7 : -0.3;
      expect(Number.isFinite(def.js(x, 0.4, Object.fromEntries((def.consts ?? []).map((c) => [c, 2])))), op).toBe(true);
    }
  });

  it("an op's WGSL helpers come with every helper they call, callees first", () => {
    const names = Object.keys(wgslHelpers) as WgslHelper[];
    for (const op of elementwiseOpNames) {
      const def = elementwiseDef(op);
      const needs = def.needs ?? [];
      const code = [def.wgsl('a', 'b', {}), ...needs.map((h) => wgslHelpers[h])];
      // Every helper called anywhere in the op's code is in `needs`...
      for (const h of names) if (code.some((c) => c.includes(`${h}(`) && !c.startsWith(`fn ${h}(`))) expect(needs, `${op} calls ${h}`).toContain(h);
      // ...after the helpers it calls.
      needs.forEach((h, i) => {
        for (const callee of names) if (callee !== h && wgslHelpers[h].includes(`${callee}(`)) expect(needs.indexOf(callee), `${op}: ${callee} before ${h}`).toBeLessThan(i);
      });
      expect(helperCode([op]), op).toBe(needs.length ? needs.map((h) => wgslHelpers[h]).join('\n') : undefined);
    }
  });

  describe('each elementwise op from the table', () => {
    const differentiable = elementwiseOpNames.filter((op) => vjpRules[op] !== null);
    it('has a VJP unless it is a gradient op', () => {
      for (const op of elementwiseOpNames) expect(vjpRules[op] === null, op).toBe(elementwiseDef(op).operands === 'gradient');
    });

    const dim = fc.integer({ min: 1, max: 4 });
    const shape = fc.array(dim, { minLength: 1, maxLength: 3 });
    for (const op of differentiable)
      it(`${op}: its VJP matches finite differences (f64)`, () =>
        fc.assert(
          fc.property(shape, fc.integer(), fc.double({ min: -3, max: 3, noNaN: true }), (s, seed, k) => {
            const g = traceFn(() => {
              const y = apply(op, s, k);
              return L.sum(L.mul(y, L.input('cotangent', y.shape)));
            });
            // b stays away from 0 (div); a within the op's domain.
            const range: FeedRanges = { range: { a: elementwiseDef(op).domain === 'positive' ? [0.5, 2] : [-1, 1], b: [0.5, 2] } };
            const res = checkGradients(g, randomFeeds(g, seed, range), { seed });
            expect(res.worst.err, `${res.worst.what}: fd ${res.worst.fd} vs autodiff ${res.worst.ad}`).toBeLessThanOrEqual(0);
          }),
          { numRuns: 10 },
        ));

    it('joins an elementwise chain and a matmul epilogue', () => {
      for (const op of elementwiseOpNames) {
        const t = new TestGraph(op);
        const [x, w, b] = [t.input('x', [3, 4]), t.input('w', [4, 4]), t.input('b', [3, 4])];
        // exp(x) -> op -> neg: three elementwise nodes, one kernel.
        const chain = t.one('neg', [t.one(op, elementwiseDef(op).operands === 'unary' ? [t.one('exp', [x], {})] : [t.one('exp', [x], {}), b], attrsOf(op))], {});
        const mm = t.one('matmul', [chain, w], { transA: false, transB: false });
        const epi = t.one(op, elementwiseDef(op).operands === 'unary' ? [mm] : [mm, b], attrsOf(op));
        const g = t.finish(t.one('sum', [epi], { axes: [0, 1], keepDims: false }));
        const groups = fuse(g, { matmulUpdate: false, elementwise: true, matmulEpilogue: true }).groups;
        const kinds = groups.map((grp) => `${grp.kind}:${grp.nodes.map((i) => g.nodes[i].op).join(',')}`);
        expect(kinds, op).toContain(`elementwise:exp,${op},neg`);
        expect(kinds, op).toContain(`matmulEpilogue:matmul,${op}`);
      }
    });
  });
});
