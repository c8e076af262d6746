// Whether an adapter is a software rasterizer running on the CPU (lavapipe, llvmpipe, SwiftShader).
// The compiler picks kernel shapes by it (compiler/codegen/wgsl/target.ts), and the trainer how it
// waits for a step (trainer.ts, hostWait): on a CPU adapter the host's polling competes with the
// driver's threads for the same cores.

/** What isSoftwareAdapter reads: a WebGPU GPUAdapterInfo (Dawn adds isFallbackAdapter and, in some versions, adapterType). */
export interface AdapterInfoLike {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
  readonly isFallbackAdapter?: boolean;
  readonly adapterType?: string;
}

/** Software rasterizers by the names their drivers report (Mesa's lavapipe is "llvmpipe" in its device name). */
const software = /llvmpipe|lavapipe|softpipe|swiftshader|software|microsoft basic render/i;

/**
 * A fallback adapter, adapter type 'cpu', or a driver named like lavapipe / llvmpipe / SwiftShader
 * (which is also how Dawn's GLES fallback on llvmpipe shows: vendor and architecture empty,
 * device "llvmpipe-...").
 */
export function isSoftwareAdapter(info: AdapterInfoLike): boolean {
  if (info.isFallbackAdapter || info.adapterType?.toLowerCase() === 'cpu') return true;
  const names = [info.vendor, info.architecture, info.device, info.description].filter((x) => x).join(' ');
  return software.test(names);
}
