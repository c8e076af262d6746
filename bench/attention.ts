// Attention forward + backward, measured: `node bin/run-ts.js bench/attention.ts [rounds]` times
// one attention and its attentionGrad (q, k, v, dout inputs; y, lse, dq, dk, dv out; f32, causal)
// per kernel choice at the gpt small shape (B 8, H 4, T 128, Dh 32) and GPT-2-like ones
// (H 12, Dh 64; T 256 at B 8, and T 1024 at B 1), on the process's adapter: the gpu target's flash
// kernels (emit-flash-attention.ts), the same target's row kernels (64 threads a row each, what
// it ran before), and the cpu target's row kernels (8 threads x 4 rows, lavapipe's). Rounds
// alternate the kernels (A/B/C, A/B/C, ...) so load from other processes falls on all alike; each
// reports its best and median time from the submit to the queue's completion, no readback.
import { lowerStep } from '../compiler/codegen/wgsl/lower.ts';
import { groupScratch } from '../compiler/codegen/wgsl/emitters.ts';
import { kernelTargets, type KernelTarget } from '../compiler/codegen/wgsl/target.ts';
import { GraphBuilder } from '../compiler/ir/builder.ts';
import { noFusion } from '../compiler/ir/fusion.ts';
import type { Graph } from '../compiler/ir/types.ts';
import { planMemory } from '../compiler/passes/plan-memory.ts';
import { randomTensor } from '../compiler/reference/random.ts';
import { createExecutor } from '../runtime/webgpu/executor.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';

const loc = { file: 'bench/attention.ts', line: 1, col: 1 };

function attentionStep(shape: readonly number[]): Graph {
  const b = new GraphBuilder('attention');
  const [q, k, v, dout] = ['q', 'k', 'v', 'dout'].map((name) => {
    const id = b.value(shape, 'f32', 'input', loc, name);
    b.inputs.push({ name, value: id, loc });
    return id;
  });
  const attrs = { scale: 1 / Math.sqrt(shape[shape.length - 1]), causal: true };
  const [, lse] = b.node('attention', [q, k, v], attrs, loc, 'forward');
  b.node('attentionGrad', [q, k, v, lse, dout], attrs, loc, 'backward');
  const [loss] = b.node('fill', [], { value: 0, shape: [], dtype: 'f32' }, loc, 'forward', 'loss');
  return { name: b.name, values: b.values, nodes: b.nodes, inputs: b.inputs, params: b.params, loss };
}

const kernels: readonly (readonly [string, KernelTarget])[] = [
  ['gpu flash', kernelTargets.gpu],
  ['gpu rows (before)', { ...kernelTargets.gpu, attention: { ...kernelTargets.gpu.attention, flash: undefined } }],
  ['cpu rows', kernelTargets.cpu],
];

const shapes: readonly (readonly [string, number[]])[] = [
  ['gpt small B8 H4 T128 Dh32', [8, 4, 128, 32]],
  ['GPT-2-like B8 H12 T256 Dh64', [8, 12, 256, 64]],
  ['GPT-2 B1 H12 T1024 Dh64', [1, 12, 1024, 64]],
];

async function main(rounds: number): Promise<void> {
  const { device, description } = await acquireDevice({
    limits: { maxStorageBuffersPerShaderStage: 8, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupStorageSize: 16384 },
    arenas: [],
    features: [],
  });
  console.log(`adapter: ${description}; ${rounds} rounds, A/B/C alternated; ms per attention forward + backward (best / median)`);
  for (const [name, shape] of shapes) {
    const g = attentionStep(shape);
    const fusion = noFusion(g.nodes.length);
    const runs = await Promise.all(kernels.map(async ([, target]) => {
      const plan = planMemory(g, { fusion, scratch: groupScratch(g, fusion, target) });
      const program = lowerStep(g, plan, fusion, target);
      const ex = await createExecutor(device, program);
      for (const s of program.inputs) ex.write(s, randomTensor(s.shape, s.name.length, 'f32', 'f32').data as Float32Array);
      ex.step(); // compiles the pipelines
      await device.queue.onSubmittedWorkDone();
      return ex;
    }));
    const times: number[][] = kernels.map(() => []);
    for (let r = 0; r < rounds; r++)
      for (let k = 0; k < kernels.length; k++) {
        const t0 = performance.now();
        runs[k].step();
        await device.queue.onSubmittedWorkDone();
        times[k].push(performance.now() - t0);
      }
    for (const ex of runs) ex.destroy();
    const cells = times.map((ts, k) => {
      const s = [...ts].sort((a, b) => a - b);
      return `${kernels[k][0]} ${s[0].toFixed(1)} / ${s[s.length >> 1].toFixed(1)}`;
    });
    console.log(`${name}: ${cells.join('; ')}`);
  }
}

await main(Number(process.argv[2] ?? 5));
process.exit(0); // Dawn's device would keep the process alive
