// Acquiring a WebGPU device in Node through Dawn (the `webgpu` package): the default adapter
// (Vulkan; lavapipe on machines without a GPU), else GLES in compatibility mode (llvmpipe).
// Dawn's `create()` result must outlive every device made from it: when it is collected,
// Dawn crashes intermittently in ProcessEvents. So it is kept in a module-level reference.
import type { StepProgram } from '../program.ts';

export interface Acquired {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** Which adapter: backend and description, for reports. */
  readonly description: string;
}

const keepAlive: unknown[] = [];
export const setupHint = 'run `bash scripts/setup-gpu.sh` to install Mesa\'s software Vulkan (lavapipe) and GLES drivers';

interface Candidate {
  readonly backend: string;
  readonly flags: string[];
  readonly options: GPURequestAdapterOptions;
}
const candidates: readonly Candidate[] = [
  { backend: 'vulkan', flags: [], options: {} },
  { backend: 'opengles', flags: ['backend=opengles'], options: { featureLevel: 'compatibility' } as GPURequestAdapterOptions },
];

async function dawn(): Promise<typeof import('webgpu')> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // silences a Mesa warning
  process.env.EGL_PLATFORM ??= 'surfaceless'; // GLES without a display
  const mod = await import('webgpu');
  Object.assign(globalThis, mod.globals); // GPUBufferUsage and friends
  return mod;
}

function describeAdapter(backend: string, a: GPUAdapter): string {
  const info = a.info;
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((x) => x);
  return `${backend}: ${parts.join(' ') || 'unknown adapter'}`;
}

/** The limits a program needs, within what the adapter offers. */
function limitsFor(a: GPUAdapter, program?: Pick<StepProgram, 'limits' | 'arenas'>): Record<string, number> {
  const want: Record<string, number> = {
    maxStorageBuffersPerShaderStage: Math.max(8, program?.limits.maxStorageBuffersPerShaderStage ?? 8),
    maxComputeInvocationsPerWorkgroup: Math.max(256, program?.limits.maxComputeInvocationsPerWorkgroup ?? 256),
    maxComputeWorkgroupSizeX: 256,
    maxComputeWorkgroupStorageSize: Math.max(16384, program?.limits.maxComputeWorkgroupStorageSize ?? 16384),
    maxBufferSize: Math.max(256 * 2 ** 20, ...(program?.arenas ?? [0])),
    maxStorageBufferBindingSize: 128 * 2 ** 20,
  };
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(want)) {
    const have = (a.limits as unknown as Record<string, number>)[k];
    if (have !== undefined) out[k] = Math.min(v, have);
  }
  return out;
}

/** The first adapter that works, with a device holding the limits and features `program` needs. */
export async function acquireDevice(program?: Pick<StepProgram, 'limits' | 'arenas' | 'features'>): Promise<Acquired> {
  const { create } = await dawn();
  const tried: string[] = [];
  for (const c of candidates) {
    const gpu = create(c.flags);
    keepAlive.push(gpu);
    const adapter = await gpu.requestAdapter(c.options);
    if (!adapter) {
      tried.push(`${c.backend}: no adapter`);
      continue;
    }
    const missing = (program?.features ?? []).filter((f) => !adapter.features.has(f));
    if (missing.length) {
      tried.push(`${c.backend}: lacks ${missing.join(', ')}`);
      continue;
    }
    const device = await adapter.requestDevice({
      requiredLimits: limitsFor(adapter, program),
      requiredFeatures: (program?.features ?? []) as GPUFeatureName[],
    });
    return { device, adapter, description: describeAdapter(c.backend, adapter) };
  }
  throw new Error(`no WebGPU adapter found (${tried.join('; ')}); ${setupHint}`);
}
