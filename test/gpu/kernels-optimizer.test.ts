// SGD and AdamW updates match the reference executor (invariant 7) in every variant (clip value,
// clip-norm scale, master copy, weight decay), planned as in the real step: the new param shares
// the param's storage and each new state its state's, so the test reads the param's own storage
// back after the step.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LomocError } from '../../compiler/diagnostics.ts';
import { lowerStep, maxStorageBindings } from '../../compiler/codegen/wgsl/lower.ts';
import { kernelTargets } from '../../compiler/codegen/wgsl/target.ts';
import { noFusion } from '../../compiler/ir/fusion.ts';
import { builtinOptimizers } from '../../compiler/optimizers/table.ts';
import { updateAttrs, updateInputs, type UpdateFlags } from '../../compiler/optimizers/update-layout.ts';
import type { DType, Graph, StateDecl, ValueId } from '../../compiler/ir/types.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import type { StepProgram } from '../../contract/program.ts';
import { loc, TestGraph } from '../reference/graphs.ts';
import { runOnGpu, scratchFor } from './harness.ts';
import { expectWithin, random, runs, seed, shapes } from './kernel-check.ts';

/**
 * Tolerance, relative to the largest |reference| of each tensor (abs) and per element (rel). One
 * element's update is a handful of f32 operations (AdamW: two moment updates, two bias
 * corrections computed as -expm1 from ln(beta), a sqrt and a divide), each within a few ULP;
 * the reference rounds once from doubles. 2e-6 of the tensor's scale and 1e-5 per element
 * leave a margin of at least 7x over the worst we measured in 300 random variants.
 */
const tol = (ref: ArrayLike<number>) => {
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  return { abs: 2e-6 * scale, rel: 1e-5 };
};

/** The update rule under test. */
type Op = 'sgd' | 'adamw';
interface Variant extends UpdateFlags {
  readonly op: Op;
  readonly shape: readonly number[];
  readonly lr: number;
  readonly wd: number;
  readonly step: number;
  readonly factor: number;
  /** Plan the update in place, as the real step does (else the new values get storage of their own). */
  readonly inPlace: boolean;
}

interface Built {
  readonly g: Graph;
  readonly p: ValueId;
  readonly outs: readonly ValueId[];
  /** The state values (m, v, master) in output order after p'. */
  readonly states: readonly ValueId[];
}

/** One update node over param w, built like passes/optimizer-step.ts builds the real step. */
function updateGraph(v: Variant, dtype: DType = 'f32'): Built {
  const g = new TestGraph(v.op);
  const shape = v.shape;
  const p = g.param('w', shape, { kind: 'zeros' });
  const scalar = (name: string) => g.input(name, []);
  const attrs = updateAttrs(builtinOptimizers[v.op].rule, { clipValue: v.clipValue, scaled: v.scaled, master: v.master });
  const names = attrs.states;
  // In place: state values declared as the step's state; otherwise plain inputs.
  const states = names.map((n) => (v.inPlace ? g.b.value(shape, 'f32', 'optstate', loc, `${n}.w`) : g.input(`${n}.w`, shape)));
  const named: Record<string, ValueId> = {
    p, g: g.input('g', shape, dtype), lr: scalar('lr'), wd: scalar('weightDecay'),
    ...(v.op === 'adamw' ? { step: scalar('step') } : {}), ...(v.scaled ? { scale: scalar('scale') } : {}),
    ...Object.fromEntries(names.map((n, k) => [n, states[k]])),
  };
  const outs = g.b.node('optimizerUpdate', updateInputs(attrs, named), attrs, loc, 'update', ['update', ...names.map(() => 'optstate' as const)]);
  const base = g.finish(g.input('zero', []));
  if (!v.inPlace) return { g: base, p, outs, states };
  const state: StateDecl[] = names.map((n, k) => ({ name: `${n}.w`, param: 'w', value: states[k], next: outs[k + 1] }));
  return { g: { ...base, updates: { w: outs[0] }, state }, p, outs, states };
}

function feedsFor(v: Variant, s: number): Feeds {
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float32Array.of(x) });
  const w = random(v.shape, s);
  // The master copy differs from the stored weights, so a kernel reading the wrong one fails.
  const tensors: Record<string, HostTensor> = {
    'm.w': random(v.shape, s + 2, undefined, 0.1),
    'v.w': random(v.shape, s + 3, (x) => x * x, 0.1),
    'master.w': { shape: v.shape, data: Float32Array.from(random(v.shape, s + 4).data, (x, i) => w.data[i] + 1e-3 * x) },
  };
  const inputs: Record<string, HostTensor> = {
    g: random(v.shape, s + 1, undefined, 3),
    lr: scalar(v.lr),
    weightDecay: scalar(v.wd),
    step: scalar(v.step),
    scale: scalar(v.factor),
    zero: scalar(0),
  };
  return v.inPlace ? { inputs, params: { w }, state: tensors } : { inputs: { ...inputs, ...tensors }, params: { w } };
}

const variant: fc.Arbitrary<Variant> = fc.record({
  op: fc.constantFrom<Op>('sgd', 'adamw'),
  shape: shapes(1, 3, 1 << 14),
  clipValue: fc.option(fc.constantFrom(0.05, 0.5, 2), { nil: null }),
  scaled: fc.boolean(),
  master: fc.boolean(),
  lr: fc.constantFrom(1e-3, 0.01, 0.3),
  wd: fc.constantFrom(0, 0, 0.01, 0.1),
  step: fc.constantFrom(1, 2, 10, 1000),
  factor: fc.constantFrom(1, 0.5, 0.013),
  inPlace: fc.constant(true),
});

async function check(v: Variant, s: number): Promise<void> {
  const { g, p, outs, states } = updateGraph(v);
  const feeds = feedsFor(v, s);
  const ref = execute(g, feeds, 'f32');
  // In place, the param's and the states' own storage holds the new values after the step.
  const read = v.inPlace ? [p, ...states] : outs;
  const gpu = await runOnGpu(g, feeds, read);
  outs.forEach((o, k) => {
    const e = ref.values[o]!.data;
    expectWithin(gpu.get(read[k])!, e, tol(e), `${JSON.stringify(v)} output ${k}`);
  });
}

const programOf = (g: Graph): StepProgram => {
  const f = noFusion(g.nodes.length);
  return lowerStep(g, planMemory(g, { fusion: f, scratch: scratchFor(g, f) }), f, kernelTargets.cpu);
};

describe('optimizer kernels', () => {
  it('the sgd and adamw updates, in place, every variant: match the reference', async () => {
    await fc.assert(fc.asyncProperty(variant, seed, check), runs(20));
  });

  it('without in-place planning (hand-built graphs) the old values are left untouched', async () => {
    await fc.assert(fc.asyncProperty(variant.map((v) => ({ ...v, inPlace: false })), seed, async (v, s) => {
      await check(v, s);
      const { g, p, states } = updateGraph(v);
      const feeds = feedsFor(v, s);
      const gpu = await runOnGpu(g, feeds, [p, ...states]);
      expect(Array.from(gpu.get(p)!)).toEqual(Array.from(feeds.params.w.data));
    }), runs(8));
  });

  it('the planner aliases p\' onto p and each state onto its new value; each is bound once', () => {
    for (const op of ['sgd', 'adamw'] as const)
      for (const [scaled, master] of [[false, false], [true, false], [false, true], [true, true]]) {
        const v: Variant = { op, shape: [3, 5], clipValue: 0.5, scaled, master, lr: 0.1, wd: 0.1, step: 1, factor: 0.5, inPlace: true };
        const { g, p, outs, states } = updateGraph(v);
        const f = noFusion(g.nodes.length);
        const plan = planMemory(g, { fusion: f });
        expect(plan.bufferOf[outs[0]]).toBe(plan.bufferOf[p]);
        states.forEach((s, k) => expect(plan.bufferOf[outs[k + 1]]).toBe(plan.bufferOf[s]));
        const program = lowerStep(g, plan, f, kernelTargets.cpu);
        // No copies: one dispatch, or two when AdamW with a scale and a master copy would need 9.
        expect(program.dispatches.length).toBe(op === 'adamw' && scaled && master ? 2 : 1);
        for (const d of program.dispatches) {
          expect(d.bindings.length).toBeLessThanOrEqual(maxStorageBindings);
          const ranges = d.bindings.map((b) => `${b.arena}:${b.offset}`);
          expect(new Set(ranges).size).toBe(ranges.length);
        }
      }
  });

  it('one scalar fed as both learning rate and weight decay is bound once', async () => {
    const g = new TestGraph('shared');
    const p = g.param('w', [70], { kind: 'zeros' });
    const rate = g.input('lr', []);
    const attrs = updateAttrs(builtinOptimizers.sgd.rule, { clipValue: null, scaled: false, master: false });
    const [next] = g.b.node('optimizerUpdate', updateInputs(attrs, { p, g: g.input('g', [70]), lr: rate, wd: rate }), attrs, loc, 'update', ['update']);
    const graph = { ...g.finish(g.input('zero', [])), updates: { w: next } };
    const scalar = (x: number): HostTensor => ({ shape: [], data: Float32Array.of(x) });
    const feeds = { inputs: { g: random([70], 1), lr: scalar(0.1), zero: scalar(0) }, params: { w: random([70], 2) } };
    const e = execute(graph, feeds, 'f32').values[next]!.data;
    expectWithin((await runOnGpu(graph, feeds, [p])).get(p)!, e, tol(e), 'sgdUpdate with lr = wd');
    expect(programOf(graph).dispatches[0].bindings.length).toBe(3);
  });

});
