// Every wait on the GPU has a deadline. On main a WGSL kernel that never ends hung `lomoc train`
// forever (onSubmittedWorkDone never settles, and no device loss comes). Now the wait ends with
// a GpuTimeoutError naming the stage; the device is left alone (on lavapipe, destroying a device
// or buffer whose queue still runs the kernel blocks the thread, and so does the process's
// natural exit), and the CLI prints the error and calls process.exit, which ends the driver's
// threads with the process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { anyDeviceHung, gpuTimeoutMs, GpuTimeoutError, watchDevice } from '../../runtime/webgpu/guard.ts';
import { run } from '../support/cli.ts';

/** A device that never loses itself and never settles anything: only the deadline ends a wait. */
const silentDevice = () => ({ lost: new Promise<never>(() => undefined), addEventListener: () => undefined }) as unknown as GPUDevice;

describe('deadlines on GPU waits (no GPU: a device that never answers)', () => {
  it('a wait that never settles ends at the deadline, naming the stage; the watch marks the device hung', async () => {
    const watch = watchDevice(silentDevice(), 50);
    expect(watch.hung).toBe(false);
    const t0 = performance.now();
    const err = await watch.race(new Promise(() => undefined), 'running step 3').catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(GpuTimeoutError);
    expect((err as Error).message).toBe('the GPU did not finish running step 3 within 0.05 s (LOMOC_GPU_TIMEOUT_MS=50): a kernel that never ends, or a hung device; stopped');
    expect(watch.hung).toBe(true);
    expect(anyDeviceHung()).toBe(true);
  });

  it('a wait that settles in time resolves with its value and leaves no timer behind', async () => {
    const watch = watchDevice(silentDevice(), 200);
    expect(await watch.race(Promise.resolve(7), 'reading the loss')).toBe(7);
    await expect(watch.race(Promise.reject(new Error('map failed')), 'reading the loss')).rejects.toThrow('map failed');
    await new Promise((r) => setTimeout(r, 300));
    expect(watch.hung).toBe(false);
  });

  it('LOMOC_GPU_TIMEOUT_MS: defaults scaled for CPU adapters, and a clear error for nonsense', () => {
    expect(gpuTimeoutMs(false, undefined)).toBe(120_000);
    expect(gpuTimeoutMs(true, undefined)).toBe(600_000);
    expect(gpuTimeoutMs(true, '2500')).toBe(2500);
    for (const bad of ['0', '-1', '1.5', 'soon', '1e3', '99999999999'])
      expect(() => gpuTimeoutMs(false, bad), bad).toThrow(
        new GpuTimeoutError(`LOMOC_GPU_TIMEOUT_MS must be a whole number of milliseconds in 1..9999999999, got '${bad}'`),
      );
  });
});

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-hardening-deadline-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A gpt tiny bundle (vocab 256, for the bytes tokenizer) whose first dispatch's kernel `edit` rewrites. */
async function bundleWith(name: string, edit: (code: string) => string): Promise<{ dir: string; key: string; first: string }> {
  const dir = path.join(root, name);
  expect((await run('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--out', dir)).code).toBe(0);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const key = manifest.program.dispatches[0].shader as string;
  const file = path.join(dir, manifest.program.kernels[key]);
  const code = readFileSync(file, 'utf8');
  const changed = edit(code);
  expect(changed).not.toBe(code);
  writeFileSync(file, changed);
  return { dir, key, first: manifest.program.dispatches[0].label };
}

const lomoc = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['bin/lomoc.js', ...args], { encoding: 'utf8', env: { ...process.env, LOMOC_DEBUG: '', ...env }, timeout: 150_000, killSignal: 'SIGKILL' });

describe('broken bundles on lavapipe', () => {
  it("a kernel WebGPU refuses is the bundle's fault (exit 1, naming the bundle and the shader), not an internal error", async () => {
    const { dir, key, first } = await bundleWith('bad-wgsl', (code) => code.replace(/(fn\s+main\s*\([\s\S]*?\)\s*\{)/, '$1\n  let broken: u32 = 1.5;'));
    const r = lomoc(['train', dir, '--steps', '1']);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    const err = r.stderr.split('\n').filter((l) => !l.startsWith('Warning: ')).join('\n').trim();
    expect(err).toBe(
      `error: lomoc train: the bundle ${dir} cannot run: shader '${key}' (first used by dispatch #0 '${first}') does not compile:\n` +
        `  ${key}:9:21: cannot convert value of type 'abstract-float' to type 'u32'`,
    );
  }, 200_000);

  it('lomoc train on a bundle with a kernel that never ends exits 1 with the deadline error, not a hang', async () => {
    // The first kernel spins: a loop whose exit depends on a value it never holds, with a store so
    // no compiler may delete it. The arenas are zeros in the warm-up run: buffer[1] never equals buffer[0] + 12345.
    const { dir } = await bundleWith('spin', (code) => {
      const buffer = /var\s*<\s*storage[^>]*>\s*(\w+)/.exec(code)![1];
      return code.replace(/(fn\s+main\s*\([\s\S]*?\)\s*\{)/, `$1\n  loop { ${buffer}[0] = ${buffer}[0] + 1; if (${buffer}[1] == ${buffer}[0] + 12345) { break; } }`);
    });
    const t0 = Date.now();
    const r = lomoc(['train', dir, '--steps', '1'], { LOMOC_GPU_TIMEOUT_MS: '3000' });
    expect(r.signal, 'the CLI hung and was killed').toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      'error: lomoc train: the GPU did not finish warming up (the first run of every kernel) within 3 s (LOMOC_GPU_TIMEOUT_MS=3000): a kernel that never ends, or a hung device; stopped',
    );
    expect(Date.now() - t0).toBeLessThan(150_000);
  }, 200_000);
});
