// Acquiring a WebGPU device for a StepProgram, from any source of adapters: browser-safe (no
// Node APIs). runtime/webgpu/node.ts supplies Dawn's adapters in Node; a page passes
// `navigator.gpu`. The device gets exactly the limits and features the program declares,
// checked against the adapter first so that a shortfall names the limit, not a Dawn error.
import { neededLimits, type ProgramNeeds } from '../../contract/limits.ts';
import { fmtBytes } from '../../contract/units.ts';
export { neededLimits, type ProgramNeeds } from '../../contract/limits.ts';
import { isSoftwareAdapter } from '../../contract/adapter-kind.ts';
import { gpuTimeoutMs, watchDevice, type DeviceWatch } from './guard.ts';

/** One way to get an adapter: Dawn's Vulkan or GLES backend, or a browser's `navigator.gpu`. */
export interface AdapterSource {
  /** For reports and errors: 'vulkan', 'opengles', 'browser'. */
  readonly backend: string;
  request(): Promise<GPUAdapter | null>;
  /** The WGSL language features of the source's GPU object (`navigator.gpu.wgslLanguageFeatures`); absent: unknown. */
  languageFeatures?(): Promise<ReadonlySet<string>>;
}

export interface Acquired {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly backend: string;
  /** Which adapter: backend and description, for reports. */
  readonly description: string;
  /** Device-lost and uncaptured-error tracking: every await of the runtime races it. */
  readonly watch: DeviceWatch;
}


/**
 * Features asked for when present but not required: GPU timestamps for profiles; subgroups, so a
 * device shared with a program compiled for them (the page's sampler on its trainer's device) has them.
 */
const optionalFeatures: readonly GPUFeatureName[] = ['timestamp-query', 'subgroups' as GPUFeatureName];

export function describeAdapter(backend: string, a: GPUAdapter): string {
  const info = a.info;
  const what = info.description || info.device || 'unknown adapter';
  const more = [info.vendor, info.architecture].filter((x) => x).join(' ') || (info.description ? info.device : '');
  return `${backend}: ${what}${more ? ` (${more})` : ''}`;
}

/** How far below a limit an adapter falls: bytes for the size limits (maxBufferSize, ...), a count otherwise. */
const short = (limit: string, by: number): string => (/Size$/.test(limit) && !/WorkgroupSize/.test(limit) ? fmtBytes(by) : String(by));

/** Why a program needs a feature it may be compiled without, and how. */
const featureWhy: Readonly<Record<string, string>> = {
  'shader-f16': ' (the program stores f16 natively; compile it with lomoc compile --dtype f16 --half packed to run without the feature)',
  subgroups: ' (the program was compiled with --subgroups; compile it without that option to run without the feature)',
};

/** What the adapter cannot grant, as "name: needs x, has y (z short)" (empty when it fits). */
export function shortfall(a: GPUAdapter, want: Record<string, number>, features: readonly string[], language?: ReadonlySet<string>): string[] {
  const have = a.limits as unknown as Record<string, number>;
  // A limit the adapter does not report at all is missing, not granted: name it.
  const out = Object.entries(want)
    .filter(([k, v]) => typeof have[k] !== 'number' || have[k] < v)
    .map(([k, v]) => (typeof have[k] !== 'number' ? `${k}: needs ${v}, the adapter reports no such limit` : `${k}: needs ${v}, has ${have[k]} (${short(k, v - have[k])} short)`));
  // A feature that is a compile choice says how to get a program without it (a bundle is compiled elsewhere).
  const why = (f: string) => (Object.hasOwn(featureWhy, f) ? featureWhy[f] : ''); // f may come from a bundle: own keys only
  for (const f of features) if (!a.features.has(f)) out.push(`feature ${f}: missing${why(f)}`);
  // Subgroup kernels number their subgroups with subgroup_id (subgroup-reduce.ts), a WGSL language feature.
  if (features.includes('subgroups') && language && !language.has('subgroup_id')) out.push(`WGSL language feature subgroup_id: missing${why('subgroups')}`);
  return out;
}

/**
 * The first source whose adapter can run `program`, with a device holding its limits and
 * features. Throws naming every source tried and `hint` (how to install a driver).
 * `timeoutSetting` is LOMOC_GPU_TIMEOUT_MS's text (guard.ts: the deadline of every GPU wait).
 */
export async function acquireFrom(sources: readonly AdapterSource[], program: ProgramNeeds | undefined, hint: string, timeoutSetting?: string): Promise<Acquired> {
  gpuTimeoutMs(false, timeoutSetting); // a bad LOMOC_GPU_TIMEOUT_MS is refused before any device is made
  const tried: string[] = [];
  let adapters = 0;
  const want = neededLimits(program);
  const features = program?.features ?? [];
  for (const s of sources) {
    let adapter: GPUAdapter | null;
    try {
      adapter = await s.request();
    } catch (e) {
      // Dawn throws "no suitable backends found" rather than resolving null when a backend is absent.
      tried.push(`${s.backend}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
      continue;
    }
    if (!adapter) {
      tried.push(`${s.backend}: no adapter`);
      continue;
    }
    adapters++;
    const missing = shortfall(adapter, want, features, await s.languageFeatures?.());
    if (missing.length) {
      tried.push(`${describeAdapter(s.backend, adapter)} cannot run it (${missing.join('; ')})`);
      continue;
    }
    const requiredLimits: Record<string, number> = { ...want };
    const requiredFeatures = [...features, ...optionalFeatures.filter((f) => adapter.features.has(f) && !features.includes(f))];
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ label: `lomoc (${s.backend})`, requiredLimits, requiredFeatures: requiredFeatures as GPUFeatureName[] });
    } catch (e) {
      tried.push(`${describeAdapter(s.backend, adapter)}: requestDevice failed: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    return { device, adapter, backend: s.backend, description: describeAdapter(s.backend, adapter), watch: watchDevice(device, gpuTimeoutMs(isSoftwareAdapter(adapter.info), timeoutSetting)) };
  }
  // Installing the software drivers helps only when no adapter was found at all.
  if (adapters > 0) throw new NoAdapterError(`no WebGPU adapter can run this (${tried.join('; ')})`);
  throw new NoAdapterError(`no WebGPU adapter can run this (${tried.join('; ') || 'no adapter sources'}); ${hint}`);
}

/**
 * The adapter acquireFrom would try first, without a device: what a compiler that picks kernel
 * shapes per adapter (targetForAdapter) reads before compiling. Undefined when no source has one.
 */
export async function firstAdapter(sources: readonly AdapterSource[]): Promise<{ backend: string; adapter: GPUAdapter } | undefined> {
  for (const s of sources) {
    const adapter = await s.request().catch(() => null);
    if (adapter) return { backend: s.backend, adapter };
  }
  return undefined;
}

export class NoAdapterError extends Error {
  override readonly name = 'NoAdapterError';
}

/** A browser's adapter (`navigator.gpu`), high-performance first. */
export function browserSources(gpu: GPU | undefined = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu): AdapterSource[] {
  if (!gpu) return [];
  return [{ backend: 'browser', request: () => gpu.requestAdapter({ powerPreference: 'high-performance' }), languageFeatures: async () => gpu.wgslLanguageFeatures ?? new Set<string>() }];
}

/** In a browser: the page's WebGPU adapter, or an error saying WebGPU is unavailable. */
export function acquireBrowserDevice(program?: ProgramNeeds): Promise<Acquired> {
  return acquireFrom(browserSources(), program, 'this browser offers no WebGPU (navigator.gpu is missing or gave no adapter)');
}
