// Loading a bundle: parse manifest.json, check it against the schema, then against the program it
// claims to be (check-manifest.ts), read each kernel file and check its workgroup sizes, all
// before anything reaches a device (runtime/webgpu/validate.ts checks the device's limits when it
// is acquired). A corrupted or hostile bundle is rejected with a BundleError naming the field or
// the file. Browser-safe: the caller reads files (fs in Node, fetch in a browser).
import { neededLimits } from '../../contract/limits.ts';
import { manifestSchema, type Manifest } from '../../contract/manifest.ts';
import type { StepProgram } from '../../contract/program.ts';
import { checkWorkgroups } from '../webgpu/validate.ts';
import { checkManifest } from './check-manifest.ts';

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

export interface LoadedBundle {
  readonly manifest: Manifest;
  readonly program: StepProgram;
}

/** Caps on what a bundle's files may hold: far beyond any compiled program, far below a host's memory. */
export const maxManifestBytes = 64 * 2 ** 20;
export const maxKernelBytes = 4 * 2 ** 20;

/** The path of the first own `__proto__` key (JSON.parse keeps it as data; zod's records drop it silently). */
function protoKeyPath(x: unknown, path: string[] = []): string[] | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  for (const [k, v] of Object.entries(x)) {
    if (k === '__proto__') return [...path, k];
    const found = protoKeyPath(v, [...path, k]);
    if (found) return found;
  }
  return undefined;
}

/** Parses and checks a bundle; `readKernel` reads a file of the bundle by its relative path. */
export async function loadBundle(manifestText: string, readKernel: (file: string) => Promise<string>): Promise<LoadedBundle> {
  if (manifestText.length > maxManifestBytes) throw new BundleError(`manifest.json: ${manifestText.length} characters, more than the limit of ${maxManifestBytes}`);
  let json: unknown;
  try {
    json = JSON.parse(manifestText);
  } catch (e) {
    throw new BundleError(`manifest.json: not valid JSON (${(e as Error).message})`);
  }
  const proto = protoKeyPath(json);
  if (proto) throw new BundleError(`manifest.json: ${proto.join('.')}: the key '__proto__' is not allowed`);
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join('.') || '(the whole manifest)';
    throw new BundleError(`manifest.json: ${field}: ${issue.message}`);
  }
  const m = parsed.data;
  checkManifest(m, (field, msg) => {
    throw new BundleError(`manifest.json: ${field}: ${msg}`);
  });
  // Null-prototype: a kernel key never finds an Object.prototype member (check-manifest.ts refuses those keys too).
  const shaders: Record<string, string> = Object.create(null) as Record<string, string>;
  const fileOf = new Map<string, string>();
  for (const [key, file] of Object.entries(m.program.kernels)) {
    let code: string;
    try {
      code = await readKernel(file);
    } catch (e) {
      if (e instanceof BundleError) throw e;
      throw new BundleError(`${file}: cannot read the kernel of '${key}' (${(e as Error).message})`);
    }
    if (typeof code !== 'string') throw new BundleError(`${file}: the reader gave ${typeof code}, not text`);
    if (code.length > maxKernelBytes) throw new BundleError(`${file}: ${code.length} characters, more than the limit of ${maxKernelBytes} for a kernel`);
    if (!/@compute/.test(code) || !/\bfn\s+main\s*\(/.test(code)) throw new BundleError(`${file}: not a WGSL compute shader with an entry point 'main'`);
    shaders[key] = code;
    fileOf.set(key, file);
  }
  // Workgroups against the limits the bundle declares it needs (the device is asked for exactly those).
  const need = neededLimits({ ...m.program, dispatches: m.program.dispatches });
  const limits = {
    maxComputeInvocationsPerWorkgroup: need.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: need.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: need.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupSizeZ: 64, // WebGPU's default: never raised for a bundle
    maxComputeWorkgroupsPerDimension: 65535,
  };
  checkWorkgroups({ shaders, dispatches: m.program.dispatches }, limits, (msg, key) => {
    const file = key === undefined ? undefined : fileOf.get(key);
    throw new BundleError(file ? `${file}: ${msg}` : `manifest.json: ${msg}`);
  }, (i) => `program.dispatches.${i}`);
  const { kernels: _files, ...rest } = m.program;
  return { manifest: m, program: { version: 1, ...rest, shaders } };
}
