import { compileProgram } from './compiler/compile-program.ts';
import llama from './models/llama.ts';
import { acquireDevice } from './runtime/webgpu/node.ts';
import { createExecutor } from './runtime/webgpu/executor.ts';
const c = compileProgram(llama, { preset: 'tiny', optimizer: 'adamw', checkpoint: { kind: 'blocks' }, clipNorm: 1 });
const acq = await acquireDevice(c.program);
const ex = await createExecutor(acq.device, c.program);
const seen = new Set<string>();
const rows: [string, number, number][] = [];
for (let i = 0; i < c.program.dispatches.length; i++) {
  const d = c.program.dispatches[i];
  if (seen.has(d.shader)) continue; seen.add(d.shader);
  const enc = acq.device.createCommandEncoder(); ex.encodeRange(enc, i, i + 1); const t0 = performance.now(); acq.device.queue.submit([enc.finish()]); await acq.device.queue.onSubmittedWorkDone(); rows.push([d.shader, performance.now() - t0, c.program.shaders[d.shader].length]);
}
rows.sort((a, b) => b[1] - a[1]); for (const r of rows.slice(0, 10)) console.log(r[1].toFixed(0), r[0], 'chars', r[2]);
console.log('total', rows.reduce((a, b) => a + b[1], 0).toFixed(0));
process.exit(0);
