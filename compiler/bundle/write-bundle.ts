// The bundle: a folder a runtime can load with no compiler and no TypeScript:
//   manifest.json   the program (arenas, tensors, dispatches), the plan's totals, the step's options
//   kernels/*.wgsl  one file per shader
//   index.js, index.d.ts, node.js, node.d.ts, runtime.js, package.json: the typed ES module entry
//                   and the runtime it runs on (compiler/bundle/write-entry.ts)
// Shader keys (what is baked into each shader) stay in the manifest; file names are plain numbers.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../../contract/manifest.ts';
import type { StepProgram } from '../../contract/program.ts';
import type { Config } from '../dsl/model.ts';
import type { MemoryPlan } from '../ir/memory-plan.ts';
import { entryFiles } from './write-entry.ts';

export interface BundleInfo {
  readonly model: string;
  readonly preset: string;
  readonly config: Config;
  readonly step: Manifest['step'];
  readonly plan: MemoryPlan;
}

export function bundleManifest(program: StepProgram, info: BundleInfo): { manifest: Manifest; kernels: Record<string, string> } {
  const files: Record<string, string> = {};
  const kernels: Record<string, string> = {};
  Object.entries(program.shaders).forEach(([key, code], i) => {
    const file = `kernels/${String(i).padStart(3, '0')}.wgsl`;
    files[key] = file;
    kernels[file] = code;
  });
  const byCategory: Record<string, number> = {};
  for (const b of info.plan.buffers) byCategory[b.category] = (byCategory[b.category] ?? 0) + b.bytes;
  const { shaders: _code, version: _v, ...rest } = program;
  const manifest: Manifest = {
    format: 'lomoc-bundle',
    version: 1,
    model: info.model,
    preset: info.preset,
    config: { ...info.config },
    step: info.step,
    plan: { peak: info.plan.peak, lowerBound: info.plan.lowerBound, byCategory },
    program: { ...rest, kernels: files, arenas: [...rest.arenas], features: [...rest.features] } as Manifest['program'],
  };
  return { manifest, kernels };
}

export interface WriteOptions {
  /** Write the typed entry and runtime.js too (default true): false writes manifest.json and kernels/ alone. */
  readonly entry?: boolean;
}

/** Writes the bundle into `dir` (replacing it whole: written beside it, then renamed). */
export function writeBundle(dir: string, program: StepProgram, info: BundleInfo, options: WriteOptions = {}): Manifest {
  const { manifest, kernels } = bundleManifest(program, info);
  const entry = (options.entry ?? true) ? entryFiles(manifest) : {};
  const tmp = `${dir.replace(/\/+$/, '')}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(path.join(tmp, 'kernels'), { recursive: true });
  for (const [file, code] of Object.entries(kernels)) writeFileSync(path.join(tmp, file), code);
  writeFileSync(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
  for (const [file, text] of Object.entries(entry)) writeFileSync(path.join(tmp, file), text);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return manifest;
}
