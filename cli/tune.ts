// Autotuning per adapter: each distinct matmul shape of a program (M, K, N, transposes, output
// matrices, storage dtypes) is timed on the device under each tile of its target's candidate list
// (target.ts matmulCandidates), and the fastest goes into the target's `tuned` table, which
// codegen reads (emit-matmul.ts). Results are cached per adapter and shape (tune-cache.ts), so a
// second run times nothing. Time is bounded: once `budgetMs` is spent the remaining shapes keep
// the target's tile. Each shape is timed as a lone matmul (no epilogue) on zeroed inputs: the tile
// decides the loads and registers, which fused epilogues and values do not change.
// Timing: GPU timestamps where the device has `timestamp-query`, else the submit to the queue's
// completion (runtime/webgpu/timing.ts); best of `reps` after one warm-up run (shader compile).
import { matmulGeometry } from '../compiler/codegen/wgsl/emit-matmul.ts';
import { useMatvec } from '../compiler/codegen/wgsl/emit-matvec.ts';
import { lowerStep } from '../compiler/codegen/wgsl/lower.ts';
import { matmulCandidates, matmulShapeKey, type KernelTarget, type MatmulTile, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import { GraphBuilder } from '../compiler/ir/builder.ts';
import { noFusion } from '../compiler/ir/fusion.ts';
import type { DType, Graph, Shape } from '../compiler/ir/types.ts';
import { planMemory } from '../compiler/passes/plan-memory.ts';
import { createExecutor } from '../runtime/webgpu/executor.ts';
import { profileStep } from '../runtime/webgpu/timing.ts';
import { adapterIdentity, readTuneCache, tuneCacheDir, tuneCachePath, writeTuneCache, type TunedShape } from './tune-cache.ts';
import { defaultTuneBudgetMs, type TuneChoice } from './step-options.ts';
import { lowerCompiled } from '../compiler/compile-program.ts';
import type { CompiledForward } from '../compiler/pipeline.ts';
import type { StepProgram } from '../contract/program.ts';
import { isSoftwareAdapter } from '../contract/adapter-kind.ts';

/** One distinct matmul shape of a program: its operands as a node sees them. */
export interface MatmulShape {
  readonly key: string;
  readonly a: Shape;
  readonly b: Shape;
  readonly dtypeA: DType;
  readonly dtypeB: DType;
  readonly transA: boolean;
  readonly transB: boolean;
}

/** The distinct matmul shapes of `graphs`, by matmulShapeKey, in first-use order. */
export function matmulShapes(graphs: readonly Graph[], target?: KernelTarget): MatmulShape[] {
  const out = new Map<string, MatmulShape>();
  for (const g of graphs)
    for (const n of g.nodes) {
      if (n.op !== 'matmul') continue;
      const [a, b] = n.inputs.map((v) => g.values[v]);
      const { transA, transB } = n.attrs as { transA: boolean; transB: boolean };
      const geo = matmulGeometry(a.shape, b.shape, transA, transB);
      // Few-row products run the matrix-vector kernel (emit-matvec.ts), which has no tile to tune.
      if (target && useMatvec(geo, target)) continue;
      const key = matmulShapeKey(geo, a.dtype, b.dtype);
      if (!out.has(key)) out.set(key, { key, a: a.shape, b: b.shape, dtypeA: a.dtype, dtypeB: b.dtype, transA, transB });
    }
  return [...out.values()];
}

export interface TuneOptions {
  /** Stop timing new shapes once this much wall time is spent (a shape is timed whole or not at all). */
  readonly budgetMs: number;
  /** Timed runs per candidate after the warm-up (default 3). */
  readonly reps?: number;
  /** The cache folder (tune-cache.ts tuneCacheDir); null: neither read nor written. */
  readonly cacheDir: string | null;
  readonly warn: (message: string) => void;
}

export interface TuneReport {
  readonly shapes: number;
  /** Shapes whose tile came from the cache file. */
  readonly cached: number;
  /** Shapes timed now. */
  readonly timed: number;
  /** Shapes left on the target's tile because the budget ran out. */
  readonly skipped: number;
  readonly ms: number;
  readonly source: 'timestamp-query' | 'wall-clock' | 'none';
  readonly cacheFile: string | null;
  /** Every tuned shape (cached or timed), its winner and times. */
  readonly results: Readonly<Record<string, TunedShape>>;
}

/** What tuning needs of a device: runtime/webgpu's Acquired. */
export interface TuneDevice {
  readonly device: GPUDevice;
  readonly adapter: { readonly info: GPUAdapterInfo };
}

/** Milliseconds per dispatch of `tile` on `shape`: best of `reps` after a warm-up. */
async function timeTile(device: GPUDevice, base: KernelTarget, shape: MatmulShape, tile: MatmulTile, reps: number): Promise<{ ms: number; source: TuneReport['source'] }> {
  const b = new GraphBuilder('tune');
  const loc = { file: 'cli/tune.ts', line: 1, col: 1 };
  const x = b.value(shape.a, shape.dtypeA, 'input', loc);
  const y = b.value(shape.b, shape.dtypeB, 'input', loc);
  const [out] = b.node('matmul', [x, y], { transA: shape.transA, transB: shape.transB }, loc, 'forward');
  const g: Graph = { name: 'tune', values: b.values, nodes: b.nodes, inputs: [], params: [], loss: out };
  const fusion = noFusion(g.nodes.length);
  const program = lowerStep(g, planMemory(g, { fusion, keep: [out] }), fusion, { ...base, matmul: tile, tuned: undefined });
  const ex = await createExecutor(device, program);
  try {
    await profileStep(ex); // compiles the shader (lavapipe compiles at first use)
    let best = Infinity;
    let source: TuneReport['source'] = 'none';
    for (let r = 0; r < reps; r++) {
      const p = await profileStep(ex);
      best = Math.min(best, p.totalMs);
      source = p.source;
    }
    return { ms: best, source };
  } finally {
    ex.destroy();
  }
}

/**
 * `base` with a `tuned` table for `shapes` on this device: cached winners first, then each
 * uncached shape timed under every candidate of `targetName` while the budget lasts. Cached and
 * newly timed results are written back to the cache.
 */
export async function tuneMatmuls(acq: TuneDevice, base: KernelTarget, targetName: TargetName, shapes: readonly MatmulShape[], opts: TuneOptions): Promise<{ target: KernelTarget; report: TuneReport }> {
  const t0 = performance.now();
  const adapter = adapterIdentity(acq.adapter.info);
  const cacheFile = opts.cacheDir === null ? null : tuneCachePath(opts.cacheDir, adapter, targetName);
  const known: Record<string, TunedShape> = cacheFile ? readTuneCache(cacheFile, adapter, targetName, opts.warn) : {};
  const results: Record<string, TunedShape> = {};
  let [cached, timed, skipped] = [0, 0, 0];
  let source: TuneReport['source'] = 'none';
  for (const shape of shapes) {
    if (known[shape.key]) {
      results[shape.key] = known[shape.key];
      cached++;
      continue;
    }
    if (performance.now() - t0 >= opts.budgetMs) {
      skipped++;
      continue;
    }
    const times: number[] = [];
    for (const tile of matmulCandidates[targetName]) {
      const t = await timeTile(acq.device, base, shape, tile, opts.reps ?? 3);
      times.push(t.ms);
      source = t.source;
    }
    const win = times.indexOf(Math.min(...times));
    results[shape.key] = { tile: matmulCandidates[targetName][win], ms: times[win], defaultMs: times[0] };
    timed++;
  }
  if (cacheFile && timed > 0) writeTuneCache(cacheFile, adapter, targetName, { ...known, ...results }, opts.warn);
  const tuned = Object.fromEntries(Object.entries(results).map(([k, r]) => [k, r.tile]));
  const report: TuneReport = { shapes: shapes.length, cached, timed, skipped, ms: performance.now() - t0, source, cacheFile, results };
  return { target: { ...base, tuned }, report };
}

const tileText = (t: MatmulTile) => `${t.tm}x${t.tn} on ${t.wgX}x${t.wgY} ${t.layout}`;

/** "tuned 12 matmul shapes in 8.1 s (9 timed, 3 cached, 0 past the budget; wall-clock): 5 won by other tiles", and one line per such shape. */
export function describeTuning(r: TuneReport, target: KernelTarget): string[] {
  const changed = Object.entries(r.results).filter(([, s]) => tileText(s.tile) !== tileText(target.matmul));
  const head = `tuned ${r.shapes} matmul shapes in ${(r.ms / 1000).toFixed(1)} s (${r.timed} timed, ${r.cached} cached, ${r.skipped} past the budget; ${r.source}): ${changed.length} won by a tile other than ${tileText(target.matmul)}`;
  return [head, ...changed.map(([k, s]) => `  ${k}: ${tileText(s.tile)}, ${s.ms.toFixed(3)} ms against ${s.defaultMs.toFixed(3)} ms`)];
}

/**
 * What `--tune` makes of a compiled step on the device it will run on: the program relowered with
 * a tuned table (the plan is unchanged: matmul tiles take no scratch), or the program as it is
 * (off, or auto on a software adapter), and a line saying which, for the command's output.
 */
export async function tuneCompiled<C extends Pick<CompiledForward, 'step' | 'plan' | 'fusion' | 'target'> & { readonly program: StepProgram }>(
  acq: TuneDevice, c: C, targetName: TargetName, choice: TuneChoice, warn: (message: string) => void,
): Promise<{ program: StepProgram; target: KernelTarget; line: string; details: string[]; report?: TuneReport }> {
  if (choice.mode === 'off') return { program: c.program, target: c.target, line: 'tuning off (--tune off)', details: [] };
  if (choice.mode === 'auto' && isSoftwareAdapter(acq.adapter.info))
    return { program: c.program, target: c.target, line: 'tuning off (--tune auto: software adapter; give --tune 60s to tune)', details: [] };
  const budgetMs = choice.mode === 'on' ? choice.budgetMs : defaultTuneBudgetMs;
  const { target, report } = await tuneMatmuls(acq, c.target, targetName, matmulShapes([c.step], c.target), { budgetMs, cacheDir: tuneCacheDir(), warn });
  const [line, ...details] = describeTuning(report, c.target);
  return { program: lowerCompiled({ ...c, target }).program, target, line, details, report };
}
