// Device-lost and error tracking. A lost device never settles some promises (on some
// implementations mapAsync or onSubmittedWorkDone just wait), so every await of the runtime is
// raced against `device.lost`: training stops with a DeviceLostError instead of hanging.
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

/** A WebGPU validation or out-of-memory error, rethrown naming what the runtime was doing. */
export class GpuError extends Error {
  override readonly name = 'GpuError';
}

export interface DeviceWatch {
  /** The lost info once the device is lost (undefined while it lives). */
  readonly lostInfo: GPUDeviceLostInfo | undefined;
  /** `p`, or a DeviceLostError naming `doing` if the device is lost first (or already). */
  race<T>(p: Promise<T>, doing: string): Promise<T>;
  /** Throws the first uncaptured error since the last call (or DeviceLostError), naming `doing`. */
  check(doing: string): void;
}

const watches = new WeakMap<GPUDevice, DeviceWatch>();

function lostError(info: GPUDeviceLostInfo, doing: string): DeviceLostError {
  const destroyed = info.reason === 'destroyed';
  const why = destroyed ? 'it was destroyed' : `reason: ${info.reason || 'unknown'}`;
  const detail = info.message && !destroyed ? `: ${info.message.trim()}` : '';
  return new DeviceLostError(info.reason, `WebGPU device lost while ${doing} (${why})${detail}; training stopped`);
}

/** The watch of `device` (one per device: made on first use). */
export function watchDevice(device: GPUDevice): DeviceWatch {
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
  const watch: DeviceWatch = {
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
      return Promise.race([p, onLost]).catch(async (e: unknown) => {
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
