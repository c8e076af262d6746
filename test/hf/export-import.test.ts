// `lomoc export --format hf` then `lomoc import` / --init's loader gives back every param bit for
// bit (any f32 values, whole or sharded, GPT-2 and LLaMA with GQA and a tied head); an export is
// whole or absent; `lomoc import` prints what it found.
import fc from 'fast-check';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceModel, type Config } from '../../compiler/dsl/model.ts';
import { loadHfParams, openHf } from '../../cli/hf-checkpoint.ts';
import { parseSize } from '../../cli/export.ts';
import { saveCheckpoint } from '../../runtime/checkpoint/node.ts';
import { run } from '../support/cli.ts';
import { models, tmp } from './fixtures.ts';

/** A lomoc checkpoint as `lomoc train --save` writes it (params under their names, the run's model and config in metadata). */
function writeLomocCheckpoint(model: string, config: Config, values: (name: string, n: number) => Float32Array): { file: string; params: Record<string, Float32Array> } {
  const { graph } = traceModel(models[model], config);
  const params: Record<string, Float32Array> = {};
  for (const p of graph.params) {
    const shape = graph.values[p.value].shape;
    params[p.name] = values(p.name, shape.reduce((a, b) => a * b, 1));
  }
  const file = join(tmp('ckpt'), 'checkpoint.safetensors');
  const tensors = Object.fromEntries(graph.params.map((p) => [p.name, { shape: graph.values[p.value].shape, data: params[p.name] }]));
  saveCheckpoint(file, tensors, { format: 'lomoc-checkpoint/1', run: JSON.stringify({ model, config: JSON.stringify(config) }) });
  return { file, params };
}

const gptCfg: Config = { batch: 2, seq: 6, vocab: 23, width: 8, layers: 2, heads: 2, positions: 10, eps: 1e-5 };
const llamaCfg: Config = { batch: 1, seq: 5, vocab: 19, width: 16, layers: 1, heads: 4, ffn: 20, kvHeads: 2, ropeTheta: 500000, normEps: 1e-5, tied: true };

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('export then import: the same params, bit for bit', () => {
  it('any f32 values (signed zeros, subnormals, infinities), GPT-2 and LLaMA-GQA-tied, whole and sharded', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(['gpt', gptCfg] as const, ['llama', llamaCfg] as const), fc.integer({ min: 0, max: 2 ** 31 }), fc.constantFrom('5GB', '600', '2KB'), async ([model, cfg], seed, shard) => {
        const pool = [0, -0, 1e-45, -3.4e38, Infinity, -Infinity, 1.5, -2.25e-39];
        let s = seed;
        const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s);
        const { file, params } = writeLomocCheckpoint(model, cfg, (_, n) =>
          Float32Array.from({ length: n }, () => (next() % 4 === 0 ? pool[next() % pool.length] : new Float32Array(new Uint32Array([next() & 0x7f7fffff | (next() & 0x80000000)]).buffer)[0])),
        );
        const out = join(tmp('exp'), 'hf');
        const r = await run('export', file, '--format', 'hf', '--out', out, '--max-shard-size', shard);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const imp = openHf(out, { run: { batch: Number(cfg.batch), seq: Number(cfg.seq) } });
        expect(imp.config).toEqual(cfg);
        if (shard !== '5GB') expect(imp.folder.files.length).toBeGreaterThan(1);
        const back = loadHfParams(imp);
        expect(Object.keys(back).sort()).toEqual(Object.keys(params).sort());
        for (const [name, v] of Object.entries(params)) expect(bits(back[name]).equals(bits(v)), name).toBe(true);
      }),
      { numRuns: 8 },
    );
  }, 60_000);
});

describe('lomoc export: never a half-written or overwritten folder', () => {
  it('refuses a non-empty --out and leaves it as it was, with no temporary folder behind', async () => {
    const { file } = writeLomocCheckpoint('gpt', gptCfg, (_, n) => new Float32Array(n).fill(0.5));
    const parent = tmp('exp');
    const out = join(parent, 'taken');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const r = await run('export', file, '--format', 'hf', '--out', out);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `error: ${out}: the folder is not empty; refusing to overwrite it (choose a new --out)` });
    expect(readdirSync(out)).toEqual(['notes.txt']);
    expect(readdirSync(parent)).toEqual(['taken']);
  });

  it('writes into an existing empty folder', async () => {
    const { file } = writeLomocCheckpoint('gpt', gptCfg, (_, n) => new Float32Array(n).fill(0.5));
    const out = tmp('empty');
    const r = await run('export', file, '--format', 'hf', '--out', out);
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'gpt2', n_positions: 10, n_embd: 8, n_layer: 2, n_head: 2, vocab_size: 23 });
  });

  it('bad options and checkpoints are errors naming them', async () => {
    const { file } = writeLomocCheckpoint('gpt', gptCfg, (_, n) => new Float32Array(n));
    expect((await run('export', file, '--format', 'onnx', '--out', 'x')).stderr).toBe("error: lomoc export: option '--format' expects hf, got 'onnx'");
    expect((await run('export', file, '--format', 'hf')).stderr).toBe("error: lomoc export: option '--out DIR' is required");
    expect((await run('export', file, '--out', join(tmp('x'), 'o'), '--max-shard-size', '5 parsecs')).stderr).toBe("error: lomoc export: option '--max-shard-size' expects a size such as 5GB, 500MB or 1000000 (bytes), got '5 parsecs'");
    const bare = join(tmp('bare'), 'c.safetensors');
    saveCheckpoint(bare, { w: { shape: [1], data: Float32Array.of(1) } });
    expect((await run('export', bare, '--out', join(tmp('x'), 'o'))).stderr).toBe(`error: ${bare}: not a checkpoint written by lomoc train (its metadata has no 'run'); lomoc export needs the model and config it records`);
  });

  it('sizes parse as Hugging Face writes them (GB = 10^9, GiB = 2^30)', () => {
    expect([parseSize('5GB'), parseSize('500MB'), parseSize('1GiB'), parseSize('1000')]).toEqual([5e9, 5e8, 2 ** 30, 1000]);
  });
});

describe('lomoc import', () => {
  it('prints the model type, the lomoc config, the files, the bytes by dtype and the mapping', async () => {
    const { file } = writeLomocCheckpoint('gpt', { ...gptCfg, layers: 1 }, (_, n) => new Float32Array(n));
    const out = join(tmp('imp'), 'hf');
    expect((await run('export', file, '--out', out)).code).toBe(0);
    const r = await run('import', out);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      [
        `folder      ${out}`,
        "model type  gpt2 -> lomoc model 'gpt' (models/gpt.ts)",
        'config      batch=1 seq=10 vocab=23 width=8 layers=1 heads=2 positions=10 eps=0.00001 (batch and seq are lomoc\'s defaults for --preset hf)',
        'weights     model.safetensors',
        'tensors     16 tensors, 1,152 values: F32 4.50 KiB',
        'mapping',
        '  transformer.wte.weight F32 [23, 8] -> wte',
        '  transformer.wpe.weight F32 [10, 8] -> wpe',
        '  transformer.h.0.ln_1.weight F32 [8] -> h.0.ln1.g',
        '  transformer.h.0.ln_1.bias F32 [8] -> h.0.ln1.b',
        '  transformer.h.0.attn.c_attn.weight F32 [8, 24] -> h.0.attn.q.w (columns 0:8), h.0.attn.k.w (columns 8:16), h.0.attn.v.w (columns 16:24)',
        '  transformer.h.0.attn.c_attn.bias F32 [24] -> h.0.attn.q.b (columns 0:8), h.0.attn.k.b (columns 8:16), h.0.attn.v.b (columns 16:24)',
        '  transformer.h.0.attn.c_proj.weight F32 [8, 8] -> h.0.attn.proj.w',
        '  transformer.h.0.attn.c_proj.bias F32 [8] -> h.0.attn.proj.b',
        '  transformer.h.0.ln_2.weight F32 [8] -> h.0.ln2.g',
        '  transformer.h.0.ln_2.bias F32 [8] -> h.0.ln2.b',
        '  transformer.h.0.mlp.c_fc.weight F32 [8, 32] -> h.0.mlp.fc.w',
        '  transformer.h.0.mlp.c_fc.bias F32 [32] -> h.0.mlp.fc.b',
        '  transformer.h.0.mlp.c_proj.weight F32 [32, 8] -> h.0.mlp.proj.w',
        '  transformer.h.0.mlp.c_proj.bias F32 [8] -> h.0.mlp.proj.b',
        '  transformer.ln_f.weight F32 [8] -> ln_f.g',
        '  transformer.ln_f.bias F32 [8] -> ln_f.b',
      ].join('\n'),
    );
    expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(false);
  });
});
