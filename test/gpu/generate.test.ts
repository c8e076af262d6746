// The inference program on WebGPU: prefill chunks and decode steps give the full forward's logits
// (reference executor, f32) at every position, for gpt and llama tiny; the device holds exactly
// the inference plan's peak; greedy generation on the device equals greedy on the reference; and a
// bundle's inference program generates what the model file does, from the same checkpoint.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { loadCheckpoint } from '../../runtime/checkpoint/node.ts';
import { toFloat32 } from '../../runtime/checkpoint/safetensors.ts';
import { lowerInference, planInference } from '../../compiler/inference/compile-inference.ts';
import { generate } from '../../runtime/generate/generate.ts';
import { createGpuDecoder } from '../../runtime/webgpu/generator.ts';
import { compileInference } from '../../compiler/inference/compile-inference.ts';
import { referenceDecoder } from '../../compiler/inference/reference-decoder.ts';
import { fullLogits, gpt, llama, reference, setup, stepLogits } from '../generate/support.ts';
import { gpu } from './harness.ts';

const models = [['gpt', gpt], ['llama', llama]] as const;

describe('inference on WebGPU', () => {
  for (const [name, load] of models)
    it(`${name} tiny: every position's logits within 2e-5 of the full forward; the device holds the plan's peak`, async () => {
      const { device } = await gpu();
      const s = setup(await load(), { chunk: 3 }, 11, 'f32');
      const planned = planInference(s.c, { verifyEach: true });
      const program = lowerInference(planned);
      const params = Object.fromEntries(Object.entries(s.params).map(([k, t]) => [k, Float32Array.from(t.data)]));
      const dec = await createGpuDecoder(device, program, params);
      try {
        expect(dec.executor.arenaBytes).toBe(planned.plan.peak);
        const tokens = [3, 17, 1, 30, 8, 8, 21, 2];
        const full = fullLogits(s, tokens, 'f32');
        // 5 prefilled (chunks of 3 and 2), then 3 decode steps.
        const steps = await stepLogits(dec, tokens, 5);
        expect([...steps.keys()].sort((a, b) => a - b)).toEqual([2, 4, 5, 6, 7]);
        let worst = 0;
        for (const [p, row] of steps) row.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - full[p][i]))));
        expect(worst).toBeLessThan(2e-5);
        // Greedy continuations agree token for token (stale cache rows past the prompt are rewritten before any read).
        const opts = { maxTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 0 };
        const onGpu: number[] = [];
        for await (const t of generate(dec, [4, 9], opts)) onGpu.push(t);
        const onCpu: number[] = [];
        for await (const t of generate(reference(s, 'f32'), [4, 9], opts)) onCpu.push(t);
        expect(onGpu).toEqual(onCpu);
        expect(onGpu).toHaveLength(5);
      } finally {
        dec.destroy();
      }
    });

  it('gpt tiny with f16 storage and an odd vocabulary: every position within 2e-3 of the reference f16 emulation', async () => {
    const { device } = await gpu();
    const s = setup(await gpt(), { sets: ['vocab=31'], chunk: 4 }, 2, 'f32');
    const c = compileInference(await gpt(), { preset: 'tiny', sets: ['vocab=31'], chunk: 4, dtype: 'f16' });
    const program = lowerInference(planInference(c));
    expect(program.features).toEqual(['shader-f16']);
    const params = Object.fromEntries(Object.entries(s.params).map(([k, t]) => [k, Float32Array.from(t.data)]));
    const dec = await createGpuDecoder(device, program, params);
    try {
      const tokens = [3, 17, 1, 30, 8, 8, 21, 2];
      // Row 3 of the first prefill chunk starts 2 bytes past a 4-byte boundary (31 f16 logits a row).
      const want = await stepLogits(referenceDecoder(c, s.params, 'f32'), tokens, 7);
      const got = await stepLogits(dec, tokens, 7);
      expect([...got.keys()]).toEqual([3, 6, 7]);
      for (const [p, row] of got) row.forEach((x, i) => expect(Math.abs(x - want.get(p)![i])).toBeLessThan(2e-3));
    } finally {
      dec.destroy();
    }
  });

  it('a bundle generates what its model file generates, from the same checkpoint, seed and prompt (greedy and sampled), through the CLI and the bundle\'s node.js', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-generate-'));
    const lomoc = async (...argv: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
      expect(code, err.join('\n')).toBe(0);
      return out.join('\n');
    };
    try {
      const bundle = path.join(root, 'gpt');
      // --target cpu: the kernel shapes lomoc generate picks for lavapipe, so both run the same WGSL.
      const model = ['--preset', 'tiny', '--set', 'vocab=256', '--set', 'seq=24'];
      await lomoc('compile', 'models/gpt.ts', ...model, '--optimizer', 'lomo', '--target', 'cpu', '--out', bundle);
      const ckpt = path.join(root, 'run');
      await lomoc('train', bundle, '--data', 'moby-dick', '--steps', '3', '--lr', '0.05', '--seed', '2', '--save', ckpt, '--json');
      const tokensOf = (out: string) => (JSON.parse(out) as { tokens: number[]; promptTokens: number[] }).tokens;
      for (const how of [['--temperature', '0'], ['--temperature', '0.9', '--top-k', '20', '--seed', '5']]) {
        const args = ['--prompt', 'Call me', '--max-tokens', '12', ...how, '--json'];
        const fromBundle = tokensOf(await lomoc('generate', bundle, '--init', ckpt, ...args));
        const fromModel = tokensOf(await lomoc('generate', 'models/gpt.ts', ...model, '--init', ckpt, ...args));
        const fromCheckpoint = tokensOf(await lomoc('generate', ckpt, ...args));
        expect(fromBundle, how.join(' ')).toHaveLength(12);
        expect(fromBundle, how.join(' ')).toEqual(fromModel);
        expect(fromBundle, how.join(' ')).toEqual(fromCheckpoint);
        if (how[1] === '0') {
          // The bundle's own entry (node.js: createGenerator, the page's code) on the harness's device.
          const entry = (await import(pathToFileURL(path.join(bundle, 'node.js')).href)) as {
            createGenerator(o: { device: GPUDevice; params: Record<string, Float32Array> }): Promise<{ generate(p: number[], o: object): AsyncGenerator<number>; destroy(): void }>;
          };
          const saved = loadCheckpoint(path.join(ckpt, 'checkpoint.safetensors'));
          const params = Object.fromEntries(Object.entries(saved.tensors).filter(([k]) => !k.startsWith('optimizer.')).map(([k, t]) => [k, toFloat32(k, t)]));
          const g = await entry.createGenerator({ device: (await gpu()).device, params });
          const viaEntry: number[] = [];
          for await (const t of g.generate([...new TextEncoder().encode('Call me')], { maxTokens: 12, temperature: 0 })) viaEntry.push(t);
          g.destroy();
          expect(viaEntry).toEqual(fromBundle);
        }
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
