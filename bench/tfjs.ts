// TensorFlow.js on WebGPU as a benchmark peer, on Dawn's default adapter (the one lomoc's
// acquireDevice takes first: lavapipe on this machine). @tensorflow/tfjs-backend-webgpu registers
// its backend only if `navigator.gpu` exists when it is first imported, so this sets
// navigator.gpu to a Dawn instance and only then imports the packages (dynamically, once per
// process). That instance is pinned for the life of the process: Dawn crashes intermittently in
// ProcessEvents when a `create()` result is garbage-collected.
//
// LOMOC_ADAPTER=gles gives TF.js Dawn's GLES backend in compatibility mode instead, as lomoc gets.
import { readFileSync } from 'node:fs';
import { describeAdapter } from '../runtime/webgpu/device.ts';

type Tf = typeof import('@tensorflow/tfjs');

export interface TfPeer {
  readonly tf: Tf;
  /** The adapter TF.js runs on, in lomoc's `backend: description` form. */
  readonly adapter: string;
  /** Package versions, for the tables. */
  readonly version: string;
  /** Waits until every kernel TF.js has recorded so far has finished on the device. */
  /** Submits what TF.js recorded and waits for the queue; `leadMs`: sleeps that long first (see bench/matmul.ts). */
  readonly sync: (leadMs?: number) => Promise<void>;
}

const pinned = Symbol.for('lomoc.bench.tfjs');
type Holder = Record<symbol, Promise<TfPeer> | undefined>;

export function loadTfjs(): Promise<TfPeer> {
  const holder = globalThis as unknown as Holder;
  return (holder[pinned] ??= (async () => {
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    process.env.EGL_PLATFORM ??= 'surfaceless';
    const dawn = await import('webgpu');
    Object.assign(globalThis, dawn.globals);
    const gles = process.env.LOMOC_ADAPTER === 'gles';
    const instance = dawn.create(gles ? ['backend=opengles'] : []);
    (globalThis as Record<symbol, unknown>)[Symbol.for('lomoc.bench.tfjs.dawn')] = instance;
    const gpu = gles
      ? {
          requestAdapter: (o?: GPURequestAdapterOptions) =>
            instance.requestAdapter({ ...o, featureLevel: 'compatibility' } as GPURequestAdapterOptions),
          getPreferredCanvasFormat: () => 'rgba8unorm',
        }
      : instance;
    // Node 21+ defines a read-only navigator getter; Node 20 has none. Either way, replace it.
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    const probe = await gpu.requestAdapter();
    const adapter = probe ? describeAdapter(gles ? 'opengles' : 'vulkan', probe) : 'no adapter';
    const tf = await import('@tensorflow/tfjs');
    await import('@tensorflow/tfjs-backend-webgpu');
    const pkg = new URL('../node_modules/@tensorflow/tfjs-backend-webgpu/package.json', import.meta.url);
    const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
    if (!(await tf.setBackend('webgpu'))) throw new Error(`TF.js: the webgpu backend did not initialise (adapter: ${adapter})`);
    await tf.ready();
    const backend = tf.backend() as unknown as {
      ensureCommandEncoderReady(): void;
      endComputePassEncoder(): void;
      submitQueue(): void;
      queue: GPUQueue;
    };
    // TF.js records kernels into one encoder until a read; this is the sequence its reads use.
    const sync = async (leadMs = 0) => {
      backend.ensureCommandEncoderReady();
      backend.endComputePassEncoder();
      backend.submitQueue();
      if (leadMs > 0) await new Promise((r) => setTimeout(r, leadMs));
      await backend.queue.onSubmittedWorkDone();
    };
    return { tf, adapter, version: `@tensorflow/tfjs ${tf.version_core}, tfjs-backend-webgpu ${version}`, sync };
  })());
}
