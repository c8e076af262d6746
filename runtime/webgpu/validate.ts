// Checks a StepProgram against the device before anything is allocated, so that a bad program
// fails naming its dispatch, not with a Dawn message about an unlabeled bind group.
//
// Every storage binding of a dispatch lives in an arena, and usually in the same one. WebGPU
// forbids a buffer to be used both read-only and writable in one dispatch ("includes writable
// usage and another usage in the same synchronization scope"), so the runtime binds every
// storage binding as writable storage (the executor declares it so: see storageReadWrite), and
// writable bindings of one buffer may not overlap ("Writable storage buffer binding aliasing"):
// a tensor read twice by one kernel must be bound once.
import type { BufferRef, Dispatch, StepProgram } from '../../contract/program.ts';

export class ProgramError extends Error {
  override readonly name = 'ProgramError';
}

export const dispatchName = (p: StepProgram, i: number): string => `dispatch #${i} '${p.dispatches[i].label}'`;

const range = (b: BufferRef) => `arena ${b.arena} bytes ${b.offset}..${b.offset + b.bytes}`;

/** Throws a ProgramError for the first problem found. */
export function validateProgram(p: StepProgram, limits: GPUSupportedLimits): void {
  const fail = (msg: string): never => {
    throw new ProgramError(`program '${p.name}': ${msg}`);
  };
  if (p.version !== 1) fail(`version ${String(p.version)} is not supported (expected 1)`);
  p.arenas.forEach((size, a) => {
    if (!Number.isInteger(size) || size < 0 || size % 4 !== 0) fail(`arena ${a} has ${size} bytes; expected a multiple of 4`);
    if (size > limits.maxBufferSize) fail(`arena ${a} has ${size} bytes, more than the device's maxBufferSize ${limits.maxBufferSize}`);
  });
  const inArena = (b: BufferRef, what: string) => {
    const size = p.arenas[b.arena];
    if (size === undefined) fail(`${what} is in arena ${b.arena}, but there are ${p.arenas.length} arenas`);
    if (b.offset < 0 || b.bytes <= 0 || b.offset + Math.ceil(b.bytes / 4) * 4 > size)
      fail(`${what} (${range(b)}) lies outside arena ${b.arena} of ${size} bytes`);
  };
  for (const s of [...p.inputs, ...p.params, ...p.state, p.loss]) {
    inArena(s, `tensor '${s.name}'`);
    if (s.offset % 4 !== 0) fail(`tensor '${s.name}' starts at byte ${s.offset}, not a multiple of 4`);
  }
  const layouts = new Map<string, { storage: number; uniform: boolean; first: number }>();
  p.dispatches.forEach((d: Dispatch, i) => {
    const name = dispatchName(p, i);
    if (p.shaders[d.shader] === undefined) fail(`${name} uses shader '${d.shader}', which the program does not hold`);
    const shape = { storage: d.bindings.length, uniform: d.uniforms.length > 0, first: i };
    const seen = layouts.get(d.shader);
    if (!seen) layouts.set(d.shader, shape);
    else if (seen.storage !== shape.storage || seen.uniform !== shape.uniform)
      fail(`${name} binds ${shape.storage} storage buffers${shape.uniform ? ' and uniforms' : ''} to shader '${d.shader}', ` +
        `but ${dispatchName(p, seen.first)} binds ${seen.storage}${seen.uniform ? ' and uniforms' : ''}`);
    if (d.bindings.length > limits.maxStorageBuffersPerShaderStage)
      fail(`${name} binds ${d.bindings.length} storage buffers; the device allows ${limits.maxStorageBuffersPerShaderStage}`);
    d.bindings.forEach((b, k) => {
      inArena(b, `${name} binding ${k}`);
      if (b.offset % limits.minStorageBufferOffsetAlignment !== 0)
        fail(`${name} binding ${k} starts at byte ${b.offset}, not a multiple of ${limits.minStorageBufferOffsetAlignment} (minStorageBufferOffsetAlignment)`);
      if (b.bytes > limits.maxStorageBufferBindingSize)
        fail(`${name} binding ${k} has ${b.bytes} bytes, more than maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize}`);
      for (let j = 0; j < k; j++) {
        const c = d.bindings[j];
        if (c.arena === b.arena && c.offset < b.offset + b.bytes && b.offset < c.offset + c.bytes)
          fail(`${name} bindings ${j} (${range(c)}) and ${k} (${range(b)}) overlap; every binding is writable storage ` +
            `(one arena buffer), and WebGPU forbids overlapping writable bindings: bind a tensor once`);
      }
    });
    if (d.workgroups.some((n) => !Number.isInteger(n) || n < 0 || n > limits.maxComputeWorkgroupsPerDimension))
      fail(`${name} dispatches [${d.workgroups.join(', ')}] workgroups; each must be an integer in 0..${limits.maxComputeWorkgroupsPerDimension}`);
    if (d.uniforms.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))
      fail(`${name} has a uniform word that is not a u32 (f32 scalars go in as their bits)`);
  });
}

/**
 * WGSL with every storage binding declared read_write (see the header): `var<storage>` and
 * `var<storage, read>` read the same data either way.
 */
export function storageReadWrite(code: string): string {
  return code.replace(/var\s*<\s*storage\s*(?:,\s*read\s*)?>/g, 'var<storage, read_write>');
}
