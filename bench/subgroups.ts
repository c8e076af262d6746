// Subgroup reductions, measured: `node bin/run-ts.js bench/subgroups.ts [rounds]` compiles
// models/gpt.ts preset `small` under LOMO for both kernel targets, each with and without
// subgroups (target.ts `subgroups`), runs the four trainers on one device (the adapter must offer
// `subgroups`), warms each up, then steps them in interleaved rounds (A/B alternated, so load from
// other processes falls on all alike) and prints each one's median and best step, and how many
// of its dispatches use subgroup operations. Not a test: the numbers are the machine's.
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { kernelTargets, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import gpt from '../models/gpt.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
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
}
const runs: Run[] = [];
let data: ReturnType<typeof dataInputs> = [];
let vocab: Record<string, number> = {};
for (const name of ['cpu', 'gpu'] as TargetName[]) {
  for (const subgroups of [false, true]) {
    const c = compileProgram(gpt, { preset: 'small', optimizer: 'lomo', target: { ...kernelTargets[name], subgroups } });
    const uses = c.program.dispatches.filter((d) => c.program.shaders[d.shader].includes('enable subgroups;')).length;
    const label = `${name} target, ${subgroups ? `subgroups (${uses} of ${c.program.dispatches.length} dispatches)` : `shared memory (${c.program.dispatches.length} dispatches)`}`;
    const trainer = await createTrainer({ device: acq, program: c.program, seed: 1 });
    data = dataInputs(c.program);
    vocab = idRanges(c.step);
    const t0 = performance.now();
    for (let k = 0; k < 2; k++) await trainer.step(randomBatch(data, vocab, k), { lr: 0.01, weightDecay: 0 });
    console.log(`${label}: warm-up ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    runs.push({ name: label, trainer, ms: [] });
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
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\n| gpt small, lomo, ${rounds} rounds | median ms | best ms |\n|---|---|---|`);
for (const run of runs) console.log(`| ${run.name} | ${median(run.ms).toFixed(1)} | ${Math.min(...run.ms).toFixed(1)} |`);
for (const run of runs) run.trainer.destroy();
acq.device.destroy();
