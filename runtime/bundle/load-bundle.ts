// Loading a bundle: parse manifest.json, check it against the schema, then against the program it
// claims to be (check-manifest.ts), read each kernel file and check its workgroup sizes, all
// before anything reaches a device (runtime/webgpu/validate.ts checks the device's limits when it
// is acquired). The inference section, when present, is checked and read the same way. A corrupted or hostile bundle is rejected with a BundleError naming the field or
// the file. Browser-safe: the caller reads files (fs in Node, fetch in a browser).
import { neededLimits, type ProgramNeeds } from '../../contract/limits.ts';
import { manifestSchema, type Manifest } from '../../contract/manifest.ts';
import type { StepProgram } from '../../contract/program.ts';
import { checkWorkgroups } from '../webgpu/validate.ts';
import { checkManifest } from './check-manifest.ts';

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

/** A bundle's inference program, as runtime/webgpu/generator.ts runs it. */
export interface LoadedInference {
  readonly program: StepProgram;
  readonly context: number;
  readonly chunk: number;
  readonly vocab: number;
}

export interface LoadedBundle {
  readonly manifest: Manifest;
  readonly program: StepProgram;
  /** Absent when the bundle carries no inference program (older bundles, models that name no logits). */
  readonly inference?: LoadedInference;
}

/** Why a bundle cannot generate, for every caller that needs its inference program (the CLI, index.js, the page). */
export const noInferenceMessage =
  "the bundle carries no inference program (it was compiled before bundles carried one, or its model names no logits with output('logits', ...)); " +
  'compile it again with lomoc compile to generate from it';

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
  const texts = new Map<string, string>();
  const readShaders = async (kernels: Readonly<Record<string, string>>) => {
    const shaders: Record<string, string> = Object.create(null) as Record<string, string>;
    const fileOf = new Map<string, string>();
    for (const [key, file] of Object.entries(kernels)) {
      // A file both programs name is read and checked once.
      let code = texts.get(file);
      if (code === undefined) {
        code = await readOne(file, key);
        texts.set(file, code);
      }
      shaders[key] = code;
      fileOf.set(key, file);
    }
    return { shaders, fileOf };
  };
  const readOne = async (file: string, key: string): Promise<string> => {
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
    return code;
  };
  // Workgroups against the limits the bundle declares it needs (the device is asked for exactly those).
  const checkSizes = (p: ProgramNeeds & { dispatches: StepProgram['dispatches'] }, shaders: Record<string, string>, fileOf: Map<string, string>, root: string) => {
    const need = neededLimits(p);
    const limits = {
      maxComputeInvocationsPerWorkgroup: need.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: need.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: need.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupSizeZ: 64, // WebGPU's default: never raised for a bundle
      maxComputeWorkgroupsPerDimension: 65535,
    };
    checkWorkgroups({ shaders, dispatches: p.dispatches }, limits, (msg, key) => {
      const file = key === undefined ? undefined : fileOf.get(key);
      throw new BundleError(file ? `${file}: ${msg}` : `manifest.json: ${msg}`);
    }, (i) => `${root}.dispatches.${i}`);
  };
  const step = await readShaders(m.program.kernels);
  checkSizes(m.program, step.shaders, step.fileOf, 'program');
  const { kernels: _files, ...rest } = m.program;
  const program: StepProgram = { version: 1, ...rest, shaders: step.shaders };
  if (!m.inference) return { manifest: m, program };
  const inf = m.inference;
  const own = await readShaders(inf.program.kernels);
  checkSizes(inf.program, own.shaders, own.fileOf, 'inference.program');
  const { kernels: _k, ...irest } = inf.program;
  // The step's `loss` slot has no meaning here: the runtime reads the outputs (decode.logits stands in).
  const inference: StepProgram = { version: 1, ...irest, loss: { ...irest.outputs[1], name: 'loss' }, shaders: own.shaders };
  return { manifest: m, program, inference: { program: inference, context: inf.context, chunk: inf.chunk, vocab: inf.vocab } };
}
