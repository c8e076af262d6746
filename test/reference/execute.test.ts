import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { opNames } from '../../compiler/ir/ops.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { verify } from '../../compiler/ir/verify.ts';
import { execute, type Feeds, pick } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import { randomTensor, randomTokens } from '../../compiler/reference/random.ts';
import type { HostTensor, Precision } from '../../compiler/reference/tensor.ts';
import { everyOpGraph, llamaGraph, loc, TestGraph } from './graphs.ts';
import { t } from './helpers.ts';

/** y = x @ w + b; loss = mean(y). Inputs x [2, 3]; params w [3, 2], b [2]. */
function linear(): Graph {
  const g = new TestGraph('linear');
  const x = g.input('x', [2, 3]);
  const w = g.param('w', [3, 2], { kind: 'fanIn', gain: 1 });
  const b = g.param('b', [2], { kind: 'zeros' });
  const y = g.one('add', [g.one('matmul', [x, w], { transA: false, transB: false }), b], {});
  return g.finish(g.one('mean', [y], { axes: [0, 1], keepDims: false }));
}

const linearFeeds: Feeds = {
  inputs: { x: t([2, 3], [1, 2, 3, 4, 5, 6]) },
  params: { w: t([3, 2], [1, 0, 0, 1, 1, 1]), b: t([2], [0.5, -0.5]) },
};

function everyOpFeeds(g: Graph, seed: number): Feeds {
  return {
    inputs: {
      x: randomTensor([2, 3, 8], seed, 'f64'),
      dy: randomTensor([2, 3, 8], seed + 1, 'f64'),
      ids: randomTokens([2, 3], 11, seed + 2),
      pos: { shape: [1], data: Int32Array.of(seed % 4) },
    },
    params: initParams(g, seed + 3, 'f64'),
  };
}

/** Whether f32 result `a` matches f64 result `b` within 1e-5 of the largest |b| in the tensor. */
function agrees(a: HostTensor, b: HostTensor): boolean {
  let [err, scale] = [0, 0];
  for (let i = 0; i < b.data.length; i++) {
    err = Math.max(err, Math.abs(a.data[i] - b.data[i]));
    scale = Math.max(scale, Math.abs(b.data[i]));
  }
  return err <= 1e-5 * scale;
}

describe('execute', () => {
  it('runs the nodes in order and reports the loss', () => {
    const ex = execute(linear(), linearFeeds, 'f64');
    // x @ w = [[4, 5], [10, 11]], + b = [[4.5, 4.5], [10.5, 10.5]]
    expect(ex.loss).toBe(7.5);
    expect(ex.values.every((v) => v !== undefined)).toBe(true);
  });

  it('names a missing or mis-shaped feed, expected before actual', () => {
    const g = linear();
    expect(() => execute(g, { ...linearFeeds, inputs: {} }, 'f64')).toThrow(new Error("execute: input 'x' is missing (expected f32[2, 3])"));
    expect(() => execute(g, { ...linearFeeds, params: { ...linearFeeds.params, w: t([2, 3], [1, 2, 3, 4, 5, 6]) } }, 'f64')).toThrow(
      new Error("execute: param 'w' must have shape [3, 2], got [2, 3]"),
    );
    const short = { shape: [2], data: new Float64Array(3) };
    expect(() => execute(g, { ...linearFeeds, params: { ...linearFeeds.params, b: short } }, 'f64')).toThrow(
      new Error("execute: param 'b' must hold 2 elements for shape [2], got 3"),
    );
  });

  it('requires i32 feeds to be Int32Array and checks state feeds', () => {
    const g = new TestGraph('ids');
    const ids = g.input('ids', [2], 'i32');
    const table = g.param('table', [3, 1], { kind: 'ones' });
    const m = g.b.value([3, 1], 'f32', 'optstate', loc, 'm.table');
    const loss = g.one('sum', [g.one('embedding', [table, ids], {})], { axes: [0, 1], keepDims: false });
    const graph = { ...g.finish(loss), state: [{ name: 'm.table', param: 'table', value: m, next: m }] };
    const params = { table: t([3, 1], [1, 2, 3]) };
    expect(() => execute(graph, { inputs: { ids: t([2], [0, 1]) }, params }, 'f64')).toThrow(
      new Error("execute: input 'ids' must be i32 data (an Int32Array), got a Float64Array"),
    );
    const inputs = { ids: { shape: [2], data: Int32Array.from([2, 2]) } };
    expect(() => execute(graph, { inputs, params }, 'f64')).toThrow(new Error("execute: state 'm.table' is missing (expected f32[3, 1])"));
    expect(execute(graph, { inputs, params, state: { 'm.table': t([3, 1], [0, 0, 0]) } }, 'f64').loss).toBe(6);
  });

  it('rounds f64 feeds into f32 storage, and reuses feeds already stored right', () => {
    const g = linear();
    const x = linearFeeds.inputs.x;
    const w = { shape: [3, 2], data: Float32Array.from([0.1, 0, 0, 1, 1, 1]) };
    const ex = execute(g, { inputs: { x: t([2, 3], [0.1, 2, 3, 4, 5, 6]) }, params: { ...linearFeeds.params, w } }, 'f32');
    const fedX = ex.values[g.inputs[0].value]!;
    expect(fedX.data).toBeInstanceOf(Float32Array);
    expect(fedX.data[0]).toBe(Math.fround(0.1));
    expect(ex.values[g.params[0].value]).toBe(w);
    expect(execute(g, linearFeeds, 'f64').values[g.inputs[0].value]).toBe(x);
    expect(ex.values[g.loss]!.data).toBeInstanceOf(Float32Array);
  });

  it('rounds f16 feeds to f16 under f32 precision only', () => {
    const g = new TestGraph('half');
    const x = g.b.value([2], 'f16', 'input', loc, 'x');
    g.b.inputs.push({ name: 'x', value: x, loc });
    const graph = g.finish(g.one('sum', [x], { axes: [0], keepDims: false }));
    const feeds = { inputs: { x: t([2], [1 / 3, 1 + 2 ** -11]) }, params: {} };
    expect(Array.from(execute(graph, feeds, 'f32').values[x]!.data)).toEqual([0.333251953125, 1]);
    expect(execute(graph, feeds, 'f32').loss).toBe(1.3330078125);
    expect(execute(graph, feeds, 'f64').values[x]!.data).toEqual(Float64Array.from([1 / 3, 1 + 2 ** -11]));
  });

  it('says where a kernel failed, keeping the cause', () => {
    const g = new TestGraph('bad-ids');
    const ids = g.input('ids', [1], 'i32');
    const table = g.param('table', [3, 2], { kind: 'ones' });
    const graph = g.finish(g.one('sum', [g.one('embedding', [table, ids], {})], { axes: [0, 1], keepDims: false }));
    const feeds = { inputs: { ids: { shape: [1], data: Int32Array.from([3]) } }, params: initParams(graph, 0, 'f64') };
    const run = () => execute(graph, feeds, 'f64');
    expect(run).toThrow(new Error('models/test.ts:3:7: error: embedding: token id 3 at [0] is out of range for vocab 3'));
    try {
      run();
    } catch (e) {
      expect((e as Error).cause).toBeInstanceOf(Error);
    }
  });

  it('pick returns named values', () => {
    const g = linear();
    const ex = execute(g, linearFeeds, 'f64');
    expect(pick(ex, { loss: g.loss }).loss.data[0]).toBe(7.5);
    expect(pick(ex, undefined)).toEqual({});
  });
});

describe('the every-op graph', () => {
  const g = verify(everyOpGraph(), 'everyOpGraph');
  it('uses every op', () => {
    expect(new Set(g.nodes.map((n) => n.op))).toEqual(new Set(opNames));
  });

  it('is deterministic: the same graph and feeds give the same bits', () => {
    const feeds = everyOpFeeds(g, 5);
    for (const precision of ['f32', 'f64'] as const) {
      const [a, b] = [execute(g, feeds, precision), execute(g, feeds, precision)];
      a.values.forEach((v, i) => expect(v!.data).toEqual(b.values[i]!.data));
      expect(Object.is(a.loss, b.loss)).toBe(true);
    }
  });

  it('f32 and f64 runs agree within 1e-5 relative on every value', () => {
    fc.assert(
      fc.property(fc.nat(), (seed) => {
        const feeds = everyOpFeeds(g, seed);
        const [lo, hi] = (['f32', 'f64'] as Precision[]).map((p) => execute(g, feeds, p));
        lo.values.forEach((v, i) => {
          if (!agrees(v!, hi.values[i]!)) expect.fail(`value %${i} (${g.values[i].shape}) differs: ${v!.data} vs ${hi.values[i]!.data}`);
        });
        expect(Math.abs(lo.loss - hi.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(hi.loss));
      }),
      { numRuns: 20 },
    );
  });
});

describe('a tiny llama', () => {
  const g = verify(llamaGraph({ batch: 2, seq: 16, dim: 64, heads: 4, hidden: 128, vocab: 256, layers: 4 }), 'llamaGraph');
  const feeds: Feeds = {
    inputs: { tokens: randomTokens([2, 16], 256, 1), targets: randomTokens([2, 16], 256, 2) },
    params: initParams(g, 3, 'f64'),
  };
  // How fast it runs is a benchmark's business (bench/), not a test's.
  it('runs a llama-sized graph, and its loss starts near log(vocab)', () => {
    const ex = execute(g, feeds, 'f64');
    expect(g.nodes.length).toBeGreaterThan(80);
    expect(Math.abs(ex.loss - Math.log(256))).toBeLessThan(0.1);
  });
  it('f32 and f64 losses agree within 1e-5 relative', () => {
    const [lo, hi] = [execute(g, feeds, 'f32'), execute(g, feeds, 'f64')];
    expect(Math.abs(lo.loss - hi.loss)).toBeLessThanOrEqual(1e-5 * hi.loss);
  });
});
