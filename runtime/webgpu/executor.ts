// Runs a StepProgram on a WebGPU device: allocates exactly the plan's arenas, builds every
// pipeline and bind group once, and records the whole step into one command encoder and one
// compute pass (no readback inside a step).
import type { BufferRef, StepProgram, TensorSlot } from '../program.ts';

export interface Executor {
  readonly program: StepProgram;
  /** Bytes allocated for the arenas: the plan's peak. */
  readonly arenaBytes: number;
  /** Bytes allocated besides (the uniform buffer and readback staging). */
  readonly overheadBytes: number;
  write(slot: BufferRef, data: Float32Array | Int32Array | Uint16Array): void;
  read(slot: TensorSlot): Promise<Float32Array | Int32Array>;
  /** Records and submits one whole step. */
  step(): void;
  destroy(): void;
}

const uniformAlign = 256;

export function createExecutor(device: GPUDevice, program: StepProgram): Executor {
  const arenas = program.arenas.map((size, i) =>
    device.createBuffer({
      label: `arena ${i}`,
      size: Math.max(4, Math.ceil(size / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }),
  );
  // All dispatches' scalars in one uniform buffer, each at an aligned offset.
  const offsets: number[] = [];
  let uniformBytes = 0;
  for (const d of program.dispatches) {
    offsets.push(uniformBytes);
    if (d.uniforms.length) uniformBytes += Math.ceil((d.uniforms.length * 4) / uniformAlign) * uniformAlign;
  }
  const uniforms = device.createBuffer({ label: 'uniforms', size: Math.max(16, uniformBytes), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const words = new Uint32Array(Math.max(4, uniformBytes / 4));
  program.dispatches.forEach((d, i) => words.set(d.uniforms, offsets[i] / 4));
  device.queue.writeBuffer(uniforms, 0, words);

  const pipelines = new Map<string, GPUComputePipeline>();
  const pipelineOf = (key: string) => {
    let p = pipelines.get(key);
    if (!p) {
      const module = device.createShaderModule({ label: key, code: program.shaders[key] });
      p = device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main' } });
      pipelines.set(key, p);
    }
    return p;
  };
  const calls = program.dispatches.map((d, i) => {
    const pipeline = pipelineOf(d.shader);
    const entries: GPUBindGroupEntry[] = d.bindings.map((b, k) => ({
      binding: k,
      resource: { buffer: arenas[b.arena], offset: b.offset, size: Math.ceil(b.bytes / 4) * 4 },
    }));
    if (d.uniforms.length)
      entries.push({ binding: d.bindings.length, resource: { buffer: uniforms, offset: offsets[i], size: Math.ceil((d.uniforms.length * 4) / 16) * 16 } });
    const bindGroup = device.createBindGroup({ label: d.label, layout: pipeline.getBindGroupLayout(0), entries });
    return { pipeline, bindGroup, workgroups: d.workgroups };
  });

  const largest = Math.max(16, ...[program.loss, ...program.params, ...program.state, ...program.inputs].map((s) => Math.ceil(s.bytes / 4) * 4));
  const staging = device.createBuffer({ label: 'readback', size: largest, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  let reading = Promise.resolve();

  return {
    program,
    arenaBytes: program.arenas.reduce((a, b) => a + b, 0),
    overheadBytes: uniforms.size + staging.size,
    write(slot, data) {
      device.queue.writeBuffer(arenas[slot.arena], slot.offset, data.buffer, data.byteOffset, Math.ceil(data.byteLength / 4) * 4);
    },
    read(slot) {
      // One staging buffer: reads queue up behind each other.
      const next = reading.then(async () => {
        const size = Math.ceil(slot.bytes / 4) * 4;
        const enc = device.createCommandEncoder();
        enc.copyBufferToBuffer(arenas[slot.arena], slot.offset, staging, 0, size);
        device.queue.submit([enc.finish()]);
        await staging.mapAsync(GPUMapMode.READ, 0, size);
        const copy = staging.getMappedRange(0, size).slice(0);
        staging.unmap();
        return slot.dtype === 'i32' ? new Int32Array(copy) : new Float32Array(copy);
      });
      reading = next.then(() => undefined, () => undefined);
      return next;
    },
    step() {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      for (const c of calls) {
        pass.setPipeline(c.pipeline);
        pass.setBindGroup(0, c.bindGroup);
        pass.dispatchWorkgroups(c.workgroups[0], c.workgroups[1], c.workgroups[2]);
      }
      pass.end();
      device.queue.submit([enc.finish()]);
    },
    destroy() {
      for (const a of arenas) a.destroy();
      uniforms.destroy();
      staging.destroy();
    },
  };
}
