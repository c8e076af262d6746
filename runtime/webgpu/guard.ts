// Device-lost and error tracking. A lost device never settles some promises (on some
// implementations mapAsync or onSubmittedWorkDone just wait), so every await of the runtime is
// raced against `device.lost`: training stops with a DeviceLostError instead of hanging. A kernel
// that never ends (a hostile bundle's, or a driver's hang) loses nothing and settles nothing, so
// every race also has a deadline: a GpuTimeoutError naming what the runtime was waiting for.
// Uncaptured errors (validation outside an error scope) are collected and thrown at the next
// check, with the dispatch they name.

export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** A wait on the GPU that passed its deadline (LOMOC_GPU_TIMEOUT_MS). */
export class GpuTimeoutError extends Error {
  override readonly name = 'GpuTimeoutError';
}

/**
 * The deadline of one wait on the GPU, in ms: `env` (LOMOC_GPU_TIMEOUT_MS, which the Node entry
 * reads) when set, else generous defaults (a CPU adapter such as lavapipe compiles and runs
 * kernels 10-100x slower than a GPU).
 */
export function gpuTimeoutMs(software: boolean, env?: string): number {
  if (env === undefined || env === '') return software ? 600_000 : 120_000;
  if (!/^[1-9]\d{0,9}$/.test(env)) throw new GpuTimeoutError(`LOMOC_GPU_TIMEOUT_MS must be a whole number of milliseconds in 1..9999999999, got '${env}'`);
  return Number(env);
}

/** A WebGPU validation or out-of-memory error, rethrown naming what the runtime was doing. */
export class GpuError extends Error {
  override readonly name = 'GpuError';
}

export interface DeviceWatch {
  /** The lost info once the device is lost (undefined while it lives). */
  readonly lostInfo: GPUDeviceLostInfo | undefined;
  /** The deadline of each wait, in ms. */
  readonly timeoutMs: number;
  /**
   * True once a wait passed its deadline. The GPU may still be running the kernel that never ends:
   * destroying a buffer or the device then blocks (lavapipe waits for the queue), so callers skip
   * it, and the process must end by exiting explicitly (see anyDeviceHung).
   */
  readonly hung: boolean;
  /**
   * `p`, or a DeviceLostError naming `doing` if the device is lost first (or already), or a
   * GpuTimeoutError if neither happens within timeoutMs.
   */
  race<T>(p: Promise<T>, doing: string): Promise<T>;
  /** Throws the first uncaptured error since the last call (or DeviceLostError), naming `doing`. */
  check(doing: string): void;
}

const watches = new WeakMap<GPUDevice, DeviceWatch>();
let hungDevices = 0;

/**
 * Whether any device of this process hung (a wait passed its deadline). Such a process cannot
 * end on its own: the driver's threads still run the kernel. The CLI exits explicitly then.
 */
export const anyDeviceHung = (): boolean => hungDevices > 0;

function lostError(info: GPUDeviceLostInfo, doing: string): DeviceLostError {
  const destroyed = info.reason === 'destroyed';
  const why = destroyed ? 'it was destroyed' : `reason: ${info.reason || 'unknown'}`;
  const detail = info.message && !destroyed ? `: ${info.message.trim()}` : '';
  return new DeviceLostError(info.reason, `WebGPU device lost while ${doing} (${why})${detail}; training stopped`);
}

/** The watch of `device` (one per device: made on first use, with `timeoutMs` or the hardware default). */
export function watchDevice(device: GPUDevice, timeoutMs: number = gpuTimeoutMs(false)): DeviceWatch {
  const known = watches.get(device);
  if (known) return known;
  let lostInfo: GPUDeviceLostInfo | undefined;
  const lost = device.lost.then((info) => {
    lostInfo = info;
    return info;
  });
  const errors: string[] = [];
  device.addEventListener('uncapturederror', (e) => {
    errors.push((e as GPUUncapturedErrorEvent).error.message);
  });
  let hung = false;
  const watch: DeviceWatch = {
    timeoutMs,
    get hung() {
      return hung;
    },
    get lostInfo() {
      return lostInfo;
    },
    race<T>(p: Promise<T>, doing: string): Promise<T> {
      if (lostInfo) {
        p.catch(() => undefined); // settles into nothing: the lost error wins
        return Promise.reject(lostError(lostInfo, doing));
      }
      const onLost = lost.then((info): never => {
        throw lostError(info, doing);
      });
      onLost.catch(() => undefined); // when `p` wins, the lost branch must not surface as unhandled
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          p.catch(() => undefined);
          if (!hung) hungDevices++;
          hung = true;
          reject(new GpuTimeoutError(`the GPU did not finish ${doing} within ${timeoutMs / 1000} s (LOMOC_GPU_TIMEOUT_MS=${timeoutMs}): a kernel that never ends, or a hung device; stopped`));
        }, timeoutMs);
      });
      const settled = () => clearTimeout(timer);
      return Promise.race([p, onLost, late]).finally(settled).catch(async (e: unknown) => {
        if (e instanceof GpuTimeoutError) throw e;
        // A map aborted by the loss rejects on its own, possibly before `lost` settles: give the
        // loss a moment to arrive and report it rather than the abort.
        if (!lostInfo) await Promise.race([lost, new Promise((r) => setTimeout(r, 50))]);
        if (lostInfo) throw lostError(lostInfo, doing);
        throw e;
      });
    },
    check(doing: string) {
      if (lostInfo) throw lostError(lostInfo, doing);
      const first = errors.splice(0).at(0);
      if (first !== undefined) throw new GpuError(`WebGPU error while ${doing}: ${first.trim()}`);
    },
  };
  watches.set(device, watch);
  return watch;
}
