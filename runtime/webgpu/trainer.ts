// Training with a compiled step: initialise the params on the host and upload them, then per
// step upload the batch and the step's scalars, submit the whole step as one command buffer,
// and read the loss back (every step, or every `lossEvery` steps). Every wait races the
// device's loss, so a lost device stops training with an error instead of a hang.
import { gradFactorOutput, isHyperInput, type StepProgram, type TensorSlot } from '../../contract/program.ts';
import type { LossScaleSpec } from '../../contract/loss-scale.ts';
import { createLossScaler, defaultLossScale, type LossScaler } from '../train/loss-scaler.ts';
export { createLossScaler, defaultLossScale, type LossScaler } from '../train/loss-scaler.ts';
export { dataInputs, hyperInputs, isHyperInput } from '../../contract/program.ts';
import { isSoftwareAdapter } from '../../contract/adapter-kind.ts';
import type { Acquired } from './device.ts';
import { createExecutor, type Executor } from './executor.ts';
import { GpuError, watchDevice } from './guard.ts';
import { fromDeviceBytes, numel, type HostArray } from './host-data.ts';
import { initialParams } from './init.ts';

export interface Hyper {
  readonly lr: number;
  readonly weightDecay: number;
  /** AdamW's step count for bias correction, 1-based (default: this trainer's step number). */
  readonly step?: number;
  /** A loss-scaled step's scale, given: the trainer's loss scale state is neither read nor changed (evaluation). */
  readonly lossScale?: number;
}


export interface TrainerOptions {
  /** An acquired device (its description is reported), or a bare GPUDevice. */
  readonly device: Acquired | GPUDevice;
  readonly program: StepProgram;
  /** Seed of the param init streams (default 0). */
  readonly seed?: number;
  /** Read the loss back every k steps (default 1); other steps return undefined. */
  readonly lossEvery?: number;
  /**
   * Run every shader once (one workgroup each) before initialising (default true). Drivers
   * compile pipelines lazily at first use (lavapipe: about a second for a GPT), which would
   * otherwise land in step 1.
   */
  readonly warmUp?: boolean;
  /**
   * How the host waits for a step. While a map or work-done promise is pending, Dawn's node
   * binding polls the device from the main thread; on a CPU adapter (lavapipe) that takes most of
   * a core from the driver's threads. 'sleep' submits, then sleeps 80% of the step's estimated time
   * before it starts waiting; 'poll' waits at once. Default: 'sleep' on software adapters
   * (adapter-kind.ts), 'poll' on GPUs, where a timer's wake-up would only add latency.
   */
  readonly hostWait?: 'sleep' | 'poll';
  /** How the scale moves, for a program compiled with loss scaling (default defaultLossScale). */
  readonly lossScale?: LossScaleSpec;
  /**
   * Draw the params from their inits on the host (default true). false leaves the arenas' zeros
   * for a caller that writes the params itself: a LLaMA-7B-shaped step's f64 init would take 54 GB.
   */
  readonly initParams?: boolean;
}

export interface Trainer {
  /** Runs one step; resolves to its loss when this step reads it back. */
  step(batch: Readonly<Record<string, HostArray>>, hyper: Hyper): Promise<number | undefined>;
  readParams(): Promise<Record<string, Float32Array>>;
  /** Optimizer state (moments, master copies) by name. */
  readState(): Promise<Record<string, Float32Array>>;
  /** Overwrites params (and resets nothing else): to start from given values. */
  writeParams(params: Readonly<Record<string, ArrayLike<number>>>): void;
  /** Overwrites optimizer state by name (the values readState gives): to resume or restore it. */
  writeState(state: Readonly<Record<string, ArrayLike<number>>>): void;
  /** Everything this trainer holds on the device: the arenas plus the uniform buffer and loss staging. */
  readonly deviceBytes: number;
  /** The arenas alone: equal to planBytes. */
  readonly arenaBytes: number;
  /** The plan's peak: the sum of the program's arenas. */
  readonly planBytes: number;
  readonly adapter: string;
  readonly executor: Executor;
  /** Steps run so far. */
  readonly steps: number;
  /** The host's loss scaling state, where the program was compiled with loss scaling. */
  readonly lossScaler?: LossScaler;
  /** Milliseconds to compile the pipelines and run the warm-up step. */
  readonly setupMs: number;
  /** Wall-clock milliseconds of each step so far: upload, submit, and wait for completion. */
  readonly stepMs: readonly number[];
  destroy(): void;
}

/** A step's validation error, naming the dispatch that causes it. */
async function invalidStep(ex: Executor, when: string, message: string): Promise<GpuError> {
  const found = await ex.findInvalid();
  if (!found) return new GpuError(`WebGPU validation error ${when}: ${message.trim()}`);
  const d = ex.program.dispatches[found.index];
  return new GpuError(`WebGPU validation error ${when}, dispatch #${found.index} '${d.label}' (shader '${d.shader}'): ${found.message}`);
}

const isAcquired = (d: Acquired | GPUDevice): d is Acquired => 'device' in d && 'watch' in d;

export async function createTrainer(opts: TrainerOptions): Promise<Trainer> {
  const { program } = opts;
  const device = isAcquired(opts.device) ? opts.device.device : opts.device;
  const watch = isAcquired(opts.device) ? opts.device.watch : watchDevice(device);
  const adapter = isAcquired(opts.device) ? opts.device.description : 'unknown adapter (a bare GPUDevice)';
  const lossEvery = opts.lossEvery ?? 1;
  if (!(Number.isInteger(lossEvery) && lossEvery >= 1)) throw new RangeError(`lossEvery must be a positive integer, got ${lossEvery}`);
  const t0 = performance.now();
  const ex = await createExecutor(device, program, { watch });
  if (opts.warmUp ?? true) {
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder({ label: `${program.name} warm-up` });
    ex.encodeWarmUp(enc);
    ex.clear(enc); // back to the zeros of a fresh allocation
    device.queue.submit([enc.finish()]);
    await watch.race(device.queue.onSubmittedWorkDone(), 'warming up (the first run of every kernel)');
    const error = await watch.race(device.popErrorScope(), 'warming up');
    if (error) throw await invalidStep(ex, 'in the warm-up run', error.message);
  }
  const setupMs = performance.now() - t0;

  // Params from their inits; optimizer state starts at zero (the arenas are zeroed, and nothing
  // else shares a persistent tensor's bytes), except master copies, which start as the params.
  const init = opts.initParams === false ? {} : initialParams(program, opts.seed ?? 0);
  for (const p of program.params) if (init[p.name]) ex.write(p, init[p.name]);
  for (const s of program.state) {
    const param = s.name.startsWith('master.') ? s.name.slice('master.'.length) : undefined;
    if (param !== undefined && init[param]) ex.write(s, init[param]);
  }

  const hyperSlots = new Map<string, TensorSlot>();
  const dataSlots: TensorSlot[] = [];
  for (const s of program.inputs) (isHyperInput(s.name) ? hyperSlots.set(s.name, s) : dataSlots.push(s));
  const lossBytes = Math.ceil(program.loss.bytes / 4) * 4;
  const lossStaging = device.createBuffer({ label: 'loss readback', size: lossBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  // Loss scaling: the factor the step applied is read back every step, to move the scale.
  const factorSlot = program.outputs?.find((o) => o.name === gradFactorOutput);
  if (opts.lossScale && !factorSlot) throw new Error(`createTrainer: a loss scale was given, but program '${program.name}' was compiled without loss scaling`);
  const scaler = factorSlot ? createLossScaler(opts.lossScale ?? defaultLossScale) : undefined;
  const factorStaging = factorSlot && device.createBuffer({ label: 'gradient factor readback', size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });

  let steps = 0;
  const stepMs: number[] = [];
  const software = isAcquired(opts.device) && isSoftwareAdapter(opts.device.adapter.info);
  const sleepFirst = (opts.hostWait ?? (software ? 'sleep' : 'poll')) === 'sleep';
  /**
   * The step's estimated time, for the sleep: a step that still had to be waited for took its
   * whole time; one that was done before the sleep ended took less than the sleep, so the estimate
   * shrinks (an estimate taken only from past step times would ratchet down 20% a step at most, the
   * sleep itself holding each step up after one slow step).
   */
  let estimate: number | undefined;

  const checkBatch = (batch: Readonly<Record<string, HostArray>>) => {
    const missing = dataSlots.filter((s) => !(s.name in batch)).map((s) => s.name);
    if (missing.length) throw new Error(`step: the batch lacks ${missing.map((m) => `'${m}'`).join(', ')}`);
    const known = new Set(dataSlots.map((s) => s.name));
    const extra = Object.keys(batch).filter((k) => !known.has(k));
    if (extra.length) throw new Error(`step: the program has no input ${extra.map((m) => `'${m}'`).join(', ')} (inputs: ${[...known].join(', ')})`);
    for (const s of dataSlots) {
      const data = batch[s.name];
      if (data.length !== numel(s.shape))
        throw new Error(`step: input '${s.name}' must hold ${numel(s.shape)} elements for shape [${s.shape.join(', ')}], got ${data.length}`);
      if ((s.dtype === 'i32') !== data instanceof Int32Array)
        throw new Error(`step: input '${s.name}' is ${s.dtype}: expected ${s.dtype === 'i32' ? 'an Int32Array' : 'a Float32Array'}, got a ${data.constructor.name}`);
    }
  };

  const readNamed = async (slots: readonly TensorSlot[]) => {
    const values = await ex.readMany(slots);
    return Object.fromEntries(slots.map((s, i) => [s.name, values[i] as Float32Array]));
  };

  return {
    async step(batch, hyper) {
      watch.check(`starting step ${steps + 1}`);
      checkBatch(batch);
      const n = steps + 1;
      const doing = `running step ${n}`;
      const t0 = performance.now();
      for (const s of dataSlots) ex.write(s, batch[s.name]);
      const scalars: Record<string, number> = { lr: hyper.lr, weightDecay: hyper.weightDecay, step: hyper.step ?? n, lossScale: scaler?.scaleFor(hyper) ?? 1 };
      for (const [name, s] of hyperSlots) ex.write(s, Float32Array.of(scalars[name]));
      const readLoss = n % lossEvery === 0;
      device.pushErrorScope('validation');
      const enc = device.createCommandEncoder({ label: `${program.name} step ${n}` });
      ex.encode(enc);
      if (readLoss) ex.copyOut(enc, program.loss, lossStaging);
      if (factorStaging) ex.copyOut(enc, factorSlot!, factorStaging);
      device.queue.submit([enc.finish()]);
      const invalid = watch.race(device.popErrorScope(), doing);
      invalid.catch(() => undefined); // awaited below unless the wait for the step fails first
      const sleepMs = sleepFirst && estimate !== undefined ? 0.8 * estimate : 0;
      if (sleepMs >= 1) await new Promise((r) => setTimeout(r, sleepMs));
      const waitFrom = performance.now();
      let loss: number | undefined;
      if (readLoss) {
        await watch.race(lossStaging.mapAsync(GPUMapMode.READ, 0, lossBytes), doing);
        loss = fromDeviceBytes(program.loss.dtype, lossStaging.getMappedRange(0, lossBytes).slice(0), 1)[0];
        lossStaging.unmap();
      } else if (!factorStaging) {
        await watch.race(device.queue.onSubmittedWorkDone(), doing);
      }
      if (factorStaging) {
        await watch.race(factorStaging.mapAsync(GPUMapMode.READ, 0, 4), doing);
        scaler!.after(hyper, new Float32Array(factorStaging.getMappedRange(0, 4).slice(0))[0]);
        factorStaging.unmap();
      }
      const took = performance.now() - t0;
      estimate = sleepMs >= 1 && performance.now() - waitFrom < 1 ? 0.75 * took : took;
      stepMs.push(took);
      const error = await invalid;
      if (error) throw await invalidStep(ex, `in step ${n}`, error.message);
      watch.check(doing);
      steps = n;
      return loss;
    },
    readParams: () => readNamed(program.params),
    readState: () => readNamed(program.state),
    writeParams(params) {
      for (const p of program.params) if (params[p.name]) ex.write(p, params[p.name]);
    },
    writeState(state) {
      for (const s of program.state) if (state[s.name]) ex.write(s, state[s.name]);
    },
    deviceBytes: ex.arenaBytes + ex.overheadBytes + lossStaging.size + (factorStaging?.size ?? 0),
    arenaBytes: ex.arenaBytes,
    planBytes: program.arenas.reduce((a, b) => a + b, 0),
    adapter,
    executor: ex,
    get steps() {
      return steps;
    },
    ...(scaler ? { lossScaler: scaler } : {}),
    stepMs,
    setupMs,
    destroy() {
      if (watch.hung) return; // a hung queue would block the destroy (guard.ts)
      ex.destroy();
      lossStaging.destroy();
      factorStaging?.destroy();
    },
  };
}
