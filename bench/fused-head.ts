// The fused LM head against the unfused one (issue #13): step time of one model compiled with
// --fuse-loss on and off, on the same WebGPU adapter, rounds alternating the two (one step each)
// after a warm-up, median per row. Not part of `npm run bench` (it is one question's table):
// `node bin/run-ts.js bench/fused-head.ts [steps]` prints one JSON line per model, which
// scripts that compare two builds of lomoc (run alternately) collect into a table.
//
// Measured on lavapipe (2 shared cores, LOMO, cpu kernel target), issue #13's change A/B: the
// build before it (the head's own 8 x 8 strided matmul) and after (the ordinary matmul's tile and
// vec4 reads, a tied head's chunk transposed first), run alternately, two rounds each, 9 steps
// after 2 warm-up ones; the median per-round ratio fused / unfused (its step ms in brackets):
// | model                               | before          | after           |
// |-------------------------------------|-----------------|-----------------|
// | gpt small (tied, V 256)             | 0.95, 1.05      | 1.06, 1.02      |
// | gpt small, 1 layer, V 8192 (tied)   | 1.40, 1.52 (592 / 394) | 0.97, 0.95 (408 / 400) |
// | llama 1 layer, V 8192, D 128, untied| 1.63, 1.55 (660 / 439) | 1.01, 1.00 (799 / 725) |
// The absolute times moved with the machine's load (other processes); the ratios did not.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import gpt from '../models/gpt.ts';
import llama from '../models/llama.ts';
import { randomBatch } from '../runtime/webgpu/init.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs } from '../runtime/webgpu/trainer.ts';

interface HeadModel {
  readonly name: string;
  readonly def: ModelDef;
  readonly preset: string;
  readonly sets: readonly string[];
}

/** gpt small as it is (tied head, vocab 256); one layer at vocab 8192, tied (gpt) and untied (llama). */
export const headModels: readonly HeadModel[] = [
  { name: 'gpt small (tied, V 256)', def: gpt, preset: 'small', sets: [] },
  { name: 'gpt small, 1 layer, V 8192 (tied)', def: gpt, preset: 'small', sets: ['layers=1', 'vocab=8192'] },
  { name: 'llama 1 layer, V 8192, D 128 (untied)', def: llama, preset: 'tiny', sets: ['layers=1', 'vocab=8192', 'width=128', 'heads=4', 'ffn=344', 'batch=8', 'seq=128'] },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export interface HeadRow {
  readonly name: string;
  readonly fusedMs: number;
  readonly unfusedMs: number;
  /** The median over rounds of fused / unfused within the round (back to back: robust to load drifting between rounds). */
  readonly ratio: number;
}

export async function benchFusedHead(steps = 7, only?: string): Promise<HeadRow[]> {
  const rows = [];
  for (const m of headModels.filter((m) => !only || m.name.includes(only))) {
    const compiled = [true, false].map((fuseLoss) => compileProgram(m.def, { preset: m.preset, sets: m.sets, optimizer: 'lomo', target: 'cpu', fuseLoss }));
    // One device per model, with the larger of the two programs' needs (the unfused one's).
    const acq = await acquireDevice(compiled[1].program);
    const runs = await Promise.all(compiled.map(async (c) => ({ c, t: await createTrainer({ device: acq, program: c.program, seed: 1 }), ms: [] as number[] })));
    const slots = dataInputs(runs[0].c.program);
    const vocab = idRanges(runs[0].c.step);
    for (let k = -2; k < steps; k++) {
      const batch = randomBatch(slots, vocab, 100 + k);
      for (const r of k % 2 ? runs : [...runs].reverse()) {
        const t0 = performance.now();
        await r.t.step(batch, { lr: 0.01, weightDecay: 0 });
        if (k >= 0) r.ms.push(performance.now() - t0);
      }
    }
    runs.forEach((r) => r.t.destroy());
    acq.device.destroy();
    rows.push({ name: m.name, fusedMs: median(runs[0].ms), unfusedMs: median(runs[1].ms), ratio: median(runs[0].ms.map((x, i) => x / runs[1].ms[i])) });
  }
  return rows;
}

if (import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  for (const r of await benchFusedHead(Number(process.argv[2] ?? 7), process.argv[3])) console.log(JSON.stringify(r));
  process.exit(0);
}
