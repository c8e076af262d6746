// Fuzzing manifest.json, an untrusted input: a real bundle's manifest (and kernels) mutated at
// random (numbers to extremes, wrong types, prototype keys, deleted fields, values moved from one
// place to another, truncated text) must load or be refused with a BundleError or ProgramError,
// never another exception (TypeError, RangeError, an internal error) and never a hang. Everything
// runs in-process on the loader's and validateProgram's checks: nothing touches a GPU.
// LOMOC_FUZZ_RUNS=200000 for a long run.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BundleError, loadBundle } from '../../runtime/bundle/load-bundle.ts';
import { ProgramError, validateProgram } from '../../runtime/webgpu/validate.ts';
import { fuzzRuns, fuzzTimeout, smallBundle } from './tiny-bundle.ts';

const { manifest, kernels } = smallBundle();
const manifestText = JSON.stringify(manifest);
type Path = readonly (string | number)[];

function pathsOf(x: unknown, at: Path = []): Path[] {
  if (typeof x !== 'object' || x === null) return [at];
  return [at, ...Object.entries(x).flatMap(([k, v]) => pathsOf(v, [...at, Array.isArray(x) ? Number(k) : k]))];
}
const paths = pathsOf(manifest).filter((p) => p.length > 0);
const objectPaths = paths.filter((p) => {
  const v = get(manifest, p);
  return typeof v === 'object' && v !== null && !Array.isArray(v);
});

function get(x: unknown, p: Path): unknown {
  return p.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], x);
}
/** Sets an own data property (even `__proto__`, which assignment would take as the prototype). */
function put(o: object, k: string | number, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

const extremes = [0, -1, 1, 3, 4, 255, 256, 257, 1024, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 32 + 4, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 1.5, -0.5, 5e-324];
const strings = ['', 'x', '__proto__', 'toString', 'constructor', 'valueOf', '__metadata__', 'optimizer.w', 'kernels/000.wgsl', 'kernels/../manifest.json', '/etc/passwd', 'f32', 'f16', 'i32', 'lomo', 'a'.repeat(300)];
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...extremes) },
  { weight: 2, arbitrary: fc.constantFrom(...strings) },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, [], {}, [0, 0, 0], [65535, 65535, 65535], [1, 1], { arena: 0, offset: 0, bytes: 4 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const pathArb = fc.constantFrom(...paths);
const mutation = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), path: pathArb, value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), path: pathArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('move' as const), path: pathArb, from: pathArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rename' as const), path: fc.constantFrom(...objectPaths), to: fc.constantFrom('__proto__', 'toString', 'constructor', 'hasOwnProperty', '') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('grow' as const), path: pathArb, times: fc.integer({ min: 2, max: 40 }) }) },
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function apply(m: unknown, mu: Mutation): void {
  const parent = get(m, mu.path.slice(0, -1));
  if (typeof parent !== 'object' || parent === null) return;
  const key = mu.path[mu.path.length - 1];
  const o = parent as Record<string | number, unknown>;
  if (mu.kind === 'set') put(o, key, structuredClone(mu.value));
  else if (mu.kind === 'delete') Array.isArray(o) ? o.splice(Number(key), 1) : delete o[key];
  else if (mu.kind === 'move') put(o, key, structuredClone(get(m, mu.from)));
  else if (mu.kind === 'grow') {
    const v = o[key];
    if (Array.isArray(v)) put(o, key, Array.from({ length: mu.times }, () => structuredClone(v)).flat());
    else if (typeof v === 'number') put(o, key, v * 2 ** mu.times);
  } else {
    const obj = get(m, mu.path) as Record<string, unknown>;
    if (typeof obj !== 'object' || obj === null) return; // moved or deleted by an earlier mutation
    const first = Object.keys(obj)[0];
    if (first === undefined) return;
    const v = obj[first];
    delete obj[first];
    put(obj, mu.to, v);
  }
}

/** WebGPU limits as lavapipe gives them (validateProgram's device side). */
const limits = {
  maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 128 * 2 ** 20, minStorageBufferOffsetAlignment: 256, maxStorageBuffersPerShaderStage: 16,
  maxComputeWorkgroupsPerDimension: 65535, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupSizeY: 1024, maxComputeWorkgroupSizeZ: 64,
} as GPUSupportedLimits;

/** 'ok', or the clear error's message; any other exception fails the property. */
async function outcome(text: string, files: Readonly<Record<string, string>>): Promise<string> {
  try {
    const b = await loadBundle(text, async (file) => {
      if (!Object.hasOwn(files, file)) throw new Error(`ENOENT: no such file '${file}'`);
      return files[file];
    });
    validateProgram(b.program, limits);
    return 'ok';
  } catch (e) {
    if (!(e instanceof BundleError || e instanceof ProgramError)) throw e;
    expect(e.message).not.toMatch(/\[object |internal compiler error/);
    return e.message;
  }
}

const wgArgs = ['0', '1', '64', '256', '1024', '2048', '65536', '4294967296', 'WG', 'N', '16, 16', '32, 32, 2', '8, 8, 8', '1, 1, 1, 1', '', 'WG * 2', '-1', '1.5', '0x10'];

describe('fuzz: manifest.json', () => {
  it('the unmutated bundle loads and passes validateProgram', async () => {
    expect(await outcome(JSON.stringify(manifest), kernels)).toBe('ok');
  });

  it('mutated manifests load or give a clear error, never another exception', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { freq: 8 }), async (mutations, cut) => {
        const m = structuredClone(manifest) as unknown;
        for (const mu of mutations) apply(m, mu);
        let text = JSON.stringify(m) ?? 'undefined';
        if (cut !== null) text = text.slice(0, cut % (text.length + 1));
        await outcome(text, kernels);
      }),
      { numRuns: fuzzRuns(3000) },
    );
  }, fuzzTimeout());

  it("mutated kernels (workgroup sizes, missing entry points, text) load or give a clear error", async () => {
    const files = Object.keys(kernels);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...files), fc.constantFrom(...wgArgs), fc.string(), fc.boolean(), async (file, args, junk, replace) => {
        const code = replace ? junk : kernels[file].replace(/@workgroup_size\([^)]*\)/, `@workgroup_size(${args})`);
        await outcome(manifestText, { ...kernels, [file]: code });
      }),
      { numRuns: fuzzRuns(1000) },
    );
  }, fuzzTimeout());
});
