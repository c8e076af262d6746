// Loading a bundle: parse manifest.json, check it against the schema, read each kernel file, then
// check every size, offset and binding against the arenas before anything reaches a device
// (runtime/webgpu/validate.ts checks the device's limits when it is acquired). A corrupted or
// hostile bundle is rejected with a BundleError naming the field. Browser-safe: the caller reads
// files (fs in Node, fetch in a browser).
import type { StepProgram, TensorSlot } from '../../contract/program.ts';
import { manifestSchema, type Manifest } from '../../contract/manifest.ts';

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

export interface LoadedBundle {
  readonly manifest: Manifest;
  readonly program: StepProgram;
}

const elementBytes = { f32: 4, f16: 2, bf16: 2, i32: 4 } as const;

function checkSlots(m: Manifest, fail: (field: string, msg: string) => never): void {
  const p = m.program;
  const inside = (field: string, r: { arena: number; offset: number; bytes: number }) => {
    const size = p.arenas[r.arena];
    if (size === undefined) fail(`${field}.arena`, `arena ${r.arena} does not exist (the bundle has ${p.arenas.length})`);
    if (r.offset + r.bytes > size) fail(field, `bytes ${r.offset}..${r.offset + r.bytes} lie outside arena ${r.arena} of ${size} bytes`);
  };
  const slot = (field: string, s: TensorSlot) => {
    inside(field, s);
    const want = s.shape.reduce((a, b) => a * b, 1) * elementBytes[s.dtype];
    if (s.bytes !== want) fail(`${field}.bytes`, `expected ${want} bytes for ${s.dtype}[${s.shape.join(', ')}], got ${s.bytes}`);
  };
  p.inputs.forEach((s, i) => slot(`program.inputs.${i}`, s));
  p.params.forEach((s, i) => slot(`program.params.${i}`, s));
  p.state.forEach((s, i) => slot(`program.state.${i}`, s));
  slot('program.loss', p.loss);
  if (p.loss.shape.length !== 0) fail('program.loss.shape', `expected a scalar, got [${p.loss.shape.join(', ')}]`);
  p.dispatches.forEach((d, i) => {
    if (p.kernels[d.shader] === undefined) fail(`program.dispatches.${i}.shader`, `no kernel '${d.shader}' in program.kernels`);
    d.bindings.forEach((b, k) => inside(`program.dispatches.${i}.bindings.${k}`, b));
  });
}

/** Parses and checks a bundle; `readKernel` reads a file of the bundle by its relative path. */
export async function loadBundle(manifestText: string, readKernel: (file: string) => Promise<string>): Promise<LoadedBundle> {
  let json: unknown;
  try {
    json = JSON.parse(manifestText);
  } catch (e) {
    throw new BundleError(`manifest.json: not valid JSON (${(e as Error).message})`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join('.') || '(the whole manifest)';
    throw new BundleError(`manifest.json: ${field}: ${issue.message}`);
  }
  const m = parsed.data;
  checkSlots(m, (field, msg) => {
    throw new BundleError(`manifest.json: ${field}: ${msg}`);
  });
  const shaders: Record<string, string> = {};
  for (const [key, file] of Object.entries(m.program.kernels)) {
    let code: string;
    try {
      code = await readKernel(file);
    } catch (e) {
      throw new BundleError(`${file}: cannot read the kernel of '${key}' (${(e as Error).message})`);
    }
    if (!/@compute/.test(code) || !/\bfn\s+main\s*\(/.test(code)) throw new BundleError(`${file}: not a WGSL compute shader with an entry point 'main'`);
    shaders[key] = code;
  }
  const { kernels: _files, ...rest } = m.program;
  return { manifest: m, program: { version: 1, ...rest, shaders } };
}
