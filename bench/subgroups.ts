// Subgroup reductions, measured: `node bin/run-ts.js bench/subgroups.ts [rounds]` compiles
// models/gpt.ts preset `small` under LOMO for both kernel targets, each with and without
// subgroups (target.ts `subgroups`), runs the four trainers on one device (the adapter must offer
// `subgroups`), warms each up, then steps them in interleaved rounds (A/B alternated, so load from
// other processes falls on all alike) and prints each one's median and best step, and how many
// of its dispatches use subgroup operations; then profiles each step's dispatches (timing.ts, in
// alternated rounds too) and sums the time of the dispatches that differ, which the whole step's
// noise hides; then times lone row kernels (A/B alternated, 5 dispatches a sample, median of 50).
// Not a test: the numbers are the machine's.
//
// lavapipe (Mesa 25.0.7, 8-lane subgroups, 2 cores shared with other jobs at load 12-20), medians:
//   gpt small step, 16 rounds: cpu target (1 of 294 dispatches changes: the loss mean) 1279 shared,
//   1133 subgroups (noise: the changed dispatch takes 0.1 ms either way); gpu target (63 of 294
//   change) 3470 and 3545 ms whole steps, but its changed dispatches, profiled, 735 -> 501 ms
//   (layerNorm 217 -> 97, layerNormGrad 436 -> 306; earlier runs 552 -> 420, 507 -> 341).
//   Lone kernels: layerNorm [1024, 128] gpu 9.8 -> 6.4 ms (17.6 -> 8.1 in another run); softmax
//   [1024, 1000] gpu 43.6 -> 33.8 (48.3 -> 36.0); softmax [64, 1000] cpu 2.3 -> 1.6 (1.4 -> 1.1);
//   rows of 256 threads mixed: softmax [64, 8192] cpu 32.8 -> 39.8, 17.5 -> 22.0, 16.8 -> 15.0.
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { groupScratch } from '../compiler/codegen/wgsl/emitters.ts';
import { lowerStep } from '../compiler/codegen/wgsl/lower.ts';
import { kernelTargets, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import { GraphBuilder } from '../compiler/ir/builder.ts';
import { noFusion } from '../compiler/ir/fusion.ts';
import type { Graph, Loc, Shape } from '../compiler/ir/types.ts';
import { planMemory } from '../compiler/passes/plan-memory.ts';
import { createExecutor } from '../runtime/webgpu/executor.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { profileStep } from '../runtime/webgpu/timing.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';

const rounds = Number(process.argv[2] ?? 10);
const acq = await acquireDevice();
if (!acq.device.features.has('subgroups')) throw new Error(`${acq.description} offers no subgroups`);
const info = acq.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
console.log(`${acq.description}; subgroup sizes ${info.subgroupMinSize}..${info.subgroupMaxSize}`);

interface Run {
  readonly name: string;
  readonly trainer: Trainer;
  readonly ms: number[];
  /** Indices of the dispatches that use subgroups in this target's subgroups program. */
  readonly changed: Set<number>;
  readonly changedMs: number[];
  /** Per op (the dispatch label's first word) of the changed dispatches: ms of each profile. */
  readonly byOp: Map<string, number[]>;
}
const runs: Run[] = [];
let data: ReturnType<typeof dataInputs> = [];
let vocab: Record<string, number> = {};
for (const name of ['cpu', 'gpu'] as TargetName[]) {
  const changed = new Set<number>();
  for (const subgroups of [true, false]) {
    const c = compileProgram(gpt, { preset: 'small', optimizer: 'lomo', target: { ...kernelTargets[name], subgroups } });
    c.program.dispatches.forEach((d, i) => c.program.shaders[d.shader].includes('enable subgroups;') && changed.add(i));
    const uses = changed.size;
    const label = `${name} target, ${subgroups ? `subgroups (${uses} of ${c.program.dispatches.length} dispatches)` : `shared memory (${c.program.dispatches.length} dispatches)`}`;
    const trainer = await createTrainer({ device: acq, program: c.program, seed: 1 });
    data = dataInputs(c.program);
    vocab = idRanges(c.step);
    const t0 = performance.now();
    for (let k = 0; k < 2; k++) await trainer.step(randomBatch(data, vocab, k), { lr: 0.01, weightDecay: 0 });
    console.log(`${label}: warm-up ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    runs.push({ name: label, trainer, ms: [], changed, changedMs: [], byOp: new Map() });
  }
}
for (let r = 0; r < rounds; r++) {
  // Alternate the order each round, so neither side always runs first.
  for (const run of r % 2 ? [...runs].reverse() : runs) {
    const t0 = performance.now();
    await run.trainer.step(randomBatch(data, vocab, 100 + r), { lr: 0.01, weightDecay: 0 });
    run.ms.push(performance.now() - t0);
  }
}
for (let r = 0; r < Math.max(3, Math.floor(rounds / 2)); r++) {
  for (const run of r % 2 ? [...runs].reverse() : runs) {
    const p = await profileStep(run.trainer.executor);
    const changed = p.dispatches.filter((d) => run.changed.has(d.index));
    run.changedMs.push(changed.reduce((a, d) => a + d.ms, 0));
    const ops = new Map<string, number>();
    for (const d of changed) ops.set(d.label.split(' ')[0], (ops.get(d.label.split(' ')[0]) ?? 0) + d.ms);
    for (const [op, t] of ops) run.byOp.set(op, [...(run.byOp.get(op) ?? []), t]);
  }
}
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\n| gpt small, lomo, ${rounds} rounds | step: median ms | best ms | the subgroup dispatches (profiled): median ms | best ms |\n|---|---|---|---|---|`);
const ms = (xs: readonly number[]) => `${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)}`;
for (const run of runs) console.log(`| ${run.name} | ${ms(run.ms)} | ${ms(run.changedMs)} |`);
console.log('\n| op (the changed dispatches, summed per profile) | ' + runs.map((r) => r.name.replace(/ \(.*/, '')).join(' | ') + ' |\n|---|' + runs.map(() => '---|').join(''));
const ops = [...new Set(runs.flatMap((r) => [...r.byOp.keys()]))];
for (const op of ops) console.log(`| ${op} | ${runs.map((r) => (r.byOp.has(op) ? median(r.byOp.get(op)!).toFixed(2) : '')).join(' | ')} |`);
for (const run of runs) run.trainer.destroy();

/** One `op` node over f32 inputs of `shapes` (zeros: the timing does not depend on the values). */
function opGraph(op: 'softmax' | 'layerNorm', shapes: readonly Shape[], attrs: object): Graph {
  const loc: Loc = { file: 'bench/subgroups.ts', line: 1, col: 1 };
  const b = new GraphBuilder(`bench-${op}`);
  const ids = shapes.map((s, i) => {
    const id = b.value(s, 'f32', 'input', loc, `x${i}`);
    b.inputs.push({ name: `x${i}`, value: id, loc });
    return id;
  });
  b.node(op, ids, attrs as never, loc, 'forward');
  const [loss] = b.node('fill', [], { value: 0, shape: [], dtype: 'f32' }, loc, 'forward', 'loss');
  return { name: b.name, values: b.values, nodes: b.nodes, inputs: b.inputs, params: b.params, loss };
}
const kernels: [TargetName, 'softmax' | 'layerNorm', Shape[], object][] = [
  ['cpu', 'softmax', [[64, 8192]], {}],
  ['cpu', 'softmax', [[64, 1000]], {}],
  ['gpu', 'softmax', [[1024, 1000]], {}],
  ['gpu', 'layerNorm', [[1024, 128], [128], [128]], { eps: 1e-5 }],
];
console.log('\n| lone kernel | shared memory: median ms | subgroups: median ms |\n|---|---|---|');
for (const [name, op, shapes, attrs] of kernels) {
  const g = opGraph(op, shapes, attrs);
  const fusion = noFusion(g.nodes.length);
  const sides = await Promise.all([false, true].map(async (subgroups) => {
    const target = { ...kernelTargets[name], subgroups };
    const plan = planMemory(g, { fusion, scratch: groupScratch(g, fusion, target) });
    const ex = await createExecutor(acq.device, lowerStep(g, plan, fusion, target));
    ex.step(); // pipelines compile at first use
    await acq.device.queue.onSubmittedWorkDone();
    return { ex, ms: [] as number[] };
  }));
  for (let r = 0; r < 50; r++)
    for (const side of r % 2 ? [...sides].reverse() : sides) {
      const t0 = performance.now();
      for (let k = 0; k < 5; k++) side.ex.step();
      await acq.device.queue.onSubmittedWorkDone();
      side.ms.push((performance.now() - t0) / 5);
    }
  console.log(`| ${op} [${shapes[0].join(', ')}], ${name} target | ${sides.map((s) => median(s.ms).toFixed(2)).join(' | ')} |`);
  for (const s of sides) s.ex.destroy();
}
acq.device.destroy();
