// f16 bundles: `lomoc compile --dtype f16` stores f16 packed in u32 words unless --half native asks
// for array<f16>; the manifest records the choice and must agree with the features the program
// asks for; a native-f16 program on an adapter without shader-f16 is refused naming the feature
// and the option to recompile with.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { acquireFrom } from '../runtime/webgpu/device.ts';
import { editManifest, manifestOf, rejection, type ManifestJson } from './support/bundles.ts';

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-half-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

async function compile(name: string, ...args: string[]) {
  const r = io();
  const dir = path.join(root, name);
  const code = await main(['compile', 'models/mlp.ts', '--target', 'cpu', ...args, '--out', dir], r.io);
  return { code, dir, ...r };
}

const kernelsOf = (dir: string) => readdirSync(path.join(dir, 'kernels')).map((f) => readFileSync(path.join(dir, 'kernels', f), 'utf8'));

// Each test compiles models/mlp.ts once or twice: seconds alone, far more on a loaded machine.
const slow = 120_000;

describe('lomoc compile --dtype f16: packed by default, native on request, recorded in the manifest', () => {
  it('default: packed in u32 words, no shader-f16 asked for, no f16 type in any kernel; the bundle loads', async () => {
    const r = await compile('packed', '--dtype', 'f16');
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const m = manifestOf(r.dir);
    expect(m.step).toMatchObject({ dtype: 'f16', half: 'packed' });
    expect(m.program.features).toEqual([]);
    expect(kernelsOf(r.dir).some((k) => /enable f16|array<f16>/.test(k))).toBe(false);
    expect(m.program.params.map((p: { dtype: string }) => p.dtype)).toContain('f16');
    expect(r.out).toContain('f16         packed in u32 words: runs on every adapter (the default)');
    expect((await loadBundleDir(r.dir)).manifest.step.half).toBe('packed');
  }, slow);

  it('--half native: array<f16> kernels that need shader-f16', async () => {
    const r = await compile('native', '--dtype', 'f16', '--half', 'native');
    expect(r.code).toBe(0);
    const m = manifestOf(r.dir);
    expect(m.step).toMatchObject({ dtype: 'f16', half: 'native' });
    expect(m.program.features).toEqual(['shader-f16']);
    expect(kernelsOf(r.dir).some((k) => k.startsWith('enable f16;'))).toBe(true);
    expect(r.out).toContain('f16         native array<f16>: needs the adapter feature shader-f16 (--half)');
    expect((await loadBundleDir(r.dir)).manifest.step.half).toBe('native');
  }, slow);

  it('f32 and bf16 bundles record nothing; a bad --half or --half without f16 is an error', async () => {
    expect(manifestOf((await compile('f32')).dir).step.half).toBeUndefined();
    const bf16 = manifestOf((await compile('bf16', '--dtype', 'bf16')).dir).step;
    expect([bf16.dtype, 'half' in bf16]).toEqual(['bf16', false]);
    const bad = await compile('bad', '--dtype', 'f16', '--half', 'fast');
    expect([bad.code, bad.err]).toEqual([1, ["error: lomoc compile: option '--half' expects packed or native, got 'fast'"]]);
    const f32 = await compile('f32-half', '--half', 'packed');
    expect([f32.code, f32.err]).toEqual([1, ["error: lomoc compile: option '--half' applies to f16 storage (--dtype f16), got --dtype f32"]]);
  }, slow);

  it('--rounding stochastic with f16 LOMO: recorded (the f16 default is nearest), and the updates round to f16 stochastically', async () => {
    const r = await compile('f16-sr', '--dtype', 'f16', '--optimizer', 'lomo', '--rounding', 'stochastic');
    expect(r.code).toBe(0);
    expect(manifestOf(r.dir).step).toMatchObject({ dtype: 'f16', half: 'packed', rounding: 'stochastic' });
    expect(kernelsOf(r.dir).some((k) => k.includes('f32ToF16Stochastic(w2'))).toBe(true);
    expect('rounding' in manifestOf((await compile('f16-nearest', '--dtype', 'f16', '--optimizer', 'lomo')).dir).step).toBe(false);
  }, slow);

  it('a manifest whose step.half disagrees with program.features is rejected naming the field', async () => {
    // Edits the manifest of a bundle the tests above wrote (they have run: vitest runs a file's tests in order).
    const edit = (from: string, f: (m: ManifestJson) => void) => editManifest(path.join(root, from), f);
    expect(await rejection(edit('packed', (m) => (m.step.half = 'native')))).toBe("manifest.json: step.half: 'native' but program.features does not ask for shader-f16");
    expect(await rejection(edit('native', (m) => (m.step.half = 'packed')))).toBe("manifest.json: step.half: 'packed' but program.features asks for shader-f16");
    expect(await rejection(edit('f32', (m) => (m.step.half = 'packed')))).toBe('manifest.json: step.half: only an f16 bundle records its f16 storage, this one has dtype f32');
  }, slow);
});

describe('a native-f16 program on an adapter without shader-f16', () => {
  it('is refused naming the feature and the option to recompile with', async () => {
    const native = await compile('native-2', '--dtype', 'f16', '--half', 'native');
    const { program } = await loadBundleDir(native.dir);
    const limits = {
      maxStorageBuffersPerShaderStage: 10, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupSizeY: 1024,
      maxComputeWorkgroupStorageSize: 32768, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 31,
    };
    const nvidia = { info: { description: 'Fake GPU', vendor: 'acme' }, limits, features: new Set<string>() } as unknown as GPUAdapter;
    await expect(acquireFrom([{ backend: 'vulkan', request: async () => nvidia }], program, 'run setup-gpu.sh')).rejects.toThrow(
      'no WebGPU adapter can run this (vulkan: Fake GPU (acme) cannot run it (feature shader-f16: missing (the program stores f16 natively; compile it with lomoc compile --dtype f16 --half packed to run without the feature)))',
    );
  }, slow);
});
