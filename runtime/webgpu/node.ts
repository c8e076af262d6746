// The Node entry of the WebGPU runtime: Dawn's adapters through the `webgpu` package. The default
// adapter (Vulkan: lavapipe on machines without a GPU) first, then GLES in compatibility mode
// (llvmpipe through EGL, no display). LOMOC_ADAPTER=vulkan|gles|auto forces one (default auto).
//
// Dawn's `create()` result must outlive every device made from it: when it is garbage-collected,
// Dawn crashes intermittently in ProcessEvents. So each one is pinned on globalThis, which
// survives test runners that re-evaluate modules in one process.
import { acquireFrom, firstAdapter, type Acquired, type AdapterSource, type ProgramNeeds } from './device.ts';

export const setupHint = "run `bash scripts/setup-gpu.sh` to install Mesa's software Vulkan (lavapipe) and GLES drivers";

const pinned = Symbol.for('lomoc.dawn.instances');
const keepAlive = ((globalThis as Record<symbol, unknown[]>)[pinned] ??= []);

type Dawn = typeof import('webgpu');
let dawnModule: Promise<Dawn> | undefined;

function dawn(): Promise<Dawn> {
  return (dawnModule ??= (async () => {
    process.env.XDG_RUNTIME_DIR ??= '/tmp'; // silences a Mesa warning
    process.env.EGL_PLATFORM ??= 'surfaceless'; // GLES without a display
    const mod = await import('webgpu');
    Object.assign(globalThis, mod.globals); // GPUBufferUsage, GPUMapMode and friends
    return mod;
  })());
}

/** One Dawn instance per backend flag set, made once and never collected. */
const instances = new Map<string, GPU>();
async function instance(flags: readonly string[]): Promise<GPU> {
  const key = flags.join(' ');
  let gpu = instances.get(key);
  if (!gpu) {
    gpu = (await dawn()).create([...flags]);
    keepAlive.push(gpu);
    instances.set(key, gpu);
  }
  return gpu;
}

const vulkan: AdapterSource = {
  backend: 'vulkan',
  request: async () => (await instance([])).requestAdapter(),
  languageFeatures: async () => (await instance([])).wgslLanguageFeatures,
};
const gles: AdapterSource = {
  backend: 'opengles',
  request: async () => (await instance(['backend=opengles'])).requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions),
  languageFeatures: async () => (await instance(['backend=opengles'])).wgslLanguageFeatures,
};
const choices: Readonly<Record<string, readonly AdapterSource[]>> = { auto: [vulkan, gles], vulkan: [vulkan], gles: [gles] };

/** The adapter sources LOMOC_ADAPTER asks for (auto: Vulkan, then GLES). */
export function nodeSources(choice: string = process.env.LOMOC_ADAPTER || 'auto'): readonly AdapterSource[] {
  const sources = choices[choice];
  if (!sources) throw new Error(`LOMOC_ADAPTER must be one of ${Object.keys(choices).join(', ')}, got '${choice}'`);
  return sources;
}

/**
 * A device that can run `program` (its limits and features), on the first adapter that can.
 * Without one, the error names scripts/setup-gpu.sh.
 */
export async function acquireDevice(program?: ProgramNeeds, choice?: string): Promise<Acquired> {
  return acquireFrom(nodeSources(choice), program, setupHint, process.env.LOMOC_GPU_TIMEOUT_MS);
}

/** The first adapter LOMOC_ADAPTER's sources offer (no device), to choose kernel shapes before compiling. */
export function probeAdapter(choice?: string): Promise<{ backend: string; adapter: GPUAdapter } | undefined> {
  return firstAdapter(nodeSources(choice));
}
