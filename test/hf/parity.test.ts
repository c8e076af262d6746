// Imported Hugging Face checkpoints compute what an independent PyTorch implementation of the
// same HF models computes (test/peers/hf_peer.py, float64): the logits, and one LOMO step from
// the imported weights equals PyTorch's plain SGD step (loss and every updated tensor, mapped
// back to HF names and layouts). Folders are written here in HF's exact layout.
import { beforeAll, describe, expect, it } from 'vitest';
import { joinHf } from '../../models/hf/family.ts';
import { gpt2 } from '../../models/hf/gpt2.ts';
import { llama } from '../../models/hf/llama.ts';
import type { HfFamily } from '../../models/hf/family.ts';
import type { Dtype } from '../../runtime/checkpoint/safetensors.ts';
import { loadHfParams, openHf } from '../../cli/hf-checkpoint.ts';
import { lomocLogits, lomocLomoStep, models, randomHfTensors, randomRun, relErr, torchPeer, writeFolder, type Run } from './fixtures.ts';

const gpt2Config = { model_type: 'gpt2', vocab_size: 37, n_positions: 12, n_embd: 16, n_layer: 2, n_head: 2, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };
const llamaConfig = { model_type: 'llama', vocab_size: 41, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 10000, max_position_embeddings: 64, tie_word_embeddings: false, hidden_act: 'silu' };
const gqaConfig = { ...llamaConfig, hidden_size: 24, num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 500000, rms_norm_eps: 1e-5, tie_word_embeddings: true };

interface Case {
  readonly name: string;
  readonly family: HfFamily;
  readonly hf: Record<string, unknown>;
  readonly dtype: Dtype;
  readonly maxShardBytes?: number;
  readonly rename?: (n: string) => string;
  /** Non-param tensors HF files carry (GPT-2's mask buffers). */
  readonly buffers?: boolean;
}

const cases: readonly Case[] = [
  { name: 'GPT-2, F32, GPT2LMHeadModel names with mask buffers, seq 7 of 12 positions', family: gpt2, hf: gpt2Config, dtype: 'F32', buffers: true },
  { name: 'GPT-2, F16, GPT2Model names (no transformer. prefix)', family: gpt2, hf: gpt2Config, dtype: 'F16', rename: (n) => n.replace(/^transformer\./, '') },
  { name: 'LLaMA, BF16, sharded in 3+ files', family: llama, hf: llamaConfig, dtype: 'BF16', maxShardBytes: 2500 },
  { name: 'LLaMA GQA (4 q heads, 2 kv heads), tied head, rope_theta 5e5', family: llama, hf: gqaConfig, dtype: 'F32' },
];

const [batch, seq] = [2, 7];

function folderFor(c: Case, seed: number): string {
  const cfg = c.family.fromHf(c.hf, 'config.json', { batch, seq });
  const tensors = randomHfTensors(c.family, cfg, seed);
  if (c.buffers)
    for (let i = 0; i < Number(cfg.layers); i++) tensors.set(`transformer.h.${i}.attn.bias`, { shape: [1, 1, 12, 12], values: new Float32Array(144).fill(1) });
  return writeFolder(c.hf, tensors, { dtype: c.dtype, maxShardBytes: c.maxShardBytes, rename: c.rename, tag: c.family.modelType });
}

interface Prepared {
  readonly c: Case;
  readonly dir: string;
  readonly imp: ReturnType<typeof openHf>;
  readonly run: Run;
  readonly lr?: number;
}

const lr = 0.5;
let prepared: Prepared[] = [];
let peer: Record<string, Float32Array>[] = [];

beforeAll(async () => {
  // Logits for every case, then one SGD step for GPT-2 and for LLaMA with GQA.
  const jobs = [...cases.map((c, k) => [c, k, undefined] as const), ...[0, 3].map((k) => [cases[k], 10 + k, lr] as const)];
  prepared = jobs.map(([c, k, step]) => {
    const dir = folderFor(c, 100 + k);
    const imp = openHf(dir, { run: { batch, seq } });
    return { c, dir, imp, run: randomRun(Number(imp.config.vocab), batch, seq, 7 + k), lr: step };
  });
  peer = await torchPeer(prepared.map((p) => ({ dir: p.dir, run: p.run, lr: p.lr })));
}, 120_000);

describe('HF import: logits equal the PyTorch implementation (reference executor)', () => {
  cases.forEach((c, k) => {
    it(c.name, () => {
      const { imp, run } = prepared[k];
      if (c.maxShardBytes) expect(imp.folder.files.length).toBeGreaterThanOrEqual(3);
      const ours = lomocLogits(models[imp.family.model], imp.config, loadHfParams(imp), run);
      expect(ours.length).toBe(batch * seq * Number(imp.config.vocab));
      // f32 arithmetic against float64: measured about 1.1e-7 (GPT-2 F32) and 1.3e-7 (LLaMA BF16) of the logits' scale.
      expect(relErr(ours, peer[k].logits)).toBeLessThan(1e-6);
    }, 60_000);
  });
});

describe('HF import: one LOMO step equals PyTorch SGD (reference executor)', () => {
  for (const k of [4, 5]) {
    it(cases[k === 4 ? 0 : 3].name, () => {
      const { c, imp, run } = prepared[k];
      const before = loadHfParams(imp);
      const ours = lomocLomoStep(models[imp.family.model], imp.config, before, run, lr);
      const theirs = peer[k];
      expect(Math.abs(ours.loss - theirs.loss[0])).toBeLessThan(1e-6);
      for (const s of imp.family.tensors(imp.config)) {
        const name = `param:${c.rename ? c.rename(s.hf) : s.hf}`;
        // The step must move the tensor (else the comparison proves nothing) and land where PyTorch's does.
        expect(relErr(joinHf(s, before), theirs[name]), s.hf).toBeGreaterThan(1e-4);
        expect(relErr(joinHf(s, ours.params), theirs[name]), s.hf).toBeLessThan(1e-6);
      }
    }, 60_000);
  }
});
