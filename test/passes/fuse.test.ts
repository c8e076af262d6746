// The fuse pass keeps its stated invariant on random models and on every model: each node in
// exactly one group of consecutive positions; internal values made and read inside one group
// only, never the loss, a param, state or a new param value; at most 8 storage bindings per
// group (per kernel of the fused head's, which runs as several). Fusing changes no result (the step run inside its fused plan equals the plain step,
// bit for bit), and under LOMO the weight-gradient matmuls' gradients get no bytes at all.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import type { Fusion } from '../../compiler/ir/fusion.ts';
import { sameShape } from '../../compiler/ir/shape.ts';
import type { Graph, Node, ValueId } from '../../compiler/ir/types.ts';
import { users } from '../../compiler/ir/analysis.ts';
import { batchKey, elementwiseOps, fuse, fusionProblems, maxBatchUpdates, maxGroupBindings, type FuseOptions } from '../../compiler/passes/fuse.ts';
import { planMemory } from '../../compiler/passes/plan-memory.ts';
import { compileStep } from '../../compiler/pipeline.ts';
import { memoryReport } from '../../compiler/report/memory-report.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { arbitraryModel } from '../support/arbitrary-model.ts';
import { bitDifferences, buildStep, plainStep, plannedStep, stepFeeds } from '../support/step.ts';
import { planViolations } from '../support/step-checks.ts';
import { randomFeeds } from '../support/trace.ts';

const optimizers = ['sgd', 'adamw', 'lomo'] as const;
const none: FuseOptions = { matmulUpdate: false, elementwise: false, matmulEpilogue: false };
const optionsArb = fc.record({ matmulUpdate: fc.boolean(), elementwise: fc.boolean(), matmulEpilogue: fc.boolean(), matmulNorm: fc.boolean(), updateBatch: fc.boolean(), reduceUpdate: fc.boolean() });

/** What each kind of group may hold, and the binding limit (inputs from outside plus stored results). */
function groupProblems(g: Graph, f: Fusion): string[] {
  const out: string[] = [];
  const readers = users(g);
  const internal = new Set(f.internal);
  f.groups.forEach((grp, k) => {
    const nodes = grp.nodes.map((i) => g.nodes[i]);
    const ops = nodes.map((n) => n.op).join(', ');
    // A matmul epilogue may end in [reshape,] transpose: its result stored at transposed positions.
    const tail = grp.kind === 'matmulEpilogue' && nodes.at(-1)!.op === 'transpose' ? (nodes.at(-2)!.op === 'reshape' && nodes.length > 2 ? 2 : 1) : 0;
    const chain = grp.kind === 'matmulEpilogue' ? nodes.slice(1, nodes.length - tail) : grp.kind === 'elementwise' ? nodes : [];
    if (tail && nodes.slice(0, -1).some((n) => n.outputs.some((v) => !internal.has(v)))) out.push(`group ${k} (${ops}) stores more than its transposed result`);
    const shape = g.values[nodes[0].outputs[0]].shape;
    if (chain.some((n) => !elementwiseOps.has(n.op) || !sameShape(g.values[n.outputs[0]].shape, shape)))
      out.push(`group ${k} (${grp.kind}: ${ops}) holds a node that is not elementwise over ${shape}`);
    if (grp.kind === 'matmulEpilogue' && nodes[0].op !== 'matmul') out.push(`group ${k} (${ops}) does not start with a matmul`);
    if (grp.kind === 'matmulUpdate') {
      const [mm, up] = nodes;
      if (nodes.length !== 2 || mm.op !== 'matmul' || up.op !== 'optimizerUpdate' || up.inputs[up.attrs.inputs.g] !== mm.outputs[0] || !internal.has(mm.outputs[0]))
        out.push(`group ${k} (${ops}) is not a matmul whose output is the internal gradient of the update after it`);
    }
    if (grp.kind === 'lossUpdate') {
      const [ce, up] = nodes;
      const dw = ce.outputs[1];
      if (nodes.length !== 2 || ce.op !== 'linearCrossEntropyGrad' || up.op !== 'optimizerUpdate' || up.inputs[up.attrs.inputs.g] !== dw ||
          up.inputs[up.attrs.inputs.p] !== ce.inputs[1] || !internal.has(dw))
        out.push(`group ${k} (${ops}) is not the head's backward whose dW is the internal gradient of the update of its W after it`);
      // Its widest kernel: a chunk's dW matmul (h, the workspace) applying the update (its other inputs).
      const widest = 2 + new Set(up.inputs.filter((x) => x !== dw)).size;
      if (widest > maxGroupBindings) out.push(`group ${k} (${ops}) needs ${widest} bindings in its dW kernel`);
    }
    // The running sum's add, when in the group, reads the squared norm (internal) and a scalar from before.
    const sumAdd = (ss: Node, add: Node | undefined) =>
      add === undefined || (add.op === 'add' && add.inputs[1] === ss.outputs[0] && internal.has(ss.outputs[0]) && g.values[add.outputs[0]].shape.length === 0);
    if (grp.kind === 'matmulNorm') {
      const [mm, ss, add] = nodes;
      if (nodes.length > 3 || mm.op !== 'matmul' || ss?.op !== 'sumSquares' || ss.inputs[0] !== mm.outputs[0] || g.values[mm.outputs[0]].dtype !== 'f32' || !sumAdd(ss, add))
        out.push(`group ${k} (${ops}) is not an f32 matmul, the sumSquares of its output and maybe the running sum's add of it`);
    }
    if (grp.kind === 'normSum' && (nodes.length !== 2 || nodes[0].op !== 'sumSquares' || !sumAdd(nodes[0], nodes[1])))
      out.push(`group ${k} (${ops}) is not a sumSquares and the running sum's add of it`);
    if (grp.kind === 'reduceUpdate') {
      const [sum, up] = nodes;
      if (nodes.length !== 2 || sum.op !== 'sum' || up.op !== 'optimizerUpdate' || up.inputs[up.attrs.inputs.g] !== sum.outputs[0] || !internal.has(sum.outputs[0]))
        out.push(`group ${k} (${ops}) is not a sum whose output is the internal gradient of the update after it`);
    }
    if (grp.kind === 'single' && nodes.length !== 1) out.push(`single group ${k} has ${nodes.length} nodes`);
    // An update batch binds one span per arena (emit-update-batch.ts), not one binding per tensor.
    if (grp.kind === 'updateBatch') {
      const key = batchKey(g, nodes[0]);
      if (key === undefined || nodes.length < 2 || nodes.length > maxBatchUpdates || nodes.some((n) => batchKey(g, n) !== key))
        out.push(`group ${k} (${ops}) is not 2 to ${maxBatchUpdates} updates with one batch key`);
      const written = new Set(nodes.flatMap((n) => n.outputs));
      if (nodes.some((n) => n.inputs.some((x) => written.has(x)))) out.push(`group ${k} (${ops}): an update reads what another one writes`);
    } else if (grp.kind !== 'single' && grp.kind !== 'lossUpdate') {
      const made = new Set<ValueId>(nodes.flatMap((n) => n.outputs));
      const external = new Set(nodes.flatMap((n) => n.inputs).filter((v) => !made.has(v)));
      const stored = [...made].filter((v) => !internal.has(v));
      if (external.size + stored.length > maxGroupBindings) out.push(`group ${k} (${ops}) needs ${external.size + stored.length} bindings`);
      // An elementwise chain stores only its last result; a matmul epilogue also an f32 intermediate that something after it reads.
      const last = grp.nodes[grp.nodes.length - 1];
      const storedOk = (v: ValueId) => internal.has(v) || (grp.kind === 'matmulEpilogue' && g.values[v].dtype === 'f32' && readers[v].some((r) => r > last));
      if (chain.length && nodes.slice(0, -1).some((n) => n.outputs.some((v) => !storedOk(v))))
        out.push(`group ${k} (${ops}) stores an intermediate`);
    }
  });
  return out;
}

describe('fuse pass', () => {
  it('random models: every node in one group, internal values stay inside it, within 8 bindings', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...optimizers), fc.boolean(), optionsArb, ({ graph }, optimizer, clip, opts) => {
        const { step } = buildStep(graph, { optimizer, clipNorm: clip ? 1 : undefined });
        const f = fuse(step, opts);
        expect(fusionProblems(step, f)).toEqual([]);
        expect(groupProblems(step, f)).toEqual([]);
        expect(planViolations(planMemory(step, { fusion: f }))).toEqual([]);
        if (!opts.matmulUpdate) expect(f.groups.some((grp) => grp.kind === 'matmulUpdate')).toBe(false);
        if (!opts.matmulNorm) expect(f.groups.some((grp) => grp.kind === 'matmulNorm' || grp.kind === 'normSum')).toBe(false);
        if (!opts.updateBatch) expect(f.groups.some((grp) => grp.kind === 'updateBatch')).toBe(false);
        if (!opts.reduceUpdate) expect(f.groups.some((grp) => grp.kind === 'reduceUpdate')).toBe(false);
      }),
      { numRuns: 60 },
    ));

  it('random models: the step run inside its fused plan equals the plain step, bit for bit', () =>
    fc.assert(
      fc.property(arbitraryModel, fc.constantFrom(...optimizers), fc.constantFrom({}, { clipNorm: 0.05 }, { clipValue: 0.01 }), fc.integer(),
        ({ recipe, graph }, optimizer, clip, seed) => {
          const built = buildStep(graph, { optimizer, ...clip }); // the pipeline fuses by default
          const feeds = stepFeeds(built.step, randomFeeds(graph, seed, { vocab: { tokens: recipe.vocab, targets: recipe.vocab } }), { lr: 0.1, weightDecay: 0.01 });
          expect(bitDifferences(plannedStep(built, feeds), plainStep(built.step, feeds))).toEqual([]);
        }),
      { numRuns: 40 },
    ));

  it('no options, no groups: every node its own', () => {
    const { step } = buildStep(fc.sample(arbitraryModel, { numRuns: 1, seed: 3 })[0].graph, { optimizer: 'lomo' });
    const f = fuse(step, none);
    expect(f.internal).toEqual([]);
    expect(f.groups.every((grp, i) => grp.kind === 'single' && grp.nodes[0] === i)).toBe(true);
  });

  const models: [string, ModelDef][] = [['mlp', mlp], ['gpt', gpt], ['llama', llama]];
  for (const [name, def] of models)
    it(`${name} tiny: the invariant holds for every optimizer, with checkpointing and clip-norm`, () => {
      for (const optimizer of optimizers)
        for (const checkpoint of [{ kind: 'none' }, { kind: 'blocks' }] as const) {
          const c = compileStep(def, { preset: 'tiny', optimizer, checkpoint, clipNorm: 1 });
          expect(fusionProblems(c.step, c.fusion)).toEqual([]);
          expect(groupProblems(c.step, c.fusion)).toEqual([]);
          expect(planViolations(c.plan)).toEqual([]);
        }
    });

  for (const [name, def] of [['gpt', gpt], ['llama', llama]] as const)
    it(`${name} tiny, LOMO: every weight-gradient matmul is fused with its update; fewer gradient bytes, a valid plan`, () => {
      const fused = compileStep(def, { preset: 'tiny', optimizer: 'lomo' });
      const plain = compileStep(def, { preset: 'tiny', optimizer: 'lomo', fusion: none });
      const updates = fused.fusion.groups.filter((grp) => grp.kind === 'matmulUpdate');
      const matmulGrads = fused.step.params.filter((p) => fused.step.nodes.some((n) => n.op === 'matmul' && n.outputs[0] === fused.step.grads![p.name]));
      expect(updates.length).toBe(matmulGrads.length);
      expect(updates.length).toBeGreaterThan(0);
      // The gradient of each fused update has no storage at all.
      for (const grp of updates) expect(fused.plan.bufferOf[fused.step.nodes[grp.nodes[0]].outputs[0]]).toBe(-1);
      expect(memoryReport(fused.plan).most.grads).toBeLessThan(memoryReport(plain.plan).most.grads);
      expect(fused.plan.peak).toBeLessThanOrEqual(plain.plan.peak);
      expect(planViolations(fused.plan)).toEqual([]);
    });

  it('sgd and adamw keep every gradient: no matmulUpdate groups outside LOMO', () => {
    for (const optimizer of ['sgd', 'adamw'] as const) {
      const c = compileStep(gpt, { preset: 'tiny', optimizer });
      expect(c.fusion.groups.filter((grp) => grp.kind === 'matmulUpdate')).toEqual([]);
      for (const v of Object.values(c.step.grads!)) expect(c.plan.bufferOf[v]).toBeGreaterThanOrEqual(0);
    }
  });

  it('llama-7b f16 under LOMO: the fused plan is valid and no larger than the unfused one', () => {
    const cfg = { preset: 'llama-7b', dtype: 'f16', optimizer: 'lomo', checkpoint: { kind: 'blocks' } } as const;
    const fused = compileStep(llama, cfg);
    const plain = compileStep(llama, { ...cfg, fusion: none });
    expect(planViolations(fused.plan)).toEqual([]);
    expect(fused.plan.peak).toBeLessThan(plain.plan.peak);
  });
});
