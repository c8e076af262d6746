// A real tiny bundle (gpt tiny, lomo, cpu kernel shapes), in memory and on disk, for the manifest
// tests and the manifest fuzzer.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleManifest } from '../../compiler/bundle/write-bundle.ts';
import { compileProgram } from '../../compiler/compile-program.ts';
import gpt from '../../models/gpt.ts';
import mlp from '../../models/mlp.ts';
import type { Manifest } from '../../contract/manifest.ts';
import { loadBundle, type LoadedBundle } from '../../runtime/bundle/load-bundle.ts';

export const compiled = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: 'cpu' });
const info = {
  model: 'gpt',
  preset: 'tiny',
  config: compiled.config,
  step: { optimizer: 'lomo' as const, dtype: 'f32' as const, checkpoint: 'none', clipNorm: null, clipValue: null, target: 'cpu' as const },
  plan: compiled.plan,
};
const made = bundleManifest(compiled.program, info);
export const manifest: Manifest = made.manifest;
/** Kernel text by file (kernels/000.wgsl ...). */
export const kernels: Readonly<Record<string, string>> = made.kernels;

/** A fresh, editable copy of the manifest as JSON data. */
export const manifestJson = (): Record<string, any> => JSON.parse(JSON.stringify(manifest));

/** Loads `json` with the kernels from memory (`files` overrides some); no file system. */
export function loadInMemory(json: unknown, files: Readonly<Record<string, string>> = {}): Promise<LoadedBundle> {
  const text = typeof json === 'string' ? json : JSON.stringify(json);
  return loadBundle(text, async (file) => {
    const all = { ...kernels, ...files };
    if (!Object.hasOwn(all, file)) throw new Error(`ENOENT: no such file '${file}'`);
    return all[file];
  });
}

/** Writes the bundle's manifest and kernels (no entry module) to `dir`. */
export function writeTinyBundle(dir: string, json: unknown = manifest): void {
  mkdirSync(path.join(dir, 'kernels'), { recursive: true });
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(json));
  for (const [file, code] of Object.entries(kernels)) writeFileSync(path.join(dir, file), code);
}

/** The mlp's bundle (tiny, sgd): small enough for thousands of fuzz cases a second. */
export function smallBundle(): { manifest: Manifest; kernels: Readonly<Record<string, string>> } {
  const c = compileProgram(mlp, { preset: 'tiny', optimizer: 'sgd', target: 'cpu' });
  const step = { optimizer: 'sgd' as const, dtype: 'f32' as const, checkpoint: 'none', clipNorm: null, clipValue: null, target: 'cpu' as const };
  return bundleManifest(c.program, { model: 'mlp', preset: 'tiny', config: c.config, step, plan: c.plan });
}

/** Fuzz case counts: `normal` per CI run, LOMOC_FUZZ_RUNS=n for a long run. */
export function fuzzRuns(normal: number): number {
  const env = process.env.LOMOC_FUZZ_RUNS;
  if (env === undefined || env === '') return normal;
  const n = Number(env);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`LOMOC_FUZZ_RUNS must be a positive integer, got '${env}'`);
  return n;
}

/** A fuzz test's time limit: generous per CI run, none worth hitting in a long run. */
export const fuzzTimeout = (): number => (process.env.LOMOC_FUZZ_RUNS ? 24 * 3600_000 : 120_000);
