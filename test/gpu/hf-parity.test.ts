// Imported Hugging Face checkpoints on WebGPU equal the independent PyTorch implementation
// (test/peers/hf_peer.py): the logits of GPT-2 and of a sharded BF16 LLaMA with grouped-query
// attention; and end to end through the CLI, `lomoc train --preset hf --init DIR --tokenizer DIR`
// takes one LOMO step whose loss and updated weights (exported back to HF) equal PyTorch's SGD step.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { traceModel } from '../../compiler/dsl/model.ts';
import { loadHfParams, openHf } from '../../cli/hf-checkpoint.ts';
import { loadHfTokenizer } from '../../cli/hf-tokenizer.ts';
import { split, trainBatch } from '../../cli/train-data.ts';
import { joinHf } from '../../models/hf/family.ts';
import { gpt2 } from '../../models/hf/gpt2.ts';
import { llama } from '../../models/hf/llama.ts';
import { run } from '../support/cli.ts';
import { byteLevelBpe, models, randomHfTensors, randomRun, relErr, tmp, tokenizerFolder, torchPeer, writeFolder, type Run } from '../hf/fixtures.ts';
import { runOnGpu } from './harness.ts';

const gpt2Hf = { model_type: 'gpt2', vocab_size: 264, n_positions: 12, n_embd: 16, n_layer: 2, n_head: 2 };
const gqaHf = { model_type: 'llama', vocab_size: 41, hidden_size: 24, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 500000, rms_norm_eps: 1e-5, max_position_embeddings: 64 };
const [batch, seq, lr] = [2, 7, 0.5];
const grid = (a: Int32Array): number[][] => Array.from({ length: batch }, (_, b) => [...a.subarray(b * seq, (b + 1) * seq)]);

let gptDir = '';
let llamaDir = '';
let tokDir = '';
let dataFile = '';
let runs: Run[] = [];
let peer: Record<string, Float32Array>[] = [];

beforeAll(async () => {
  gptDir = writeFolder(gpt2Hf, randomHfTensors(gpt2, gpt2.fromHf(gpt2Hf, 'c', { batch, seq }), 31), { tag: 'gpu-gpt2' });
  llamaDir = writeFolder(gqaHf, randomHfTensors(llama, llama.fromHf(gqaHf, 'c', { batch, seq }), 32), { dtype: 'BF16', maxShardBytes: 4000, tag: 'gpu-llama' });
  tokDir = tokenizerFolder(byteLevelBpe());
  dataFile = join(tmp('data'), 'text.txt');
  writeFileSync(dataFile, 'the band and the whale, and the world where the white whale swam. '.repeat(20));
  // The batch `lomoc train` takes at step 1 (seed 0), tokenised by the folder's tokenizer.
  const ids = await (await loadHfTokenizer(tokDir)).encode(readFileSync(dataFile, 'utf8'));
  const b = trainBatch(split(ids, seq, dataFile).train, batch, seq, 0, 0);
  const first: Run = { tokens: grid(b.tokens), targets: grid(b.targets) };
  runs = [randomRun(264, batch, seq, 1), randomRun(41, batch, seq, 2), first];
  peer = await torchPeer([{ dir: gptDir, run: runs[0] }, { dir: llamaDir, run: runs[1] }, { dir: gptDir, run: first, lr }]);
}, 180_000);

async function gpuLogits(dir: string, r: Run): Promise<Float32Array> {
  const imp = openHf(dir, { run: { batch, seq } });
  const { graph } = traceModel(models[imp.family.model], imp.config);
  const logits = graph.nodes.find((n) => n.op === 'crossEntropy')!.inputs[0];
  const params = loadHfParams(imp);
  const i32 = (g: number[][]) => ({ shape: [batch, seq], data: Int32Array.from(g.flat()) });
  const feeds = { inputs: { tokens: i32(r.tokens), targets: i32(r.targets) }, params: Object.fromEntries(graph.params.map((p) => [p.name, { shape: graph.values[p.value].shape, data: params[p.name] }])) };
  return Float32Array.from((await runOnGpu(graph, feeds, [logits])).get(logits)!);
}

describe('HF import on WebGPU: logits equal the PyTorch implementation', () => {
  it('GPT-2 (F32, mask buffers, seq 7 of 12 positions)', async () => {
    expect(relErr(await gpuLogits(gptDir, runs[0]), peer[0].logits)).toBeLessThan(1e-5);
  });
  it('LLaMA with GQA (4 q heads, 2 kv heads), BF16, sharded', async () => {
    expect(relErr(await gpuLogits(llamaDir, runs[1]), peer[1].logits)).toBeLessThan(1e-5);
  });
});

describe('lomoc train --preset hf --init DIR --tokenizer DIR on WebGPU', () => {
  it("one LOMO step: PyTorch's loss and SGD-updated weights (exported back to HF names)", async () => {
    const save = tmp('train');
    const r = await run('train', 'models/gpt.ts', '--preset', 'hf', '--init', gptDir, '--tokenizer', tokDir, '--data', dataFile, '--batch', String(batch), '--seq', String(seq), '--optimizer', 'lomo', '--lr', String(lr), '--steps', '1', '--save', save, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.config).toEqual({ batch, seq, vocab: 264, width: 16, layers: 2, heads: 2, positions: 12, eps: 1e-5 });
    expect(Math.abs(out.losses[0].loss - peer[2].loss[0])).toBeLessThan(1e-5);
    const hf = join(tmp('exp'), 'hf');
    expect((await run('export', join(save, 'checkpoint.safetensors'), '--format', 'hf', '--out', hf)).code).toBe(0);
    const imp = openHf(hf, { run: { batch, seq } });
    const after = loadHfParams(imp);
    const before = loadHfParams(openHf(gptDir, { run: { batch, seq } }));
    for (const s of imp.family.tensors(imp.config)) {
      expect(relErr(joinHf(s, before), peer[2][`param:${s.hf}`]), s.hf).toBeGreaterThan(1e-4);
      expect(relErr(joinHf(s, after), peer[2][`param:${s.hf}`]), s.hf).toBeLessThan(1e-5);
    }
  });
});
