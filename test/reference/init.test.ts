import { describe, expect, it } from 'vitest';
import { f16round } from '../../contract/f16.ts';
import { initParams, initStd } from '../../compiler/reference/init.ts';
import { deriveSeed, mulberry32, randomTensor, randomTokens } from '../../compiler/reference/random.ts';
import { TestGraph } from './graphs.ts';
import type { Init } from '../../compiler/ir/types.ts';

function graphOf(params: Record<string, [number[], Init]>) {
  const g = new TestGraph('params');
  const ids = Object.entries(params).map(([name, [shape, init]]) => g.param(name, shape, init));
  return g.finish(g.one('sum', [ids[0]], { axes: [], keepDims: false }));
}

const stats = (d: ArrayLike<number>) => {
  const mean = Array.from(d).reduce((a, b) => a + b, 0) / d.length;
  return { mean, std: Math.sqrt(Array.from(d).reduce((a, b) => a + (b - mean) ** 2, 0) / d.length) };
};

describe('initParams', () => {
  const g = graphOf({
    w: [[256, 64], { kind: 'fanIn', gain: 2 }],
    e: [[64, 64], { kind: 'normal', std: 0.02 }],
    z: [[3], { kind: 'zeros' }],
    o: [[2, 2], { kind: 'ones' }],
  });

  it('zeros and ones are exact', () => {
    const p = initParams(g, 1, 'f32');
    expect(Array.from(p.z.data)).toEqual([0, 0, 0]);
    expect(Array.from(p.o.data)).toEqual([1, 1, 1, 1]);
    expect(p.o.shape).toEqual([2, 2]);
  });

  it('normal uses std; fanIn uses gain / sqrt(product of all dims but the last)', () => {
    expect(initStd({ kind: 'fanIn', gain: 2 }, [256, 64])).toBe(0.125);
    expect(initStd({ kind: 'fanIn', gain: 1 }, [2, 3, 4])).toBe(1 / Math.sqrt(6));
    expect(initStd({ kind: 'fanIn', gain: 1 }, [5])).toBe(1);
    const p = initParams(g, 7, 'f64');
    const w = stats(p.w.data);
    expect(Math.abs(w.mean)).toBeLessThan(0.005);
    expect(Math.abs(w.std / 0.125 - 1)).toBeLessThan(0.03);
    const e = stats(p.e.data);
    expect(Math.abs(e.std / 0.02 - 1)).toBeLessThan(0.05);
  });

  it('is deterministic, and an f32 run holds the f64 values rounded to f32', () => {
    const [a, b, c] = [initParams(g, 3, 'f64'), initParams(g, 3, 'f64'), initParams(g, 3, 'f32')];
    expect(a.w.data).toEqual(b.w.data);
    expect(c.w.data).toBeInstanceOf(Float32Array);
    expect(Array.from(c.w.data)).toEqual(Array.from(a.w.data, Math.fround));
    expect(initParams(g, 4, 'f64').w.data).not.toEqual(a.w.data);
  });

  it('draws each parameter from its own stream: adding a parameter changes no other', () => {
    const more = graphOf({ extra: [[4], { kind: 'normal', std: 1 }], e: [[64, 64], { kind: 'normal', std: 0.02 }] });
    expect(initParams(more, 3, 'f64').e.data).toEqual(initParams(g, 3, 'f64').e.data);
    const same = graphOf({ a: [[8], { kind: 'normal', std: 1 }], b: [[8], { kind: 'normal', std: 1 }] });
    const p = initParams(same, 3, 'f64');
    expect(p.a.data).not.toEqual(p.b.data);
  });
});

describe('random helpers', () => {
  it('mulberry32 is a fixed sequence in [0, 1)', () => {
    const [r1, r2] = [mulberry32(42), mulberry32(42)];
    const xs = Array.from({ length: 1000 }, () => r1());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => r2()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(deriveSeed(1, 'w')).not.toBe(deriveSeed(2, 'w'));
  });
  it('randomTensor and randomTokens are seeded; tokens lie in [0, vocab)', () => {
    expect(randomTensor([3, 4], 9, 'f64').data).toEqual(randomTensor([3, 4], 9, 'f64').data);
    expect(randomTensor([3, 4], 9, 'f64').data).not.toEqual(randomTensor([3, 4], 10, 'f64').data);
    const half = randomTensor([64], 1, 'f32', 'f16').data;
    expect(half.every((x) => f16round(x) === x)).toBe(true);
    expect(Array.from(half)).toEqual(Array.from(randomTensor([64], 1, 'f64').data, f16round));
    const tok = randomTokens([4, 50], 7, 3);
    expect(tok.data).toBeInstanceOf(Int32Array);
    expect(tok.shape).toEqual([4, 50]);
    expect(tok.data.every((x) => x >= 0 && x < 7)).toBe(true);
    expect(new Set(tok.data).size).toBe(7);
    expect(randomTokens([4, 50], 7, 3).data).toEqual(tok.data);
  });
});
