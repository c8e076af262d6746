// Subgroup reductions, measured: `node bin/run-ts.js bench/subgroups.ts [rounds]` compiles
// models/gpt.ts preset `small` under LOMO for both kernel targets, each with and without
// subgroups (target.ts `subgroups`), runs the four trainers on one device (the adapter must offer
// `subgroups`), warms each up, then steps them in interleaved rounds (A/B alternated, so load from
// other processes falls on all alike) and prints each one's median and best step, and how many
// of its dispatches use subgroup operations; then profiles each step's dispatches (timing.ts, in
// alternated rounds too) and sums the time of the dispatches that differ, which the whole step's
// noise hides. Not a test: the numbers are the machine's.
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { kernelTargets, type TargetName } from '../compiler/codegen/wgsl/target.ts';
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
    runs.push({ name: label, trainer, ms: [], changed, changedMs: [] });
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
    run.changedMs.push(p.dispatches.filter((d) => run.changed.has(d.index)).reduce((a, d) => a + d.ms, 0));
  }
}
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\n| gpt small, lomo, ${rounds} rounds | step: median ms | best ms | the subgroup dispatches (profiled): median ms | best ms |\n|---|---|---|---|---|`);
const ms = (xs: readonly number[]) => `${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)}`;
for (const run of runs) console.log(`| ${run.name} | ${ms(run.ms)} | ${ms(run.changedMs)} |`);
for (const run of runs) run.trainer.destroy();
acq.device.destroy();
