// Where a step's time goes, per dispatch. With the `timestamp-query` feature each dispatch runs
// in its own compute pass between two GPU timestamps; without it each dispatch is submitted and
// awaited alone, so its wall time includes one submit (about 40 µs on lavapipe).
// Profiling runs the step's kernels once more: on a training program that is one more update.
import type { StepProgram } from '../../contract/program.ts';
import type { Executor } from './executor.ts';

export interface DispatchTime {
  readonly index: number;
  readonly label: string;
  readonly shader: string;
  readonly ms: number;
}

export interface Profile {
  readonly source: 'timestamp-query' | 'wall-clock';
  readonly dispatches: readonly DispatchTime[];
  readonly totalMs: number;
}

/** Summed time per shader key, largest first. */
export function byShader(p: Profile): { shader: string; label: string; count: number; ms: number }[] {
  const out = new Map<string, { shader: string; label: string; count: number; ms: number }>();
  for (const d of p.dispatches) {
    const row = out.get(d.shader) ?? { shader: d.shader, label: d.label, count: 0, ms: 0 };
    row.count++;
    row.ms += d.ms;
    out.set(d.shader, row);
  }
  return [...out.values()].sort((a, b) => b.ms - a.ms);
}

/** Runs every dispatch of `ex` once, timing each. */
export async function profileStep(ex: Executor): Promise<Profile> {
  const { device, program, watch } = ex;
  const n = program.dispatches.length;
  if (device.features.has('timestamp-query')) {
    const chunk = 2048; // queries per set: WebGPU allows 4096
    const times: number[] = [];
    for (let from = 0; from < n; from += chunk) {
      const count = Math.min(chunk, n - from);
      const set = device.createQuerySet({ type: 'timestamp', count: 2 * count });
      const resolve = device.createBuffer({ size: 16 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      const read = device.createBuffer({ size: 16 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const enc = device.createCommandEncoder({ label: 'profile' });
      for (let k = 0; k < count; k++)
        ex.encodeRange(enc, from + k, from + k + 1, { querySet: set, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 });
      enc.resolveQuerySet(set, 0, 2 * count, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, 16 * count);
      device.queue.submit([enc.finish()]);
      await watch.race(read.mapAsync(GPUMapMode.READ), 'profiling the step');
      const ns = new BigUint64Array(read.getMappedRange().slice(0));
      read.unmap();
      for (let k = 0; k < count; k++) times.push(Number(ns[2 * k + 1] - ns[2 * k]) / 1e6);
      set.destroy();
      resolve.destroy();
      read.destroy();
    }
    return finish(program, times, 'timestamp-query');
  }
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const enc = device.createCommandEncoder({ label: 'profile' });
    ex.encodeRange(enc, i, i + 1);
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await watch.race(device.queue.onSubmittedWorkDone(), 'profiling the step');
    times.push(performance.now() - t0);
  }
  return finish(program, times, 'wall-clock');
}

function finish(program: StepProgram, times: readonly number[], source: Profile['source']): Profile {
  const dispatches = times.map((ms, index) => ({ index, label: program.dispatches[index].label, shader: program.dispatches[index].shader, ms }));
  return { source, dispatches, totalMs: times.reduce((a, b) => a + b, 0) };
}
