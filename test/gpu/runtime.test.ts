// The WebGPU runtime on hand-written StepPrograms (test/gpu/programs.ts), so that it is tested
// apart from the compiler: device acquisition on both of Dawn's adapters, the trainer against an
// f64 oracle, exact allocation, errors that name their dispatch, a lost device, no adapter.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import gpt from '../../models/gpt.ts';
import { resolveConfig, traceModel } from '../../compiler/dsl/model.ts';
import { initParams } from '../../compiler/reference/init.ts';
import { acquireFrom, type Acquired } from '../../runtime/webgpu/device.ts';
import { createExecutor } from '../../runtime/webgpu/executor.ts';
import { DeviceLostError } from '../../runtime/webgpu/guard.ts';
import { initialParams, randomBatch } from '../../runtime/webgpu/init.ts';
import { acquireDevice, nodeSources, setupHint } from '../../runtime/webgpu/node.ts';
import { profileStep } from '../../runtime/webgpu/timing.ts';
import { createTrainer } from '../../runtime/webgpu/trainer.ts';
import type { StepProgram } from '../../contract/program.ts';
import { layout, linearRegression, regressionOracle, slowProgram } from './programs.ts';

const devices = new Map<string, Promise<Acquired>>();
/** One device per adapter for the whole file (a test that breaks its device makes its own). */
const device = (adapter: 'vulkan' | 'gles') => {
  if (!devices.has(adapter)) devices.set(adapter, acquireDevice(linearRegression(5, 3, 256).program, adapter));
  return devices.get(adapter)!;
};

const batches = (n: number, r = linearRegression()) =>
  Array.from({ length: n }, (_, k) => randomBatch(r.program.inputs.filter((s) => s.name === 'x' || s.name === 'y'), {}, k + 1) as { x: Float32Array; y: Float32Array });

describe.each(['vulkan', 'gles'] as const)('the runtime on Dawn\'s %s adapter', (adapter) => {
  it('reports the adapter it got: backend and description', async () => {
    const acq = await device(adapter);
    expect(acq.backend).toBe(adapter === 'gles' ? 'opengles' : 'vulkan');
    expect(acq.description).toMatch(adapter === 'gles' ? /^opengles: .+/ : /^vulkan: .+/);
  });

  it('grants the workgroup size the program asks for (compatibility mode defaults to 128)', async () => {
    const acq = await device(adapter);
    expect(acq.device.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(acq.device.limits.maxComputeWorkgroupSizeX).toBeGreaterThanOrEqual(256);
    // Without requiredLimits the same adapter would give a device the program cannot run on.
    const plain = await (await nodeSources(adapter)[0].request())!.requestDevice();
    expect(plain.limits.maxComputeInvocationsPerWorkgroup).toBe(adapter === 'gles' ? 128 : 256);
    plain.destroy();
  });

  it('trains: 3 SGD steps of a hand-written program equal the f64 oracle (1e-5 relative)', async () => {
    const r = linearRegression(5, 3, 256); // 256 invocations: above GLES's default limit
    const t = await createTrainer({ device: await device(adapter), program: r.program, seed: 11 });
    const start = await t.readParams();
    const bs = batches(3, r);
    const losses = [];
    for (const b of bs) losses.push(await t.step(b, { lr: 0.1, weightDecay: 0.01 }));
    const want = regressionOracle(r, { w: start.w, c: start.c[0] }, bs, { lr: 0.1, weightDecay: 0.01 });
    const end = await t.readParams();
    losses.forEach((l, i) => expect(Math.abs(l! - want.losses[i])).toBeLessThan(1e-5 * Math.abs(want.losses[i])));
    [...end.w, ...end.c].forEach((x, i) => expect(x).toBeCloseTo([...want.w, want.c][i], 6));
    expect(t.steps).toBe(3);
    expect(t.stepMs).toHaveLength(3);
    t.destroy();
  });

  it('allocates exactly the program\'s arenas; deviceBytes adds only uniforms and the loss readback', async () => {
    const r = linearRegression();
    const t = await createTrainer({ device: await device(adapter), program: r.program });
    expect(t.arenaBytes).toBe(r.program.arenas.reduce((a, b) => a + b, 0));
    expect(t.planBytes).toBe(t.arenaBytes);
    expect(t.deviceBytes - t.arenaBytes).toBe(t.executor.overheadBytes + 4);
    expect(t.executor.overheadBytes).toBeLessThanOrEqual(2 * 256); // two distinct uniform sets, one 256-byte slot each
    t.destroy();
  });
});

describe('the trainer', () => {
  it('reads the loss back every k steps (lossEvery) and returns undefined between', async () => {
    const r = linearRegression();
    const t = await createTrainer({ device: await device('vulkan'), program: r.program, lossEvery: 2 });
    const got = [];
    for (const b of batches(4)) got.push(await t.step(b, { lr: 0.1, weightDecay: 0 }));
    expect(got.map((x) => typeof x)).toEqual(['undefined', 'number', 'undefined', 'number']);
    t.destroy();
  });

  it('checks the batch: missing, unknown, mis-sized and mis-typed inputs are errors naming the input', async () => {
    const r = linearRegression();
    const t = await createTrainer({ device: await device('vulkan'), program: r.program });
    const [b] = batches(1);
    const hyper = { lr: 0.1, weightDecay: 0 };
    await expect(t.step({ x: b.x }, hyper)).rejects.toThrow("step: the batch lacks 'y'");
    await expect(t.step({ ...b, z: b.y }, hyper)).rejects.toThrow("step: the program has no input 'z' (inputs: x, y)");
    await expect(t.step({ ...b, y: new Float32Array(4) }, hyper)).rejects.toThrow("step: input 'y' must hold 5 elements for shape [5], got 4");
    await expect(t.step({ ...b, y: new Int32Array(5) }, hyper)).rejects.toThrow("step: input 'y' is f32: expected a Float32Array, got a Int32Array");
    t.destroy();
  });

  it('initialises params with the reference executor\'s streams, bit for bit', async () => {
    const { graph } = traceModel(gpt, resolveConfig(gpt, 'tiny'));
    const ref = initParams(graph, 42, 'f32');
    const params = graph.params.map((p) => ({ name: p.name, shape: graph.values[p.value].shape, init: p.init }));
    const ours = initialParams({ params }, 42);
    for (const p of params) expect(Float32Array.from(ours[p.name])).toEqual(ref[p.name].data);
  });

  it('f16 tensors upload rounded to binary16 and read back as Float32Array', async () => {
    const l = layout();
    const h = l.slot('h', [3], 'f16');
    const program: StepProgram = {
      ...linearRegression().program,
      arenas: [l.size()],
      inputs: [h],
      params: [],
      state: [],
      loss: h,
      dispatches: [],
      shaders: {},
    };
    const ex = await createExecutor((await device('vulkan')).device, program);
    ex.write(h, [1 / 3, 65504, -2.5]);
    expect(Array.from(await ex.read(h))).toEqual([0.333251953125, 65504, -2.5]);
    ex.destroy();
  });

  it('profiles a step: one time per dispatch, from GPU timestamps where the adapter has them', async () => {
    const r = linearRegression();
    const acq = await device('vulkan');
    const ex = await createExecutor(acq.device, r.program);
    const p = await profileStep(ex);
    expect(p.source).toBe(acq.device.features.has('timestamp-query') ? 'timestamp-query' : 'wall-clock');
    expect(p.dispatches.map((d) => d.label)).toEqual(r.program.dispatches.map((d) => d.label));
    for (const d of p.dispatches) expect(d.ms).toBeGreaterThanOrEqual(0);
    ex.destroy();
  });
});

describe('errors name what failed', () => {
  const broken = (f: (p: { -readonly [K in keyof StepProgram]: StepProgram[K] }) => void): StepProgram => {
    const p = structuredClone(linearRegression().program) as { -readonly [K in keyof StepProgram]: StepProgram[K] };
    f(p);
    return p;
  };

  it('a shader that does not compile: the shader, its first dispatch, line and column', async () => {
    const p = broken((p) => (p.shaders = { ...p.shaders, update: p.shaders.update.replace('let grad', 'let grad: i32') }));
    await expect(createExecutor((await device('vulkan')).device, p)).rejects.toThrow(
      "shader 'update' (first used by dispatch #2 'sgdUpdate @ test/gpu/programs.ts') does not compile:\n  update:14:7: cannot initialize 'let' of type 'i32' with value of type 'f32'",
    );
  });

  it('a validation error inside a step names the dispatch that caused it', async () => {
    // The shader wants 256 bytes at binding 0, the dispatch binds 20.
    const p = broken((p) => (p.shaders = { ...p.shaders, meanSquare: p.shaders.meanSquare.replace('r: array<f32>;', 'r: array<f32, 64>;') }));
    const t = createTrainer({ device: await device('vulkan'), program: p });
    await expect(t).rejects.toThrow(
      /^WebGPU validation error in the warm-up run, dispatch #1 'meanSquare @ test\/gpu\/programs.ts' \(shader 'meanSquare'\): .*binding 0 is too small/,
    );
  });

  it('bindings that overlap, outside their arena, or misaligned are rejected before allocation', async () => {
    const dev = (await device('vulkan')).device;
    const overlap = broken((p) => {
      const d = p.dispatches[1];
      p.dispatches = [p.dispatches[0], { ...d, bindings: [d.bindings[0], { ...d.bindings[0], write: true }] }, p.dispatches[2]];
    });
    await expect(createExecutor(dev, overlap)).rejects.toThrow(
      "program 'linear-regression': dispatch #1 'meanSquare @ test/gpu/programs.ts' bindings 0 (arena 0 bytes 1024..1044) and 1 (arena 0 bytes 1024..1044) overlap; " +
        'every binding is writable storage (one arena buffer), and WebGPU forbids overlapping writable bindings: bind a tensor once',
    );
    const outside = broken((p) => (p.dispatches = [{ ...p.dispatches[0], bindings: [{ arena: 0, offset: 4096, bytes: 16, write: false }] }]));
    await expect(createExecutor(dev, outside)).rejects.toThrow("dispatch #0 'residual @ test/gpu/programs.ts' binding 0 (arena 0 bytes 4096..4112) lies outside arena 0 of 2048 bytes");
    const misaligned = broken((p) => (p.dispatches = [{ ...p.dispatches[1], bindings: [{ arena: 0, offset: 4, bytes: 16, write: false }, p.dispatches[1].bindings[1]] }]));
    await expect(createExecutor(dev, misaligned)).rejects.toThrow('binding 0 starts at byte 4, not a multiple of 256 (minStorageBufferOffsetAlignment)');
  });
});

describe('a lost device stops training with a clear error, never a hang', () => {
  it('destroyed between steps: the next step says so', async () => {
    const r = linearRegression();
    const acq = await acquireDevice(r.program);
    const t = await createTrainer({ device: acq, program: r.program });
    const [b1, b2] = batches(2);
    expect(await t.step(b1, { lr: 0.1, weightDecay: 0 })).toBeGreaterThan(0);
    acq.device.destroy();
    // The loss arrives as an event: the step sees it at its start or at its first wait.
    const err = await t.step(b2, { lr: 0.1, weightDecay: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceLostError);
    expect((err as Error).message).toMatch(/^WebGPU device lost while (starting|running) step 2 \(it was destroyed\); training stopped$/);
    await expect(t.readParams()).rejects.toThrow('WebGPU device lost while reading tensors back (it was destroyed); training stopped');
  });

  it('destroyed while a step runs: that step rejects', async () => {
    const p = slowProgram();
    const acq = await acquireDevice(p);
    const t = await createTrainer({ device: acq, program: p, warmUp: false });
    const t0 = performance.now();
    const step = t.step({}, { lr: 0, weightDecay: 0 });
    setTimeout(() => acq.device.destroy(), 20);
    await expect(step).rejects.toThrow('WebGPU device lost while running step 1 (it was destroyed); training stopped');
    expect(performance.now() - t0).toBeLessThan(60_000);
  });
});

describe('with no adapter', () => {
  it('the error names every adapter tried and scripts/setup-gpu.sh', async () => {
    const none = { backend: 'vulkan', request: async () => null };
    const throws = { backend: 'opengles', request: async () => { throw new Error('no suitable backends found\nmore'); } };
    await expect(acquireFrom([none, throws], undefined, setupHint)).rejects.toThrow(
      "no WebGPU adapter can run this (vulkan: no adapter; opengles: no suitable backends found); run `bash scripts/setup-gpu.sh` to install Mesa's software Vulkan (lavapipe) and GLES drivers",
    );
  });

  it('an adapter short of a limit is skipped, naming the limit', async () => {
    const acq = await device('vulkan');
    const big = { ...linearRegression().program, limits: { maxStorageBuffersPerShaderStage: 4, maxComputeInvocationsPerWorkgroup: 1 << 20, maxComputeWorkgroupStorageSize: 0 } };
    await expect(acquireFrom([{ backend: 'vulkan', request: async () => acq.adapter }], big, setupHint)).rejects.toThrow(
      `maxComputeInvocationsPerWorkgroup: needs 1048576, has ${acq.adapter.limits.maxComputeInvocationsPerWorkgroup}`,
    );
  });

  it('lomoc run fails, exit 1, naming scripts/setup-gpu.sh (drivers hidden from Vulkan and EGL)', () => {
    const env = { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', __EGL_VENDOR_LIBRARY_FILENAMES: '/nonexistent/egl.json' };
    const r = spawnSync(process.execPath, ['bin/lomoc.js', 'run', 'models/mlp.ts', '--steps', '1'], { encoding: 'utf8', env, timeout: 60_000 });
    expect(r.status).toBe(1);
    const error = r.stderr.split('\n').find((l) => l.startsWith('error: '));
    expect(error).toBe(
      "error: lomoc run: no WebGPU adapter can run this (vulkan: no adapter; opengles: no adapter); run `bash scripts/setup-gpu.sh` to install Mesa's software Vulkan (lavapipe) and GLES drivers",
    );
  });

  it('LOMOC_ADAPTER accepts auto, vulkan or gles', async () => {
    await expect(acquireDevice(undefined, 'metal')).rejects.toThrow("LOMOC_ADAPTER must be one of auto, vulkan, gles, got 'metal'");
  });
});

describe('runtime/index.ts is browser-safe', () => {
  it('imports nothing from node:, compiler/ or the webgpu package, and reads no process.env', () => {
    // Packages that run in browsers as they are.
    const browserSafe = new Set(['zod']);
    const seen = new Set<string>();
    const problems: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      if (/\bprocess\./.test(text)) problems.push(`${file} uses process`);
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        const spec = m[1];
        if (!spec.startsWith('.')) {
          if (!browserSafe.has(spec)) problems.push(`${path.relative('.', file)} imports '${spec}'`);
        }
        else {
          const target = path.resolve(path.dirname(file), spec);
          if (target.includes(`${path.sep}compiler${path.sep}`)) problems.push(`${path.relative('.', file)} imports ${path.relative('.', target)}`);
          else visit(target);
        }
      }
    };
    visit(path.resolve('runtime/index.ts'));
    expect(problems).toEqual([]);
    expect(seen.size).toBeGreaterThan(8);
  });
});
