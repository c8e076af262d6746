// The AdaLomo update's WGSL (the reduction form, emit-update-phases.ts) matches the reference
// executor's rule (invariant 7): shapes of rank 1 to 3 (vectors, odd sizes, size 1), f32, f16
// (native and packed in u32 words) and bf16 storage, clip value, clip-norm scale, weight decay,
// steps 1 (no history) to 1000, rows of zero gradient (r and c near eps1), and stochastic bf16
// rounding; planned in place as the real step is.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bf16round } from '../../contract/bf16.ts';
import { f16round } from '../../contract/f16.ts';
import { lowerStep, maxStorageBindings } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets, type KernelTarget } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import type { DType, Graph, StateDecl, ValueId } from '../../compiler/ir/types.ts';
import { adalomoRule } from '../../compiler/optimizers/adalomo.ts';
import { matrixShape } from '../../compiler/optimizers/descriptor.ts';
import { updateAttrs, updateInputs } from '../../compiler/optimizers/update-layout.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { expectWithin, random, runs, seed, shapes } from './kernel-check.ts';

interface Variant {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly half: 'native' | 'packed';
  readonly clipValue: number | null;
  readonly scaled: boolean;
  readonly stochastic: boolean;
  readonly hyper: Readonly<Record<string, number>>;
  readonly lr: number;
  readonly wd: number;
  readonly step: number;
  readonly factor: number;
  /** Every k-th row of the gradient is zero (0: none). */
  readonly zeroRows: number;
}

function updateGraph(v: Variant, inPlace = true): { g: Graph; p: ValueId; outs: readonly ValueId[]; states: readonly ValueId[] } {
  const t = new TestGraph('adalomo');
  const p = t.b.value(v.shape, v.dtype, 'param', loc, 'w');
  t.b.params.push({ name: 'w', value: p, init: { kind: 'zeros' }, loc });
  const attrs = updateAttrs(adalomoRule, {
    clipValue: v.clipValue, scaled: v.scaled, master: false, hyper: v.hyper,
    ...(v.stochastic ? { stochastic: { seed: 12345, param: 3 } } : {}),
  });
  const { rows, cols } = matrixShape(v.shape);
  // In place: states declared as the step's state; otherwise plain inputs (new values get storage of their own).
  const states = inPlace
    ? [t.b.value([rows], 'f32', 'optstate', loc, 'row.w'), t.b.value([cols], 'f32', 'optstate', loc, 'col.w')]
    : [t.input('row.w', [rows]), t.input('col.w', [cols])];
  const named: Record<string, ValueId> = {
    p, g: t.input('g', v.shape, v.dtype), lr: t.input('lr', []), wd: t.input('weightDecay', []), step: t.input('step', []),
    ...(v.scaled ? { scale: t.input('scale', []) } : {}), row: states[0], col: states[1],
  };
  const outs = t.b.node('optimizerUpdate', updateInputs(attrs, named), attrs, loc, 'update', ['update', 'optstate', 'optstate']);
  const base = t.finish(t.input('zero', []));
  if (!inPlace) return { g: base, p, outs, states };
  const state: StateDecl[] = ['row', 'col'].map((n, k) => ({ name: `${n}.w`, param: 'w', value: states[k], next: outs[k + 1] }));
  return { g: { ...base, updates: { w: outs[0] }, state }, p, outs, states };
}

function feedsFor(v: Variant, s: number): Feeds {
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float32Array.of(x) });
  const { rows, cols } = matrixShape(v.shape);
  const round = v.dtype === 'bf16' ? bf16round : v.dtype === 'f16' ? f16round : (x: number) => x;
  const w = random(v.shape, s);
  const g = random(v.shape, s + 1, undefined, 3);
  if (v.zeroRows) for (let k = 0; k < g.data.length; k++) if (Math.floor(k / cols) % v.zeroRows === 0) g.data[k] = 0;
  // States as an earlier step left them: positive second moments.
  const moment = (n: number, k: number) => random([n], s + k, (x) => 1e-3 + x * x, 0.3);
  return {
    inputs: {
      g: { shape: v.shape, data: Float32Array.from(g.data, round) }, lr: scalar(v.lr), weightDecay: scalar(v.wd), step: scalar(v.step),
      scale: scalar(v.factor), zero: scalar(0),
    },
    params: { w: { shape: v.shape, data: Float32Array.from(w.data, round) } },
    state: { 'row.w': moment(rows, 2), 'col.w': moment(cols, 3) },
  };
}

/**
 * Tolerance per tensor: the kernel sums rows, columns and the whole param in f32 (32 lanes, then
 * in order), the reference in f64. States: 2e-6 of their scale, 1e-5 per element. Weights: the
 * same, plus one ulp of their storage where it is 16-bit (f32 and f64 results may round apart).
 */
function tol(ref: ArrayLike<number>, dtype: DType) {
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  const ulp = dtype === 'bf16' ? 2 ** -7 : dtype === 'f16' ? 2 ** -10 : 0;
  return { abs: 2e-6 * scale + (dtype === 'f16' ? 2 ** -24 : 0), rel: 1e-5 + ulp };
}

const variant: fc.Arbitrary<Variant> = fc.record({
  shape: fc.oneof(shapes(1, 1, 1 << 12), shapes(2, 2, 1 << 12), shapes(3, 3, 1 << 12)),
  dtype: fc.constantFrom<DType>('f32', 'f32', 'f16', 'bf16'),
  half: fc.constantFrom<'native' | 'packed'>('native', 'packed'),
  clipValue: fc.option(fc.constantFrom(0.05, 2), { nil: null }),
  scaled: fc.boolean(),
  stochastic: fc.constant(false),
  hyper: fc.constantFrom({ eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, decayRate: -0.8 }, { eps1: 1e-20, eps2: 0.5, clipThreshold: 0.05, decayRate: -0.5 }),
  lr: fc.constantFrom(1e-3, 0.05, 0.3),
  wd: fc.constantFrom(0, 0.01, 0.1),
  step: fc.constantFrom(1, 2, 10, 1000),
  factor: fc.constantFrom(1, 0.5, 0.013, -1),
  zeroRows: fc.constantFrom(0, 0, 2, 3),
}).map((v) => (v.dtype === 'bf16' ? { ...v, stochastic: v.step % 2 === 0 } : v));

async function check(v: Variant, s: number): Promise<void> {
  const { g, p, outs, states } = updateGraph(v);
  const feeds = feedsFor(v, s);
  const ref = execute(g, feeds, 'f32');
  const target: KernelTarget = { ...kernelTargets.cpu, half: v.half };
  const read = [p, ...states];
  const gpu = await runOnGpu(g, feeds, read, undefined, undefined, target);
  outs.forEach((o, k) => {
    const e = ref.values[o]!.data;
    expectWithin(gpu.get(read[k])!, e, tol(e, k === 0 ? v.dtype : 'f32'), `${JSON.stringify(v)} output ${k}`);
  });
  if (v.dtype !== 'f32') return;
  // The step itself (w' - w, far smaller than w): within 2e-5 of its largest element, plus the
  // rounding of w' (an ulp of w), so an error in the statistics cannot hide under w's size.
  const w = feeds.params.w.data;
  const got = gpu.get(p)!;
  const want = ref.values[outs[0]]!.data;
  let most = 0;
  for (let i = 0; i < w.length; i++) most = Math.max(most, Math.abs(want[i] - w[i]));
  for (let i = 0; i < w.length; i++) {
    const [a, b] = [got[i] - w[i], want[i] - w[i]];
    if (!(Math.abs(a - b) <= 2e-5 * most + 2 ** -22 * Math.abs(w[i])))
      expect.fail(`${JSON.stringify(v)}: step of element ${i}: reference ${b}, gpu ${a} (largest step ${most})`);
  }
}

describe('AdaLomo update kernels', () => {
  it('match the reference rule: any shape, storage, clip, scale, step and hyper-parameters', async () => {
    await fc.assert(fc.asyncProperty(variant, seed, check), runs(16));
  });

  it('a large matrix (several total workgroups, columns cut into row chunks), a tall one and a wide vector', async () => {
    const base: Variant = { shape: [300, 517], dtype: 'f32', half: 'native', clipValue: null, scaled: true, stochastic: false,
      hyper: { eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, decayRate: -0.8 }, lr: 0.05, wd: 0.01, step: 3, factor: 0.5, zeroRows: 7 };
    await check(base, 11);
    await check({ ...base, shape: [70001] }, 12);
    await check({ ...base, shape: [4099, 3], clipValue: 0.05 }, 13);
  });

  it('without in-place planning (hand-built graphs) the new values are right and the old ones untouched', async () => {
    for (const shape of [[13, 65], [257]]) {
      const v: Variant = { shape, dtype: 'f32', half: 'native', clipValue: 0.05, scaled: true, stochastic: false,
        hyper: { eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, decayRate: -0.8 }, lr: 0.05, wd: 0.01, step: 2, factor: 0.5, zeroRows: 0 };
      const { g, p, outs, states } = updateGraph(v, false);
      const f = feedsFor(v, 5);
      const feeds = { inputs: { ...f.inputs, ...f.state }, params: f.params };
      const ref = execute(g, feeds, 'f32');
      const gpu = await runOnGpu(g, feeds, [...outs, p, ...states]);
      outs.forEach((o, k) => expectWithin(gpu.get(o)!, ref.values[o]!.data, tol(ref.values[o]!.data, 'f32'), `${JSON.stringify(shape)} output ${k}`));
      expect(Array.from(gpu.get(p)!)).toEqual(Array.from(f.params.w.data));
      states.forEach((s, k) => expect(Array.from(gpu.get(s)!)).toEqual(Array.from(Object.values(f.state!)[k].data)));
    }
  });

  it('is 6 dispatches in place, within 8 storage bindings, with a scratch of 3 scalars and the column partials', () => {
    const v: Variant = { shape: [300, 517], dtype: 'f16', half: 'packed', clipValue: 0.5, scaled: true, stochastic: false,
      hyper: {}, lr: 0.05, wd: 0.01, step: 3, factor: 0.5, zeroRows: 0 };
    for (const stochastic of [false, true]) {
      const { g, p, outs, states } = updateGraph({ ...v, dtype: stochastic ? 'bf16' : 'f16', stochastic, hyper: { eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, decayRate: -0.8 } });
      const f = noFusion(g.nodes.length);
      const scratch = scratchFor(g, f);
      const node = g.nodes.findIndex((n) => n.op === 'optimizerUpdate');
      // 300 rows in 3 chunks of 100: 3 x 517 column partials, more than the total's 3 x 152 workgroups.
      expect(scratch(node)).toEqual([(3 + 3 * 517) * 4]);
      const plan = planMemory(g, { fusion: f, scratch });
      expect(plan.bufferOf[outs[0]]).toBe(plan.bufferOf[p]);
      states.forEach((s, k) => expect(plan.bufferOf[outs[k + 1]]).toBe(plan.bufferOf[s]));
      const program = lowerStep(g, plan, f, { ...kernelTargets.cpu, half: 'packed' });
      expect(program.dispatches.map((d) => d.shader.split('|')[0])).toEqual([
        'update.adalomo.p0rows.wg32.clip.scaled', 'update.adalomo.p1cols1.wg64.clip.scaled', 'update.adalomo.p1cols2.wg64.clip.scaled', 'update.adalomo.p2total1.wg32.clip.scaled',
        'update.adalomo.p2total2.wg32.clip.scaled', 'update.adalomo.apply.wg256.clip.scaled',
      ].map((k) => (stochastic ? `${k}.sr` : k)));
      expect(Math.max(...program.dispatches.map((d) => d.bindings.length))).toBeLessThanOrEqual(maxStorageBindings - 1);
      expect(program.features).toEqual([]);
    }
  });
});
