// Autotuning on the device (cli/tune.ts): a program whose matmuls run other candidate tiles trains
// to the same losses as the untuned one; the tuner's cache round trip (a second run times
// nothing and picks the same tiles); a zero budget times nothing and changes nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileProgram, idRanges, lowerCompiled } from '../../compiler/compile-program.ts';
import { kernelTargets, matmulCandidates } from '../../compiler/codegen/wgsl/target.ts';
import gpt from '../../models/gpt.ts';
import { matmulShapes, tuneMatmuls, type MatmulShape } from '../../cli/tune.ts';
import { gpu } from './harness.ts';
import { runBoth } from './step-compare.ts';
import { run as lomoc } from '../support/cli.ts';

describe('autotuning on the device', () => {
  it('gpt tiny with every matmul shape on another candidate tile trains to the untuned losses (3 steps, f32 tolerance)', async () => {
    const acq = await gpu();
    const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: 'cpu' });
    const shapes = matmulShapes([c.step]);
    expect(shapes.length).toBeGreaterThan(2);
    const losses: number[][] = [];
    for (const tile of [undefined, matmulCandidates.cpu[2], matmulCandidates.cpu[1]]) {
      const target = { ...kernelTargets.cpu, tuned: tile ? Object.fromEntries(shapes.map((s) => [s.key, tile])) : undefined };
      const { program } = lowerCompiled({ ...c, target });
      if (tile) expect(program.dispatches.some((d) => d.shader.startsWith(`matmul:${tile.layout[0]}${tile.wgX}x${tile.wgY}.${tile.tm}x${tile.tn}.`))).toBe(true);
      const r = await runBoth(acq, { program, step: c.step }, { vocab: idRanges(c.step), steps: 3 });
      losses.push(r.gpu.losses);
    }
    const [plain, ...tuned] = losses;
    for (const t of tuned) t.forEach((l, i) => expect(Math.abs(l - plain[i]), `step ${i + 1}: ${l} against ${plain[i]}`).toBeLessThanOrEqual(1e-5 * Math.abs(plain[i])));
  });

  const shapes: MatmulShape[] = [
    { key: '33x20x17.NN.c1.f32f32', a: [33, 20], b: [20, 17], dtypeA: 'f32', dtypeB: 'f32', transA: false, transB: false },
    { key: '40x24x36.NT.c1.f32f32', a: [40, 24], b: [36, 24], dtypeA: 'f32', dtypeB: 'f32', transA: false, transB: true },
  ];

  it('the cache round trip: the first run times every shape and writes the cache; the second reads it and times nothing', async () => {
    const acq = await gpu();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lomoc-tune-'));
    try {
      const warnings: string[] = [];
      const opts = { budgetMs: 600_000, reps: 2, cacheDir: dir, warn: (m: string) => warnings.push(m) };
      const first = await tuneMatmuls(acq, kernelTargets.cpu, 'cpu', shapes, opts);
      expect(first.report).toMatchObject({ shapes: 2, timed: 2, cached: 0, skipped: 0 });
      expect(first.report.source).not.toBe('none');
      expect(Object.keys(first.target.tuned!)).toEqual(shapes.map((s) => s.key));
      for (const t of Object.values(first.target.tuned!)) expect(matmulCandidates.cpu).toContainEqual(t);
      expect(fs.readdirSync(dir)).toEqual([path.basename(first.report.cacheFile!)]);
      const second = await tuneMatmuls(acq, kernelTargets.cpu, 'cpu', shapes, opts);
      expect(second.report).toMatchObject({ shapes: 2, timed: 0, cached: 2, skipped: 0, source: 'none' });
      expect(second.target.tuned).toEqual(first.target.tuned);
      expect(second.report.ms).toBeLessThan(100);
      expect(warnings).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a zero budget times nothing, writes nothing, and leaves every shape on the target tile', async () => {
    const acq = await gpu();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lomoc-tune-'));
    try {
      const r = await tuneMatmuls(acq, kernelTargets.cpu, 'cpu', shapes, { budgetMs: 0, cacheDir: dir, warn: (m) => expect.fail(m) });
      expect(r.report).toMatchObject({ shapes: 2, timed: 0, cached: 0, skipped: 2 });
      expect(r.target.tuned).toEqual({});
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lomoc compile --tune: the manifest records the adapter and the tiles, a second compile reads the cache, and the bundle trains', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lomoc-tune-cli-'));
    const saved = process.env.LOMOC_CACHE_DIR;
    process.env.LOMOC_CACHE_DIR = path.join(root, 'cache');
    try {
      const compile = (out: string) => lomoc('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--tune', '120s', '--out', path.join(root, out));
      const first = await compile('a');
      expect(first.stderr.split('\n').filter((l) => l && !/artificially reduced/.test(l))).toEqual([]);
      expect(first.stdout).toMatch(/; kernel target cpu \(auto: software adapter(?:; subgroup reductions)?\); tuned (\d+) matmul shapes in [\d.]+ s \(\1 timed, 0 cached, 0 past the budget; (timestamp-query|wall-clock)\): \d+ won by a tile other than 16x16 on 8x1 interleaved, on vulkan: /);
      const manifest = JSON.parse(fs.readFileSync(path.join(root, 'a', 'manifest.json'), 'utf8'));
      expect(manifest.step.tuned.adapter.device).toMatch(/llvmpipe/);
      const tiles = Object.values(manifest.step.tuned.matmul);
      expect(tiles.length).toBeGreaterThan(2);
      for (const t of tiles) expect(matmulCandidates.cpu).toContainEqual(t);
      const second = await compile('b');
      expect(second.stdout).toMatch(/; tuned (\d+) matmul shapes in [\d.]+ s \(0 timed, \1 cached, 0 past the budget; none\)/);
      expect(JSON.parse(fs.readFileSync(path.join(root, 'b', 'manifest.json'), 'utf8')).step.tuned).toEqual(manifest.step.tuned);
      const train = await lomoc('train', path.join(root, 'a'), '--steps', '2', '--json');
      expect(train.stderr.split('\n').filter((l) => l && !/artificially reduced/.test(l))).toEqual([]);
      expect(train.code).toBe(0);
      const fixed = await lomoc('train', path.join(root, 'a'), '--steps', '1', '--tune', 'off');
      expect(fixed.stderr).toBe(`error: lomoc train: option '--tune' cannot be given with a bundle: the bundle ${path.join(root, 'a')} fixes it (compiled with matmul tiles tuned on ${manifest.step.tuned.adapter.device}); compile another bundle to change it`);
    } finally {
      if (saved === undefined) delete process.env.LOMOC_CACHE_DIR;
      else process.env.LOMOC_CACHE_DIR = saved;
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('lomoc run --tune: the adapter line says what tuning did and the changed shapes follow it; --tune off runs the untuned step to the same losses', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lomoc-tune-run-'));
    const saved = process.env.LOMOC_CACHE_DIR;
    process.env.LOMOC_CACHE_DIR = root;
    try {
      const args = ['run', 'models/gpt.ts', '--preset', 'tiny', '--optimizer', 'lomo', '--steps', '3'];
      const tuned = await lomoc(...args, '--tune', '60s');
      expect(tuned.code).toBe(0);
      const lines = tuned.stdout.split('\n');
      expect(lines[0]).toMatch(/; kernel target cpu \(auto: software adapter(?:; subgroup reductions)?\); tuned (\d+) matmul shapes in [\d.]+ s \(\1 timed, 0 cached, 0 past the budget; (timestamp-query|wall-clock)\): (\d+) won by a tile other than 16x16 on 8x1 interleaved$/);
      const changed = Number(/: (\d+) won by/.exec(lines[0])![1]);
      const detail = /^  \d+x\d+x\d+\.[NT]{2}\.c\d+\.f32f32: \d+x\d+ on \d+x\d+ (interleaved|blocked), [\d.]+ ms against [\d.]+ ms$/;
      expect(lines.filter((l) => detail.test(l))).toHaveLength(changed);
      expect(lines.findIndex((l) => l.startsWith('  step '))).toBeGreaterThan(changed); // below the header, above the steps
      const off = await lomoc(...args, '--tune', 'off', '--json');
      expect(JSON.parse(off.stdout).adapter).toMatch(/; tuning off \(--tune off\)$/);
      const tunedJson = await lomoc(...args, '--tune', '60s', '--json');
      expect(JSON.parse(tunedJson.stdout).adapter).toMatch(/; tuned \d+ matmul shapes in [\d.]+ s \(0 timed, \d+ cached/);
      const [a, b] = [JSON.parse(off.stdout).losses, JSON.parse(tunedJson.stdout).losses] as number[][];
      a.forEach((l, i) => expect(Math.abs(l - b[i])).toBeLessThanOrEqual(1e-5 * Math.abs(l)));
    } finally {
      if (saved === undefined) delete process.env.LOMOC_CACHE_DIR;
      else process.env.LOMOC_CACHE_DIR = saved;
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
