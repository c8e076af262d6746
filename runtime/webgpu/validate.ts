// Checks a StepProgram against the device before anything is allocated, so that a bad program
// fails naming its dispatch, not with a Dawn message about an unlabeled bind group.
//
// Every storage binding of a dispatch lives in an arena, and usually in the same one. WebGPU
// forbids a buffer to be used both read-only and writable in one dispatch ("includes writable
// usage and another usage in the same synchronization scope"), so the runtime binds every
// storage binding as writable storage (the executor declares it so: see storageReadWrite), and
// writable bindings of one buffer may not overlap ("Writable storage buffer binding aliasing"):
// a tensor read twice by one kernel must be bound once.
import { slotRanges, type BufferRef, type Dispatch, type StepProgram } from '../../contract/program.ts';

export class ProgramError extends Error {
  override readonly name = 'ProgramError';
}

export const dispatchName = (p: StepProgram, i: number): string => `dispatch #${i} '${p.dispatches[i].label}'`;

const range = (b: BufferRef) => `arena ${b.arena} bytes ${b.offset}..${b.offset + b.bytes}`;

/** The device limits a program's workgroups are checked against (GPUSupportedLimits has them all). */
export type WorkgroupLimits = Pick<
  GPUSupportedLimits,
  'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX' | 'maxComputeWorkgroupSizeY' | 'maxComputeWorkgroupSizeZ' | 'maxComputeWorkgroupsPerDimension'
>;

/** Kernels index with u32 (global_invocation_id, flattened): a dispatch of more invocations would wrap them. */
export const maxInvocationsPerDispatch = 2 ** 32;

const stripComments = (code: string) => code.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');

/**
 * Every `@workgroup_size(...)` of a WGSL module, each argument an integer literal or a
 * module-scope `const` holding one; a string saying what could not be read otherwise (an
 * `override` or an expression is not something lomoc writes, so it is refused, not guessed).
 */
export function workgroupSizes(code: string): [number, number, number][] | string {
  const text = stripComments(code);
  const consts = new Map<string, number>();
  for (const m of text.matchAll(/\bconst\s+([A-Za-z_]\w*)\s*(?::\s*[iu]32\s*)?=\s*(\d+)[iu]?\s*;/g)) consts.set(m[1], Number(m[2]));
  const out: [number, number, number][] = [];
  for (const m of text.matchAll(/@workgroup_size\s*\(([^)]*)\)/g)) {
    const args = m[1].split(',').map((a) => a.trim());
    if (args.at(-1) === '') args.pop(); // WGSL allows a trailing comma
    if (args.length < 1 || args.length > 3) return `@workgroup_size(${m[1]}) must have 1 to 3 arguments`;
    const dims = [1, 1, 1] as [number, number, number];
    for (const [i, a] of args.entries()) {
      const lit = /^(\d+)[iu]?$/.exec(a);
      const n = lit ? Number(lit[1]) : consts.get(a);
      if (n === undefined) return `@workgroup_size(${m[1]}): '${a}' is neither an integer nor a const holding one`;
      dims[i] = n;
    }
    out.push(dims);
  }
  return out.length ? out : 'no @workgroup_size';
}

/**
 * Throws `fail`'s error for the first shader whose workgroup size, or dispatch whose workgroup
 * count, the limits do not allow.
 */
export function checkWorkgroups(p: Pick<StepProgram, 'shaders' | 'dispatches'>, limits: WorkgroupLimits, fail: (msg: string, shader?: string) => never, describe: (i: number) => string): void {
  const sizes = new Map<string, number>();
  for (const key of new Set(p.dispatches.map((d) => d.shader))) {
    if (!Object.hasOwn(p.shaders, key)) continue; // reported by the caller, naming the dispatch
    const found = workgroupSizes(p.shaders[key]);
    if (typeof found === 'string') fail(`shader '${key}': ${found}`, key);
    let most = 0;
    for (const [x, y, z] of found) {
      const over = [x > limits.maxComputeWorkgroupSizeX && `x ${x} > maxComputeWorkgroupSizeX ${limits.maxComputeWorkgroupSizeX}`,
        y > limits.maxComputeWorkgroupSizeY && `y ${y} > maxComputeWorkgroupSizeY ${limits.maxComputeWorkgroupSizeY}`,
        z > limits.maxComputeWorkgroupSizeZ && `z ${z} > maxComputeWorkgroupSizeZ ${limits.maxComputeWorkgroupSizeZ}`,
        x * y * z > limits.maxComputeInvocationsPerWorkgroup && `${x * y * z} invocations > maxComputeInvocationsPerWorkgroup ${limits.maxComputeInvocationsPerWorkgroup}`,
        x * y * z === 0 && 'a size of 0'].filter((w) => w);
      if (over.length) fail(`shader '${key}' has @workgroup_size(${x}, ${y}, ${z}), beyond the limits: ${over.join(', ')}`, key);
      most = Math.max(most, x * y * z);
    }
    sizes.set(key, most);
  }
  p.dispatches.forEach((d, i) => {
    if (d.workgroups.some((n) => !Number.isInteger(n) || n < 0 || n > limits.maxComputeWorkgroupsPerDimension))
      fail(`${describe(i)} dispatches [${d.workgroups.join(', ')}] workgroups; each must be an integer in 0..${limits.maxComputeWorkgroupsPerDimension}`);
    const invocations = d.workgroups[0] * d.workgroups[1] * d.workgroups[2] * (sizes.get(d.shader) ?? 1);
    if (invocations > maxInvocationsPerDispatch)
      fail(`${describe(i)} dispatches [${d.workgroups.join(', ')}] workgroups of ${sizes.get(d.shader)} invocations: ${invocations} in all, more than 2^32 (kernels index invocations with u32)`);
  });
}

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
    const ranges = slotRanges(s);
    ranges.forEach((r, j) => {
      const what = ranges.length > 1 ? `tensor '${s.name}' piece ${j}` : `tensor '${s.name}'`;
      inArena(r, what);
      if (r.offset % 4 !== 0) fail(`${what} starts at byte ${r.offset}, not a multiple of 4`);
      if (j < ranges.length - 1 && r.bytes !== ranges[0].bytes) fail(`${what} has ${r.bytes} bytes; every piece but the last must have the first's ${ranges[0].bytes}`);
    });
    const held = ranges.reduce((n, r) => n + r.bytes, 0);
    if (ranges.length > 1 && held !== Math.ceil(s.bytes / 4) * 4) fail(`tensor '${s.name}' has ${s.bytes} bytes, but its pieces hold ${held}`);
  }
  const layouts = new Map<string, { storage: number; uniform: boolean; first: number }>();
  p.dispatches.forEach((d: Dispatch, i) => {
    const name = dispatchName(p, i);
    if (!Object.hasOwn(p.shaders, d.shader)) fail(`${name} uses shader '${d.shader}', which the program does not hold`);
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
    if (d.uniforms.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))
      fail(`${name} has a uniform word that is not a u32 (f32 scalars go in as their bits)`);
  });
  checkWorkgroups(p, limits, fail, (i) => dispatchName(p, i));
}

/**
 * WGSL with every storage binding declared read_write (see the header): `var<storage>` and
 * `var<storage, read>` read the same data either way.
 */
export function storageReadWrite(code: string): string {
  return code.replace(/var\s*<\s*storage\s*(?:,\s*read\s*)?>/g, 'var<storage, read_write>');
}
