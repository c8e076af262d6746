// Sizes beyond what a number holds are user errors at the model's line (dims, element counts,
// bytes, and the plan's bindings and total); the planner's fast index gives exactly the plan a
// scan over every placed piece gives; and a 21k-node step compiles (a smoke check of the
// near-linear passes: bench/scaling.ts measures them).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chainModel } from '../../bench/scaling.ts';
import { LomocError } from '../../compiler/diagnostics.ts';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import { sizeProblem } from '../../compiler/ir/shape.ts';
import { lifetimes } from '../../compiler/passes/lifetimes.ts';
import { planMemory, type PlanOptions } from '../../compiler/passes/plan-memory.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import gpt from '../../models/gpt.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { buildStep } from '../support/step.ts';
import * as bad from './fixtures/bad-models.ts';

const fx = 'test/hardening/fixtures/bad-models.ts';

function errorOf(def: ModelDef): string {
  let err: unknown;
  try {
    compileStep(def, { optimizer: 'lomo' });
  } catch (e) {
    err = e;
  }
  expect(err, `${def.name} should fail to compile`).toBeInstanceOf(LomocError);
  return (err as LomocError).message;
}

describe('sizes past 2^53 - 1 are errors at the line that made them', () => {
  const cases: [string, ModelDef, string][] = [
    ['a param of 2^90 elements', bad.hugeParam,
      `${fx}:21:57: error: param 'w': shape [35184372088832, 35184372088832] holds 1237940039285380274899124224 elements, more than lomoc counts exactly (2^53 - 1)`],
    ['an input of 2^52 elements, 2^54 bytes', bad.hugeInputBytes,
      `${fx}:22:68: error: input 'x': shape [67108864, 67108864] of f32 takes 18014398509481984 bytes, more than lomoc counts exactly (2^53 - 1)`],
    ['a dimension that is not a safe integer', bad.unsafeDim,
      `${fx}:23:57: error: input 'x': shape [18014398509481984]: dimension 0 must be a positive integer at most 2^53 - 1, got 18014398509481984`],
    ["an op's result (an outer product) past the limit", bad.hugeMatmul,
      `${fx}:24:59: error: matmul: the result shape [134217728, 134217728] holds 18014398509481984 elements, more than lomoc counts exactly (2^53 - 1)`],
    ['broadcastTo a shape past the limit', bad.hugeBroadcast,
      `${fx}:25:65: error: broadcastTo: shape [1073741824, 1073741824] holds 1152921504606846976 elements, more than lomoc counts exactly (2^53 - 1)`],
    ['a countable tensor that would need 131072 bindings: the planner refuses at its line, at once', bad.manyBindings,
      `${fx}:26:63: error: plan: a f32[2097152, 2097152] tensor takes 17592186044416 bytes, 131072 storage bindings of at most 134217728 bytes; lomoc plans at most 65536 per tensor`],
  ];
  for (const [name, def, message] of cases) it(name, () => expect(errorOf(def)).toBe(message));

  it('sizeProblem agrees with exact BigInt arithmetic', () =>
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 2 ** 31 }), { maxLength: 4 }), fc.constantFrom('f32', 'f16', 'i32' as const), (shape, dtype) => {
        const n = shape.reduce((a, b) => a * BigInt(b), 1n);
        const bytes = n * BigInt(dtype === 'f16' ? 2 : 4);
        expect(sizeProblem(shape, dtype) === undefined).toBe(bytes <= BigInt(Number.MAX_SAFE_INTEGER));
      }),
      { numRuns: 500 },
    ));
});

/** The plan a scan over every placed piece gives (the planner before its index): the oracle. */
function scanPlan(g: Graph, opts: PlanOptions & { alignment: number; maxBindingBytes: number; maxBufferBytes: number }) {
  const { buffers } = lifetimes(g, opts.fusion, opts.scratch, opts.keep);
  const maxPiece = Math.floor(Math.min(opts.maxBindingBytes, opts.maxBufferBytes) / opts.alignment) * opts.alignment;
  const pieces: { buffer: number; index: number; size: number; start: number; end: number }[] = [];
  buffers.forEach((b, i) => {
    for (let left = Math.max(b.bytes, 1), k = 0; left > 0; k++) {
      const size = Math.min(Math.ceil(left / opts.alignment) * opts.alignment, maxPiece);
      pieces.push({ buffer: i, index: k, size, start: b.start, end: b.end });
      left -= size;
    }
  });
  const arenas: { start: number; end: number; offset: number; size: number }[][] = [];
  const sizes: number[] = [];
  const at = new Map<object, [number, number]>();
  for (const p of [...pieces].sort((a, b) => b.size - a.size || a.start - b.start || a.buffer - b.buffer || a.index - b.index)) {
    let best: [number, number, number] | undefined;
    arenas.forEach((placed, a) => {
      let offset = 0;
      for (const q of placed.filter((q) => q.start <= p.end && p.start <= q.end).sort((x, y) => x.offset - y.offset)) {
        if (q.offset >= offset + p.size) break;
        offset = Math.max(offset, q.offset + q.size);
      }
      const growth = Math.max(0, offset + p.size - sizes[a]);
      if (offset + p.size <= opts.maxBufferBytes && (!best || growth < best[2])) best = [a, offset, growth];
    });
    if (!best) best = [arenas.push([]) - 1, 0, sizes.push(0)];
    arenas[best[0]].push({ start: p.start, end: p.end, offset: best[1], size: p.size });
    sizes[best[0]] = Math.max(sizes[best[0]], best[1] + p.size);
    at.set(p, [best[0], best[1]]);
  }
  return { arenas: sizes, pieces: buffers.map((_, i) => pieces.filter((p) => p.buffer === i).map((p) => at.get(p))) };
}

describe("the planner's index places exactly what a scan of every piece would", () => {
  const same = (g: Graph, opts: { alignment: number; maxBindingBytes: number; maxBufferBytes: number }) => {
    const plan = planMemory(g, opts);
    const want = scanPlan(g, opts);
    expect(plan.arenas).toEqual(want.arenas);
    expect(plan.buffers.map((b) => b.pieces.map((p) => [p.arena, p.offset]))).toEqual(want.pieces);
  };
  it('random models, default and tiny limits (many pieces and arenas)', { timeout: 60_000 }, () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom('sgd', 'adamw', 'lomo' as const), ({ graph }, optimizer) => {
        const { step } = buildStep(graph, { optimizer });
        same(step, { alignment: 256, maxBindingBytes: 128 * 2 ** 20, maxBufferBytes: 2 ** 31 });
        same(step, { alignment: 16, maxBindingBytes: 32, maxBufferBytes: 64 });
        same(step, { alignment: 4, maxBindingBytes: 48, maxBufferBytes: 1024 });
      }),
      { numRuns: 30 },
    ));
  it('gpt tiny, each optimizer, with blocks recomputed', { timeout: 30_000 }, () => {
    for (const optimizer of ['sgd', 'adamw', 'lomo'] as const) {
      const { step } = compileStep(gpt, { preset: 'tiny', optimizer, checkpoint: { kind: 'blocks' } });
      same(step, { alignment: 256, maxBindingBytes: 4096, maxBufferBytes: 2 ** 16 });
    }
  });
});

describe('a long chain compiles', () => {
  // Smoke check only (timing is no test): before the fixes, planning alone grew quadratically.
  // 6000 forward nodes make a step of 21k nodes (recompute, backward, updates) for every pass.
  it('a 21k-node step (6k forward nodes, LOMO, blocks recomputed) is scheduled, fused and planned', { timeout: 120_000 }, () => {
    const c = compileStep(chainModel, { optimizer: 'lomo', sets: ['nodes=6000'], checkpoint: { kind: 'blocks' } });
    expect(c.forward.nodes.length).toBe(5998);
    expect(c.step.nodes.length).toBeGreaterThan(20_000);
    expect(c.plan.steps).toBe(c.step.nodes.length);
    expect(c.plan.peak).toBeGreaterThanOrEqual(c.plan.lowerBound);
  });
});
