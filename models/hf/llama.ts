// LLaMA-family (model_type llama, and mistral with no sliding window) <-> models/llama.ts. HF's
// nn.Linear stores weights [out, in]; lomoc's x @ w wants [in, out], so every linear transposes.
// HF's q/k weights are already permuted for the rotate-half rotary convention, pairing (i, i + Dh/2),
// which is the pairing lomoc's rope uses: they load as they are.
import type { Config } from '../../compiler/dsl/model.ts';
import { intKey, numKey, onlyKey, type HfFamily, type HfTensorSpec } from './family.ts';

function tensors(cfg: Config): HfTensorSpec[] {
  const [v, d, f, heads] = [Number(cfg.vocab), Number(cfg.width), Number(cfg.ffn), Number(cfg.heads)];
  const kv = (d / heads) * Number(cfg.kvHeads ?? heads);
  const same = (hf: string, shape: number[], param: string): HfTensorSpec => ({ hf, shape, parts: [{ param, shape, layout: 'same' }] });
  // An nn.Linear(in, out) weight [out, in] holds lomoc's [in, out].
  const lin = (hf: string, inF: number, outF: number, param: string): HfTensorSpec => ({ hf, shape: [outF, inF], parts: [{ param, shape: [inF, outF], layout: 'transpose' }] });
  const out: HfTensorSpec[] = [same('model.embed_tokens.weight', [v, d], 'tok_embeddings')];
  for (let i = 0; i < Number(cfg.layers); i++) {
    const [h, p] = [`model.layers.${i}`, `h.${i}`];
    out.push(
      same(`${h}.input_layernorm.weight`, [d], `${p}.attn_norm`),
      lin(`${h}.self_attn.q_proj.weight`, d, d, `${p}.attn.wq`),
      lin(`${h}.self_attn.k_proj.weight`, d, kv, `${p}.attn.wk`),
      lin(`${h}.self_attn.v_proj.weight`, d, kv, `${p}.attn.wv`),
      lin(`${h}.self_attn.o_proj.weight`, d, d, `${p}.attn.wo`),
      same(`${h}.post_attention_layernorm.weight`, [d], `${p}.mlp_norm`),
      lin(`${h}.mlp.gate_proj.weight`, d, f, `${p}.mlp.w1`),
      lin(`${h}.mlp.up_proj.weight`, d, f, `${p}.mlp.w3`),
      lin(`${h}.mlp.down_proj.weight`, f, d, `${p}.mlp.w2`),
    );
  }
  out.push(same('model.norm.weight', [d], 'norm'));
  if (!cfg.tied) out.push(lin('lm_head.weight', d, v, 'output'));
  return out;
}

export const llama: HfFamily = {
  modelType: 'llama',
  model: 'llama',
  modelFile: 'models/llama.ts',
  fromHf(hf, file, run) {
    const [width, heads] = [intKey(hf, 'hidden_size', file), intKey(hf, 'num_attention_heads', file)];
    onlyKey(hf, 'hidden_act', file, ['silu'], 'the MLP is SwiGLU');
    onlyKey(hf, 'head_dim', file, [width / heads], 'head dim = hidden_size / num_attention_heads');
    onlyKey(hf, 'attention_bias', file, [false], 'no biases');
    onlyKey(hf, 'mlp_bias', file, [false], 'no biases');
    onlyKey(hf, 'rope_scaling', file, [], 'plain rotary embeddings');
    onlyKey(hf, 'sliding_window', file, [], 'full causal attention');
    const positions = intKey(hf, 'max_position_embeddings', file, 2048);
    return {
      batch: run.batch, seq: run.seq ?? Math.min(positions, 1024), vocab: intKey(hf, 'vocab_size', file), width,
      layers: intKey(hf, 'num_hidden_layers', file), heads, ffn: intKey(hf, 'intermediate_size', file),
      kvHeads: intKey(hf, 'num_key_value_heads', file, heads), ropeTheta: numKey(hf, 'rope_theta', file, 10000),
      normEps: numKey(hf, 'rms_norm_eps', file, 1e-6), tied: hf.tie_word_embeddings === true,
    };
  },
  toHf: (cfg) => ({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: cfg.vocab, hidden_size: cfg.width, intermediate_size: cfg.ffn,
    num_hidden_layers: cfg.layers, num_attention_heads: cfg.heads, num_key_value_heads: cfg.kvHeads ?? cfg.heads, hidden_act: 'silu',
    max_position_embeddings: cfg.seq, rope_theta: cfg.ropeTheta ?? 10000, rms_norm_eps: cfg.normEps ?? 1e-6, tie_word_embeddings: cfg.tied ?? false,
    attention_bias: false, mlp_bias: false, rope_scaling: null, torch_dtype: 'float32',
  }),
  tensors,
  canonical: (name) => name,
  ignored: (name, cfg) => /\.rotary_emb\.inv_freq$/.test(name) || (cfg.tied === true && name === 'lm_head.weight'),
};
