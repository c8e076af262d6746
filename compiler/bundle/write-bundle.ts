// The bundle: a folder a runtime can load with no compiler and no TypeScript:
//   manifest.json   the program (arenas, tensors, dispatches), the plan's totals, the step's options,
//                   and the inference program when the model names its logits (inference-section.ts)
//   kernels/*.wgsl  one file per shader
//   index.js, index.d.ts, node.js, node.d.ts, runtime.js, package.json: the typed ES module entry
//                   and the runtime it runs on (compiler/bundle/write-entry.ts)
// Shader keys (what is baked into each shader) stay in the manifest; file names are plain numbers.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../../contract/manifest.ts';
import { LomocError } from '../diagnostics.ts';
import type { StepProgram } from '../../contract/program.ts';
import type { Config } from '../dsl/model.ts';
import type { MemoryPlan } from '../ir/memory-plan.ts';
import { memoryReport } from '../report/memory-report.ts';
import { inferenceSection, type BundleInference } from './inference-section.ts';
import { entryFiles } from './write-entry.ts';
import { pageFiles } from './write-page.ts';

export interface BundleInfo {
  readonly model: string;
  readonly preset: string;
  readonly config: Config;
  readonly step: Manifest['step'];
  readonly plan: MemoryPlan;
  /** The forward-only program for generation (bundleInference); absent: the bundle cannot generate. */
  readonly inference?: BundleInference;
}

export function bundleManifest(program: StepProgram, info: BundleInfo): { manifest: Manifest; kernels: Record<string, string> } {
  const files: Record<string, string> = {};
  const kernels: Record<string, string> = {};
  // One file per shader key across both programs: a key is exactly what its WGSL text bakes in.
  const fileOf = (key: string, code: string) => {
    if (!Object.hasOwn(files, key)) {
      files[key] = `kernels/${String(Object.keys(kernels).length).padStart(3, '0')}.wgsl`;
      kernels[files[key]] = code;
    }
    return files[key];
  };
  for (const [key, code] of Object.entries(program.shaders)) fileOf(key, code);
  const stepFiles = { ...files };
  // Each category's most bytes live at one moment, as `lomoc plan` and the paper's Table 1 count them.
  const byCategory: Record<string, number> = { ...memoryReport(info.plan).most };
  const { shaders: _code, version: _v, ...rest } = program;
  const manifest: Manifest = {
    format: 'lomoc-bundle',
    version: 1,
    model: info.model,
    preset: info.preset,
    config: { ...info.config },
    step: info.step,
    plan: { peak: info.plan.peak, lowerBound: info.plan.lowerBound, byCategory },
    program: { ...rest, kernels: stepFiles, arenas: [...rest.arenas], features: [...rest.features] } as Manifest['program'],
    ...(info.inference ? { inference: inferenceSection(info.inference, (key) => fileOf(key, info.inference!.program.shaders[key])) } : {}),
  };
  return { manifest, kernels };
}

export interface WriteOptions {
  /** Write the typed entry and runtime.js too (default true): false writes manifest.json and kernels/ alone. */
  readonly entry?: boolean;
  /** The page's sample text (data/moby-dick.txt); the page itself comes with the entry. */
  readonly sample?: string;
}

/**
 * Writes the bundle into `dir`, which must be a new path, an empty folder, or a bundle an earlier
 * compile wrote: then its bundle files are replaced and nothing else is touched. Anything else there
 * (a user's files, a regular file, a manifest that is not a bundle's) is an error, before a byte is
 * written. The files are written to a temporary folder beside `dir` first and moved in at the end,
 * so a failure half-way (a full disk) leaves `dir` as it was and no temporary folder behind.
 */
export function writeBundle(dir: string, program: StepProgram, info: BundleInfo, options: WriteOptions = {}): Manifest {
  const { manifest, kernels } = bundleManifest(program, info);
  const entry = (options.entry ?? true) ? { ...entryFiles(manifest), ...pageFiles(manifest, options.sample) } : {};
  const files: Record<string, string> = { ...kernels, 'manifest.json': JSON.stringify(manifest, null, 1) + '\n', ...entry };
  const target = path.resolve(dir);
  const existing = checkBundleOut(dir);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.lomoc-${process.pid}.tmp`);
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(path.dirname(target), { recursive: true }); // --out a/b/c: its parents are new folders
    mkdirSync(tmp);
    for (const sub of new Set(Object.keys(files).filter((f) => f.includes('/')).map((f) => f.split('/')[0]))) mkdirSync(path.join(tmp, sub));
    for (const [file, text] of Object.entries(files)) writeNamed(path.join(tmp, file), text);
    if (existing === undefined) renameSync(tmp, target);
    else {
      for (const name of existing) rmSync(path.join(target, name), { recursive: true, force: true });
      for (const name of readdirSync(tmp)) renameSync(path.join(tmp, name), path.join(target, name));
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return manifest;
}

/** writeFileSync, with the file's path on a failed write (Node names no path for ENOSPC there). */
function writeNamed(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch (e) {
    if (e && typeof e === 'object' && !('path' in e)) Object.assign(e, { path: file });
    throw e;
  }
}

/** The files a bundle folder holds at its top (entryFiles' and manifest.json, kernels/): what a new compile may replace. */
const bundleNames = new Set(['manifest.json', 'kernels', 'index.js', 'index.d.ts', 'node.js', 'node.d.ts', 'runtime.js', 'package.json', 'index.html', 'page.js', 'page.css', 'data']);

/**
 * Checks that `--out` may be written: undefined when it does not exist; otherwise the bundle files
 * in it, which the new bundle replaces. Throws, naming what is in the way, for anything else.
 */
export function checkBundleOut(dir: string): string[] | undefined {
  const target = path.resolve(dir);
  if (path.basename(target) === '') throw new LomocError(`lomoc compile: --out ${dir}: the root folder cannot hold a bundle; name a new folder`);
  let st;
  try {
    st = statSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (!st.isDirectory()) throw new LomocError(`lomoc compile: --out ${dir}: it is a file, expected a new folder, an empty one, or a bundle folder; nothing was written`);
  const names = readdirSync(target);
  if (names.length === 0) return [];
  const foreign = names.filter((n) => !bundleNames.has(n));
  let isBundle = false;
  try {
    isBundle = (JSON.parse(readFileSync(path.join(target, 'manifest.json'), 'utf8')) as { format?: unknown }).format === 'lomoc-bundle';
  } catch {
    isBundle = false;
  }
  if (!isBundle || foreign.length) {
    const shown = (foreign.length ? foreign : names).slice(0, 5).map((n) => `'${n}'`).join(', ');
    const more = (foreign.length || names.length) > 5 ? `, and ${(foreign.length || names.length) - 5} more` : '';
    throw new LomocError(
      `lomoc compile: --out ${dir}: the folder holds ${isBundle ? 'files that are not part of a bundle' : 'files and no lomoc bundle'} (${shown}${more}); ` +
        'lomoc compile writes only into a new folder, an empty one, or a bundle it wrote earlier, so nothing of yours is replaced: choose another folder',
    );
  }
  return names;
}
