// Generation on WebGPU: the inference program (compiler/inference: a prefill of 64 tokens a call
// and a one-token decode step over a static key/value cache) for gpt `small` (f32) and a
// GPT-2-124M-shaped gpt (preset gpt2, context 1024, f16 storage where the adapter offers
// shader-f16: its f32 token table, 147 MiB, would not fit one 128 MiB storage binding).
// Prefill and decode tokens/s separately (medians after a warm-up), and the inference plan's
// memory beside the LOMO training step's plan of the same model. Random weights: speed and
// memory do not depend on them.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { kernelTarget, targetForAdapter } from '../compiler/codegen/wgsl/target.ts';
import { compileInference, lowerInference, planInference } from '../compiler/inference/compile-inference.ts';
import { loadModel } from '../compiler/load-model.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { inferenceMemory, type InferenceBytes } from '../compiler/report/inference-memory.ts';
import { createGpuDecoder } from '../runtime/webgpu/generator.ts';
import { initialParams } from '../runtime/webgpu/init.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';

export interface GenerateCase {
  readonly name: string;
  readonly preset: string;
  readonly dtype: 'f32' | 'f16';
  readonly decodeSteps: number;
}

export const generateCases: readonly GenerateCase[] = [
  { name: 'gpt small', preset: 'small', dtype: 'f32', decodeSteps: 32 },
  { name: 'GPT-2 124M shape', preset: 'gpt2', dtype: 'f16', decodeSteps: 16 },
];

export interface GenerateRow {
  readonly name: string;
  readonly context: number;
  readonly chunk: number;
  readonly dtype: 'f32' | 'f16';
  readonly prefillTokensPerSecond: number;
  readonly decodeTokensPerSecond: number;
  readonly decodeMsPerToken: number;
  readonly setupMs: number;
  readonly inference: InferenceBytes;
  readonly deviceBytes: number;
  readonly training: { readonly batch: number; readonly seq: number; readonly total: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchGenerateCase(k: GenerateCase): Promise<GenerateRow> {
  const def = await loadModel('models/gpt.ts');
  const probe = await probeAdapter();
  const target = kernelTarget(probe ? targetForAdapter(probe.adapter.info) : 'cpu');
  const dtype = k.dtype === 'f16' && !probe?.adapter.features.has('shader-f16') ? 'f32' : k.dtype;
  const t0 = performance.now();
  const c = compileInference(def, { preset: k.preset, dtype });
  const planned = planInference(c, { target });
  const program = lowerInference(planned);
  const { device } = await acquireDevice(program);
  const dec = await createGpuDecoder(device, program, initialParams(program, 0));
  try {
    const prompt = Array.from({ length: c.chunk }, (_, i) => (i * 7) % c.vocab);
    await dec.prefill(prompt, 0); // compiles every pipeline (lavapipe compiles at first use)
    await dec.decode(1, c.chunk);
    const setupMs = performance.now() - t0;
    const prefill: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      await dec.prefill(prompt, 0);
      prefill.push(performance.now() - t);
    }
    const decode: number[] = [];
    for (let i = 0; i < k.decodeSteps; i++) {
      const t = performance.now();
      await dec.decode((i * 5) % c.vocab, c.chunk + i);
      decode.push(performance.now() - t);
    }
    const train = compileStep(def, { preset: k.preset, dtype, optimizer: 'lomo', target });
    return {
      name: k.name, context: c.context, chunk: c.chunk, dtype,
      prefillTokensPerSecond: (c.chunk / median(prefill)) * 1000,
      decodeTokensPerSecond: 1000 / median(decode),
      decodeMsPerToken: median(decode),
      setupMs,
      inference: inferenceMemory(planned.plan),
      deviceBytes: dec.executor.arenaBytes,
      training: { batch: Number(train.config.batch), seq: Number(train.config.seq), total: train.plan.peak },
    };
  } finally {
    dec.destroy();
  }
}

export async function benchGenerate(cases: readonly GenerateCase[] = generateCases): Promise<{ adapter: string; rows: GenerateRow[] }> {
  const probe = await probeAdapter();
  const rows: GenerateRow[] = [];
  for (const k of cases) rows.push(await benchGenerateCase(k));
  return { adapter: probe ? `${probe.backend}: ${probe.adapter.info.description || probe.adapter.info.vendor}` : 'none', rows };
}

/**
 * Decode ms/token with matmuls of one row on the tiled matmul (the kernel before emit-matvec.ts)
 * and on the matrix-vector kernel, two decoders in one process with their steps interleaved:
 * on a shared machine the load drifts by 2-5x within minutes, and interleaving cancels the drift.
 */
export async function benchDecodeKernels(k: GenerateCase): Promise<{ name: string; dtype: string; tiledMs: number; matvecMs: number }> {
  const def = await loadModel('models/gpt.ts');
  const probe = await probeAdapter();
  const base = kernelTarget(probe ? targetForAdapter(probe.adapter.info) : 'cpu');
  const dtype = k.dtype === 'f16' && !probe?.adapter.features.has('shader-f16') ? 'f32' : k.dtype;
  const c = compileInference(def, { preset: k.preset, dtype });
  const decoders = [];
  for (const target of [{ ...base, matvec: null }, base]) {
    const program = lowerInference(planInference(c, { target }));
    const { device } = await acquireDevice(program);
    decoders.push(await createGpuDecoder(device, program, initialParams(program, 0)));
  }
  try {
    const prompt = Array.from({ length: c.chunk }, (_, i) => (i * 7) % c.vocab);
    for (const d of decoders) {
      await d.prefill(prompt, 0);
      await d.decode(1, c.chunk);
    }
    const ms: number[][] = [[], []];
    for (let i = 0; i < k.decodeSteps; i++)
      for (const [j, d] of decoders.entries()) {
        const t = performance.now();
        await d.decode((i * 5) % c.vocab, c.chunk + i);
        ms[j].push(performance.now() - t);
      }
    return { name: k.name, dtype, tiledMs: median(ms[0]), matvecMs: median(ms[1]) };
  } finally {
    for (const d of decoders) d.destroy();
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

export function formatGenerateTable(b: { adapter: string; rows: readonly GenerateRow[] }): string {
  const lines = [
    '| model | dtype | context | prefill tokens/s | decode tokens/s | decode ms/token | setup s | params MiB | kv cache MiB | activations MiB | inference plan MiB | device MiB | LOMO training plan MiB (batch x seq) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...b.rows.map((r) =>
      `| ${r.name} | ${r.dtype} | ${r.context} | ${r.prefillTokensPerSecond.toFixed(1)} | ${r.decodeTokensPerSecond.toFixed(1)} | ${r.decodeMsPerToken.toFixed(1)} | ${(r.setupMs / 1000).toFixed(1)} | ${mib(r.inference.params)} | ${mib(r.inference.kvCache)} | ${mib(r.inference.activations)} | ${mib(r.inference.total)} | ${mib(r.deviceBytes)} | ${mib(r.training.total)} (${r.training.batch} x ${r.training.seq}) |`),
  ];
  const note = `Prefill: ${b.rows[0]?.chunk ?? 64} prompt tokens in one call (median of 3); decode: one token per step at positions after the prompt (median). Random weights; logits of one row read back per call.`;
  return `adapter: ${b.adapter}\n\n${lines.join('\n')}\n\n${note}`;
}

// Run alone (not when bench/index.ts imports it): `npx tsx bench/generate.ts [small|gpt2] [--kernels]`
// (--kernels: decode on the tiled matmul against the matrix-vector kernel, interleaved).
if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href.endsWith('/bench/generate.ts')) {
  const pick = process.argv.slice(2).find((a) => !a.startsWith('--'));
  const cases = generateCases.filter((k) => !pick || k.preset === pick);
  if (process.argv.includes('--kernels')) {
    console.log('| model | dtype | decode ms/token, tiled matmul | decode ms/token, matrix-vector | speed-up |\n|---|---|---:|---:|---:|');
    for (const k of cases) {
      const r = await benchDecodeKernels(k);
      console.log(`| ${r.name} | ${r.dtype} | ${r.tiledMs.toFixed(1)} | ${r.matvecMs.toFixed(1)} | ${(r.tiledMs / r.matvecMs).toFixed(2)}x |`);
    }
    process.exit(0);
  }
  console.log(formatGenerateTable(await benchGenerate(cases)));
  process.exit(0);
}
