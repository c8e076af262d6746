// Runs a StepProgram on a WebGPU device: allocates exactly the plan's arenas, compiles every
// shader and builds every bind group once, and records the whole step into one compute pass of
// one command encoder (no readback inside a step). Reads and writes go through the queue.
import { slotRanges, type BufferRef, type StepProgram, type StorageDType, type TensorSlot } from '../../contract/program.ts';
import { GpuError, watchDevice, type DeviceWatch } from './guard.ts';
import { fromDeviceBytes, toDeviceBytes, type HostArray } from './host-data.ts';
import { dispatchName, ProgramError, storageReadWrite, validateProgram } from './validate.ts';
import { numel } from '../../contract/units.ts';

export interface Executor {
  readonly program: StepProgram;
  readonly device: GPUDevice;
  readonly watch: DeviceWatch;
  /** Bytes allocated for the arenas: the plan's peak. */
  readonly arenaBytes: number;
  /** Bytes allocated besides (the uniform buffer). */
  readonly overheadBytes: number;
  /** Distinct shaders compiled, and how long compiling them took. */
  readonly shaderCount: number;
  readonly compileMs: number;
  /** Uploads `data` (host values of the slot's dtype; f16 slots take Float32Array) into the slot. */
  write(slot: BufferRef & { readonly dtype?: StorageDType; readonly pieces?: readonly BufferRef[] }, data: ArrayLike<number>): void;
  /** Reads slots back in one copy and one map. */
  readMany(slots: readonly (BufferRef & { readonly dtype: StorageDType; readonly shape?: readonly number[]; readonly pieces?: readonly BufferRef[] })[]): Promise<HostArray[]>;
  read(slot: TensorSlot): Promise<HostArray>;
  /** Records the whole step into `encoder` (one compute pass). */
  encode(encoder: GPUCommandEncoder, timestampWrites?: GPUComputePassTimestampWrites): void;
  /** Records dispatches [from, to) as one compute pass (profiles run one at a time). */
  encodeRange(encoder: GPUCommandEncoder, from: number, to: number, timestampWrites?: GPUComputePassTimestampWrites): void;
  /** Records a copy of `slot` into `dst` at `dstOffset` (after the step, in the same encoder). */
  copyOut(encoder: GPUCommandEncoder, slot: BufferRef & { readonly pieces?: readonly BufferRef[] }, dst: GPUBuffer, dstOffset?: number): void;
  /**
   * The first dispatch whose recording WebGPU rejects, each validated in a command buffer of its
   * own (never submitted): to name the dispatch behind a step's validation error.
   */
  findInvalid(): Promise<{ readonly index: number; readonly message: string } | undefined>;
  /**
   * Records one workgroup of each distinct shader's first dispatch: drivers that compile at first
   * use (lavapipe) compile everything here. Cheaper than a whole step, and immune to inputs that
   * make a step slow (all-zero token ids send every embedding gradient to one row).
   */
  encodeWarmUp(encoder: GPUCommandEncoder): void;
  /** Records zeroing every arena (as when it was allocated). */
  clear(encoder: GPUCommandEncoder): void;
  /** Records and submits one whole step. */
  step(): void;
  destroy(): void;
}

export interface ExecutorOptions {
  readonly watch?: DeviceWatch;
}

interface Call {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
}

/** The number of elements a slot holds (from its shape, else its bytes). */
const countOf = (s: { bytes: number; dtype: StorageDType; shape?: readonly number[] }) =>
  s.shape ? numel(s.shape) : Math.floor(s.bytes / (s.dtype === 'f16' || s.dtype === 'bf16' ? 2 : 4));

/** Runs `f` inside a validation and an out-of-memory error scope; rethrows either, naming `doing`. */
async function scoped<T>(device: GPUDevice, watch: DeviceWatch, doing: string, f: () => T): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  const out = f();
  const validation = await watch.race(device.popErrorScope(), doing);
  const oom = await watch.race(device.popErrorScope(), doing);
  if (oom) throw new GpuError(`out of device memory while ${doing}: ${oom.message.trim()}`);
  if (validation) throw new GpuError(`WebGPU validation error while ${doing}: ${validation.message.trim()}`);
  return out;
}

export async function createExecutor(device: GPUDevice, program: StepProgram, opts: ExecutorOptions = {}): Promise<Executor> {
  const watch = opts.watch ?? watchDevice(device);
  watch.check('starting the executor');
  validateProgram(program, device.limits);

  const arenas = await scoped(device, watch, `allocating ${program.arenas.length} arenas (${program.arenas.reduce((a, b) => a + b, 0)} bytes)`, () =>
    program.arenas.map((size, i) =>
      device.createBuffer({
        label: `arena ${i}`,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      }),
    ),
  );

  // All dispatches' scalars in one uniform buffer, one aligned slot per distinct set of words:
  // dispatches with the same words (the same op at the same shape) share a slot.
  const align = device.limits.minUniformBufferOffsetAlignment;
  const longest = Math.max(16, ...program.dispatches.map((d) => d.uniforms.length * 4));
  const slotBytes = Math.ceil(longest / align) * align;
  const slotOf = new Map<string, number>();
  const offsets = program.dispatches.map((d) => {
    if (!d.uniforms.length) return -1;
    const key = d.uniforms.join(',');
    if (!slotOf.has(key)) slotOf.set(key, slotOf.size * slotBytes);
    return slotOf.get(key)!;
  });
  const uniformBytes = Math.max(16, slotOf.size * slotBytes);
  const uniforms = device.createBuffer({ label: 'uniforms', size: uniformBytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const words = new Uint32Array(uniformBytes / 4);
  program.dispatches.forEach((d, i) => offsets[i] >= 0 && words.set(d.uniforms, offsets[i] / 4));
  device.queue.writeBuffer(uniforms, 0, words);

  const release = () => {
    if (watch.hung) return; // a hung queue would block the destroy (guard.ts)
    for (const a of arenas) a.destroy();
    uniforms.destroy();
  };
  try {
    return await build();
  } catch (e) {
    release(); // a program that cannot run holds no device memory
    throw e;
  }

  async function build(): Promise<Executor> {
    // Explicit layouts: n writable storage buffers, then the uniforms (see validate.ts for why writable).
    const layouts = new Map<string, GPUBindGroupLayout>();
    const layoutOf = (storage: number, uniform: boolean) => {
      const key = `${storage}${uniform ? 'u' : ''}`;
      let l = layouts.get(key);
      if (!l) {
        const entries: GPUBindGroupLayoutEntry[] = Array.from({ length: storage }, (_, k) => ({
          binding: k,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: 'storage' },
        }));
        if (uniform) entries.push({ binding: storage, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } });
        l = device.createBindGroupLayout({ label: `layout ${key}`, entries });
        layouts.set(key, l);
      }
      return l;
    };

    // Every distinct shader compiled at once: Dawn compiles async pipelines on its worker threads.
    const t0 = performance.now();
    const firstUse = new Map<string, number>();
    program.dispatches.forEach((d, i) => firstUse.has(d.shader) || firstUse.set(d.shader, i));
    const pipelines = new Map<string, GPUComputePipeline>();
    await Promise.all(
      [...firstUse].map(async ([key, first]) => {
        const d = program.dispatches[first];
        const doing = `compiling shader '${key}'`;
        // A WGSL error is a validation error of createShaderModule: scoped, so it is not uncaptured.
        device.pushErrorScope('validation');
        const module = device.createShaderModule({ label: key, code: storageReadWrite(program.shaders[key]) });
        const layout = device.createPipelineLayout({ label: key, bindGroupLayouts: [layoutOf(d.bindings.length, d.uniforms.length > 0)] });
        const invalid = watch.race(device.popErrorScope(), doing);
        const made = watch.race(device.createComputePipelineAsync({ label: key, layout, compute: { module, entryPoint: 'main' } }), doing);
        made.catch(() => undefined);
        const failed = await invalid;
        try {
          if (failed) throw new Error(failed.message);
          pipelines.set(key, await made);
        } catch (e) {
          if (e instanceof Error && e.name === 'DeviceLostError') throw e;
          const info = await watch.race(module.getCompilationInfo(), doing);
          const lines = info.messages.filter((m) => m.type === 'error').map((m) => `  ${key}:${m.lineNum}:${m.linePos}: ${m.message}`);
          const why = lines.length ? lines.join('\n') : `  ${e instanceof Error ? e.message.trim() : String(e)}`;
          throw new ProgramError(`shader '${key}' (first used by ${dispatchName(program, first)}) does not compile:\n${why}`);
        }
      }),
    );
    const compileMs = performance.now() - t0;

    const calls: Call[] = await scoped(device, watch, 'creating bind groups', () =>
      program.dispatches.map((d, i) => {
        const pipeline = pipelines.get(d.shader)!;
        const entries: GPUBindGroupEntry[] = d.bindings.map((b, k) => ({
          binding: k,
          resource: { buffer: arenas[b.arena], offset: b.offset, size: Math.ceil(b.bytes / 4) * 4 },
        }));
        if (d.uniforms.length)
          entries.push({ binding: d.bindings.length, resource: { buffer: uniforms, offset: offsets[i], size: Math.ceil((d.uniforms.length * 4) / 16) * 16 } });
        // The label carries the dispatch index: Dawn's messages name it.
        const bindGroup = device.createBindGroup({ label: `#${i} ${d.label}`, layout: layoutOf(d.bindings.length, d.uniforms.length > 0), entries });
        return { pipeline, bindGroup, workgroups: d.workgroups };
      }),
    );

    const encodeRange = (encoder: GPUCommandEncoder, from: number, to: number, timestampWrites?: GPUComputePassTimestampWrites) => {
      const pass = encoder.beginComputePass({ label: program.name, ...(timestampWrites ? { timestampWrites } : {}) });
      let current: GPUComputePipeline | undefined;
      for (const c of calls.slice(from, to)) {
        if (c.workgroups[0] * c.workgroups[1] * c.workgroups[2] === 0) continue;
        if (c.pipeline !== current) pass.setPipeline((current = c.pipeline));
        pass.setBindGroup(0, c.bindGroup);
        pass.dispatchWorkgroups(c.workgroups[0], c.workgroups[1], c.workgroups[2]);
      }
      pass.end();
    };
    const encode = (encoder: GPUCommandEncoder, timestampWrites?: GPUComputePassTimestampWrites) => encodeRange(encoder, 0, calls.length, timestampWrites);

    /** Copies a slot's bytes (each piece in order, whole words) to `dst` from `at`. */
    const copyRanges = (enc: GPUCommandEncoder, slot: BufferRef & { readonly pieces?: readonly BufferRef[] }, dst: GPUBuffer, at: number) => {
      for (const r of slotRanges(slot)) {
        const n = Math.ceil(r.bytes / 4) * 4;
        enc.copyBufferToBuffer(arenas[r.arena], r.offset, dst, at, n);
        at += n;
      }
    };
    const readMany: Executor['readMany'] = async (slots) => {
      const sizes = slots.map((s) => Math.ceil(s.bytes / 4) * 4);
      const at: number[] = [];
      let total = 0;
      for (const size of sizes) {
        at.push(total);
        total += size;
      }
      const staging = device.createBuffer({ label: 'readback', size: Math.max(4, total), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      try {
        const enc = device.createCommandEncoder({ label: 'readback' });
        slots.forEach((s, i) => copyRanges(enc, s, staging, at[i]));
        device.queue.submit([enc.finish()]);
        await watch.race(staging.mapAsync(GPUMapMode.READ), 'reading tensors back');
        const bytes = staging.getMappedRange().slice(0);
        staging.unmap();
        return slots.map((s, i) => fromDeviceBytes(s.dtype, bytes.slice(at[i], at[i] + sizes[i]), countOf(s)));
      } finally {
        if (!watch.hung) staging.destroy(); // a hung queue would block the destroy (guard.ts)
      }
    };

    return {
      program,
      device,
      watch,
      arenaBytes: arenas.reduce((a, b) => a + b.size, 0),
      overheadBytes: uniforms.size,
      shaderCount: pipelines.size,
      compileMs,
      write(slot, data) {
        const bytes = toDeviceBytes(slot.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32'), data);
        if (bytes.byteLength > Math.ceil(slot.bytes / 4) * 4)
          throw new RangeError(`write: ${bytes.byteLength} bytes do not fit a slot of ${slot.bytes} bytes`);
        // A split tensor's pieces hold whole words, each but the last as large as the first.
        let from = 0;
        for (const r of slotRanges(slot)) {
          const n = Math.min(Math.ceil(r.bytes / 4) * 4, bytes.byteLength - from);
          if (n > 0) device.queue.writeBuffer(arenas[r.arena], r.offset, bytes, from, n);
          from += n;
        }
      },
      readMany,
      read: async (slot) => (await readMany([slot]))[0],
      encode,
      encodeRange,
      copyOut: (encoder, slot, dst, dstOffset = 0) => copyRanges(encoder, slot, dst, dstOffset),
      encodeWarmUp(encoder) {
        const pass = encoder.beginComputePass({ label: `${program.name} warm-up` });
        const done = new Set<GPUComputePipeline>();
        for (const c of calls) {
          if (done.has(c.pipeline) || c.workgroups[0] * c.workgroups[1] * c.workgroups[2] === 0) continue;
          done.add(c.pipeline);
          pass.setPipeline(c.pipeline);
          pass.setBindGroup(0, c.bindGroup);
          pass.dispatchWorkgroups(1, 1, 1);
        }
        pass.end();
      },
      async findInvalid() {
        for (let i = 0; i < calls.length; i++) {
          device.pushErrorScope('validation');
          const enc = device.createCommandEncoder({ label: `validating dispatch #${i}` });
          encodeRange(enc, i, i + 1);
          enc.finish();
          const error = await watch.race(device.popErrorScope(), 'looking for the invalid dispatch');
          if (error) return { index: i, message: error.message.trim() };
        }
        return undefined;
      },
      clear(encoder) {
        for (const a of arenas) encoder.clearBuffer(a);
      },
      step() {
        const enc = device.createCommandEncoder({ label: program.name });
        encode(enc);
        device.queue.submit([enc.finish()]);
      },
      destroy() {
        if (watch.hung) return; // a hung queue would block the destroy (guard.ts)
        for (const a of arenas) a.destroy();
        uniforms.destroy();
      },
    };
  }
}
