// The tuner's cache file and the --tune option (cli/tune-cache.ts, cli/step-options.ts), without a
// device: a corrupt, foreign or stale cache is a warning and is ignored; an unwritable cache folder
// is a warning, never a failure; writes round-trip; `--tune off` (and auto on a software adapter)
// leaves the compiled program exactly as it was, and an empty tuned table changes no WGSL.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compileProgram, lowerCompiled } from '../compiler/compile-program.ts';
import { kernelTargets, matmulCandidates } from '../compiler/codegen/wgsl/target.ts';
import gpt from '../models/gpt.ts';
import { optionChecks } from '../cli/option-checks.ts';
import { stepOptionTable } from '../cli/step-options.ts';
import { adapterIdentity, readTuneCache, tuneCacheDir, tuneCachePath, writeTuneCache, type TunedShape } from '../cli/tune-cache.ts';
import { tuneCompiled } from '../cli/tune.ts';

const lavapipe = adapterIdentity({ vendor: 'mesa', architecture: '', device: 'llvmpipe (LLVM 15.0.7, 256 bits)', description: 'Vulkan driver 25.0.7' });
const other = { ...lavapipe, description: 'Vulkan driver 25.0.8' };
const shape: TunedShape = { tile: matmulCandidates.cpu[2], ms: 1.5, defaultMs: 2 };

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lomoc-tune-cache-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the tuning cache', () => {
  it('lives in $LOMOC_CACHE_DIR, else $XDG_CACHE_HOME/lomoc, else ~/.cache/lomoc; one file per adapter and target', () => {
    expect(tuneCacheDir({ LOMOC_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c');
    expect(tuneCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/lomoc');
    expect(tuneCacheDir({})).toBe(path.join(os.homedir(), '.cache', 'lomoc'));
    const a = tuneCachePath(dir, lavapipe, 'cpu');
    expect(path.basename(a)).toMatch(/^tune-cpu-[0-9a-f]{12}\.json$/);
    expect(tuneCachePath(dir, other, 'cpu')).not.toBe(a);
    expect(tuneCachePath(dir, lavapipe, 'gpu')).not.toBe(a);
  });

  it('round trip: what is written is read back; no file reads as empty, silently; no temp file is left', () => {
    const file = tuneCachePath(dir, lavapipe, 'cpu');
    const warnings: string[] = [];
    expect(readTuneCache(file, lavapipe, 'cpu', (m) => warnings.push(m))).toEqual({});
    writeTuneCache(file, lavapipe, 'cpu', { '8x8x8.NN.c1.f32f32': shape }, (m) => warnings.push(m));
    expect(readTuneCache(file, lavapipe, 'cpu', (m) => warnings.push(m))).toEqual({ '8x8x8.NN.c1.f32f32': shape });
    expect(fs.readdirSync(dir)).toEqual([path.basename(file)]);
    expect(warnings).toEqual([]);
  });

  it('a corrupt file, one of another adapter, and a tile that is no longer a candidate are warnings and are ignored', () => {
    const file = path.join(dir, 'tune.json');
    const read = () => {
      const warnings: string[] = [];
      return { shapes: readTuneCache(file, lavapipe, 'cpu', (m) => warnings.push(m)), warnings };
    };
    fs.writeFileSync(file, ''); // a file cut short (not by lomoc, which renames whole files in)
    expect(read()).toEqual({ shapes: {}, warnings: [`tuning cache ${file}: not JSON (Unexpected end of JSON input); ignored, tuning again`] });
    fs.writeFileSync(file, JSON.stringify({ format: 'lomoc-tune', version: 1, adapter: lavapipe, target: 'cpu', shapes: { k: { tile: shape.tile, ms: 'fast', defaultMs: 1 } } }));
    expect(read()).toEqual({ shapes: {}, warnings: [`tuning cache ${file}: shapes.k.ms: Invalid input: expected number, received string; ignored, tuning again`] });
    writeTuneCache(file, other, 'cpu', { k: shape }, expect.fail);
    expect(read()).toEqual({ shapes: {}, warnings: [`tuning cache ${file}: written for another adapter or target; ignored, tuning again`] });
    const stale = { wgX: 4, wgY: 4, tm: 2, tn: 2, layout: 'blocked' as const };
    writeTuneCache(file, lavapipe, 'cpu', { k: shape, old: { ...shape, tile: stale } }, expect.fail);
    expect(read()).toEqual({ shapes: { k: shape }, warnings: [`tuning cache ${file}: shape old: tile {"wgX":4,"wgY":4,"tm":2,"tn":2,"layout":"blocked"} is not a cpu candidate; tuning it again`] });
  });

  it('an unwritable cache folder is a warning, not a failure, and a file in the way is left as it was', () => {
    const blocker = path.join(dir, 'not-a-folder');
    fs.writeFileSync(blocker, 'mine');
    const file = path.join(blocker, 'tune.json');
    const warnings: string[] = [];
    writeTuneCache(file, lavapipe, 'cpu', { k: shape }, (m) => warnings.push(m));
    expect(warnings).toEqual([`tuning cache ${file}: cannot be written (EEXIST: file already exists, mkdir '${blocker}'); the results are used but not kept`]);
    expect(fs.readFileSync(blocker, 'utf8')).toBe('mine');
    expect(readTuneCache(file, lavapipe, 'cpu', (m) => warnings.push(m))).toEqual({});
    expect(warnings[1]).toBe(`tuning cache ${file}: cannot be read (ENOTDIR: not a directory, open '${file}'); tuning again`);
  });
});

describe('--tune', () => {
  const parse = (text: string) => stepOptionTable.tune.parse(text, 'tune', optionChecks('run'));

  it('takes auto, off or a budget in seconds; anything else is an error naming the option', () => {
    expect(parse('auto')).toEqual({ mode: 'auto' });
    expect(parse('off')).toEqual({ mode: 'off' });
    expect(parse('20s')).toEqual({ mode: 'on', budgetMs: 20_000 });
    expect(parse('2.5')).toEqual({ mode: 'on', budgetMs: 2500 });
    expect(() => parse('fast')).toThrow("lomoc run: option '--tune' expects auto, off or a time budget in seconds like 20s, got 'fast'");
    expect(() => parse('0s')).toThrow("lomoc run: option '--tune' must be positive, got '0'");
  });

  it('off, and auto on a software adapter, keep the compiled program as it is; an empty tuned table changes no WGSL', async () => {
    const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: 'cpu' });
    const acq = { device: undefined as unknown as GPUDevice, adapter: { info: { ...lavapipe } as GPUAdapterInfo } };
    const off = await tuneCompiled(acq, c, 'cpu', { mode: 'off' }, expect.fail);
    expect(off.program).toBe(c.program);
    expect(off.line).toBe('tuning off (--tune off)');
    const auto = await tuneCompiled(acq, c, 'cpu', { mode: 'auto' }, expect.fail);
    expect(auto.program).toBe(c.program);
    expect(auto.line).toBe('tuning off (--tune auto: software adapter; give --tune 60s to tune)');
    expect(JSON.stringify(lowerCompiled({ ...c, target: { ...kernelTargets.cpu, tuned: {} } }).program)).toBe(JSON.stringify(c.program));
  });
});
