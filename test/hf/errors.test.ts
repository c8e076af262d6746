// Bad Hugging Face folders are errors in lomoc's format naming the file and the tensor or key
// (whole messages compared), and nothing is read past the first problem.
import { copyFileSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkParamShapes, openHf } from '../../cli/hf-checkpoint.ts';
import { gpt2 } from '../../models/hf/gpt2.ts';
import { llama } from '../../models/hf/llama.ts';
import { writeHfFolder } from '../../runtime/checkpoint/hf-folder.ts';
import { run } from '../support/cli.ts';
import { randomHfTensors, tmp, writeFolder } from './fixtures.ts';

const gptHf = { model_type: 'gpt2', vocab_size: 37, n_positions: 12, n_embd: 16, n_layer: 1, n_head: 2 };
const llamaHf = { model_type: 'llama', vocab_size: 41, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 32 };
const gptTensors = () => randomHfTensors(gpt2, gpt2.fromHf(gptHf, 'c', { batch: 1 }), 1);

const fails = async (args: string[], message: string) => expect(await run(...args)).toEqual({ code: 1, stdout: '', stderr: `error: ${message}` });

describe('lomoc import: bad folders', () => {
  it('a folder without config.json', async () => {
    const dir = tmp('noconfig');
    await fails(['import', dir], `${dir}: no config.json (a Hugging Face model folder holds config.json and model.safetensors)`);
  });

  it('a folder with no safetensors weights', async () => {
    const dir = tmp('noweights');
    writeFileSync(join(dir, 'config.json'), JSON.stringify(gptHf));
    await fails(['import', dir], `${dir}: no model.safetensors or model.safetensors.index.json (only safetensors weights are read, not pytorch_model.bin)`);
  });

  it('an unknown model_type', async () => {
    const dir = writeFolder({ ...gptHf, model_type: 'bert' }, gptTensors());
    await fails(['import', dir], `${dir}/config.json: unknown model_type "bert"; lomoc maps gpt2, llama, mistral`);
  });

  it('a config key lomoc cannot honour', async () => {
    const dir = writeFolder({ ...gptHf, activation_function: 'relu' }, gptTensors());
    await fails(['import', dir], `${dir}/config.json: key 'activation_function' is "relu"; lomoc supports "gelu_new" (lomoc's gelu is the tanh approximation)`);
    const bad = writeFolder({ ...gptHf, n_embd: 'wide' }, gptTensors());
    await fails(['import', bad], `${bad}/config.json: key 'n_embd' must be a positive integer, got "wide"`);
  });

  it('config sizes that contradict the tensors: each tensor named with the expected and found shape', async () => {
    const dir = writeFolder({ ...gptHf, vocab_size: 40, n_positions: 20 }, gptTensors());
    const file = `${dir}/model.safetensors`;
    await fails(
      ['import', dir],
      `${dir}/config.json: the config contradicts 2 tensors (expected from the config, found in the file): tensor 'transformer.wte.weight' in ${file}: expected [40, 16], found [37, 16]; tensor 'transformer.wpe.weight' in ${file}: expected [20, 16], found [12, 16]`,
    );
  });

  it('a missing shard, and a shard the index does not name', async () => {
    const tensors = randomHfTensors(llama, llama.fromHf(llamaHf, 'c', { batch: 1 }), 2);
    const dir = writeFolder(llamaHf, tensors, { maxShardBytes: 8000 });
    const map: Record<string, string> = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map;
    const shards = [...new Set(Object.values(map))].sort();
    expect(shards.length).toBeGreaterThanOrEqual(3);
    const stray = `model-00009-of-0000${shards.length}.safetensors`;
    copyFileSync(join(dir, shards[1]), join(dir, stray));
    await fails(['import', dir], `${dir}/model.safetensors.index.json: shard '${stray}' in ${dir} is not named in the index's weight_map`);
    unlinkSync(join(dir, stray));
    unlinkSync(join(dir, shards[1]));
    const held = Object.keys(map).filter((t) => map[t] === shards[1]);
    await fails(['import', dir], `${dir}/model.safetensors.index.json: shard '${shards[1]}' (holding '${held[0]}'${held.length > 1 ? ` and ${held.length - 1} more` : ''}) is missing from ${dir}`);
  });

  it('an unsupported dtype', async () => {
    const dir = join(tmp('f64'), 'model');
    const cfg = gpt2.fromHf(gptHf, 'c', { batch: 1 });
    writeHfFolder(dir, gptHf, [...randomHfTensors(gpt2, cfg, 3)].map(([name, t]) => ({ name, dtype: 'F64' as const, shape: t.shape, data: () => new Uint8Array(new Float64Array(t.values).buffer) })), 5e9);
    await fails(['import', dir], `${dir}/model.safetensors: tensor 'transformer.wte.weight' is F64; expected one of F32, F16, BF16`);
  });

  it('a tensor no param takes, and a param no tensor fills: errors, or warnings with --init-partial', async () => {
    const extra = gptTensors();
    extra.set('transformer.h.0.attn.extra.weight', { shape: [2], values: Float32Array.of(1, 2) });
    const dir = writeFolder(gptHf, extra);
    await fails(['import', dir], `${dir}: 1 tensor no param of lomoc's gpt takes: 'transformer.h.0.attn.extra.weight' in ${dir}/model.safetensors (give --init-partial to ignore them)`);
    const fewer = gptTensors();
    fewer.delete('transformer.ln_f.bias');
    fewer.delete('transformer.h.0.attn.c_attn.bias');
    const dir2 = writeFolder(gptHf, fewer);
    await fails(
      ['import', dir2],
      `${dir2}: 4 params no tensor fills: 'h.0.attn.q.b' (expected tensor 'transformer.h.0.attn.c_attn.bias'), 'h.0.attn.k.b' (expected tensor 'transformer.h.0.attn.c_attn.bias'), 'h.0.attn.v.b' (expected tensor 'transformer.h.0.attn.c_attn.bias'), 'ln_f.b' (expected tensor 'transformer.ln_f.bias') (give --init-partial to keep their initial values)`,
    );
    const partial = await run('import', dir2, '--init-partial');
    expect(partial.code).toBe(0);
    expect(partial.stderr).toBe(`warning: ${dir2}: 4 param(s) no tensor fills: h.0.attn.q.b (transformer.h.0.attn.c_attn.bias), h.0.attn.k.b (transformer.h.0.attn.c_attn.bias), h.0.attn.v.b (transformer.h.0.attn.c_attn.bias), ln_f.b (transformer.ln_f.bias)`);
  });

  it('a truncated shard names the file', async () => {
    const dir = writeFolder(gptHf, gptTensors());
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, readFileSync(file).subarray(0, 500));
    await fails(['import', dir], `${file}: the header length 1456 runs past the end of the file (492 bytes after the length): truncated?`);
    rmSync(dir, { recursive: true });
  });
});

describe('--init DIR / --preset hf', () => {
  it('--preset hf needs a folder', async () => {
    await fails(['train', 'models/gpt.ts', '--preset', 'hf', '--steps', '1'], "--preset hf takes the config from a Hugging Face folder's config.json: give --init DIR");
  });

  it("a folder of another family than the model file's", async () => {
    const dir = writeFolder(gptHf, gptTensors());
    await fails(['train', 'models/llama.ts', '--preset', 'hf', '--init', dir, '--steps', '1'], `${dir}/config.json: model_type 'gpt2' loads into lomoc's 'gpt' model (models/gpt.ts), but the model file declares 'llama'`);
  });

  it("a model config other than the folder's: each param named", () => {
    const dir = writeFolder(gptHf, gptTensors());
    const imp = openHf(dir, { run: { batch: 1, seq: 8 } });
    expect(() => checkParamShapes(imp, [{ name: 'wte', shape: [32, 16] }, { name: 'wpe', shape: [8, 16] }, { name: 'h.0.extra', shape: [1] }], 'gpt')).toThrow(
      `error: --init ${dir}: the model's config differs from the checkpoint's (use --preset hf to take the config from config.json): param 'wte' is [32, 16] in gpt, but ${dir}/config.json makes it [37, 16] (tensor 'transformer.wte.weight'); param 'wpe' is [8, 16] in gpt, but ${dir}/config.json makes it [12, 16] (tensor 'transformer.wpe.weight'); param 'h.0.extra' [1] has no Hugging Face tensor in the gpt2 table`,
    );
  });
});
