// GPT-2 (model_type gpt2) <-> models/gpt.ts. HF's Conv1D stores weights [in, out], as lomoc's
// x @ w does, so only c_attn needs work: it packs q, k and v as columns of one [d, 3d] tensor
// (and its bias as [3d]). Keys may carry the `transformer.` prefix (GPT2LMHeadModel) or not
// (GPT2Model); the LM head is tied to wte, and attn.bias / attn.masked_bias are mask buffers.
import type { Config } from '../../compiler/dsl/model.ts';
import { intKey, numKey, onlyKey, type HfFamily, type HfTensorSpec } from './family.ts';

const same = (param: string, shape: readonly number[]) => ({ param, shape, layout: 'same' as const });

function tensors(cfg: Config): HfTensorSpec[] {
  const [v, d, positions] = [Number(cfg.vocab), Number(cfg.width), Number(cfg.positions ?? cfg.seq)];
  const t = (hf: string, shape: number[], param: string): HfTensorSpec => ({ hf, shape, parts: [same(param, shape)] });
  const out: HfTensorSpec[] = [t('wte.weight', [v, d], 'wte'), t('wpe.weight', [positions, d], 'wpe')];
  for (let i = 0; i < Number(cfg.layers); i++) {
    const [h, p] = [`h.${i}`, `h.${i}`];
    const qkv = ['q', 'k', 'v'];
    out.push(
      t(`${h}.ln_1.weight`, [d], `${p}.ln1.g`),
      t(`${h}.ln_1.bias`, [d], `${p}.ln1.b`),
      { hf: `${h}.attn.c_attn.weight`, shape: [d, 3 * d], parts: qkv.map((n, j) => ({ ...same(`${p}.attn.${n}.w`, [d, d]), cols: [j * d, (j + 1) * d] as const })) },
      { hf: `${h}.attn.c_attn.bias`, shape: [3 * d], parts: qkv.map((n, j) => ({ ...same(`${p}.attn.${n}.b`, [d]), cols: [j * d, (j + 1) * d] as const })) },
      t(`${h}.attn.c_proj.weight`, [d, d], `${p}.attn.proj.w`),
      t(`${h}.attn.c_proj.bias`, [d], `${p}.attn.proj.b`),
      t(`${h}.ln_2.weight`, [d], `${p}.ln2.g`),
      t(`${h}.ln_2.bias`, [d], `${p}.ln2.b`),
      t(`${h}.mlp.c_fc.weight`, [d, 4 * d], `${p}.mlp.fc.w`),
      t(`${h}.mlp.c_fc.bias`, [4 * d], `${p}.mlp.fc.b`),
      t(`${h}.mlp.c_proj.weight`, [4 * d, d], `${p}.mlp.proj.w`),
      t(`${h}.mlp.c_proj.bias`, [d], `${p}.mlp.proj.b`),
    );
  }
  out.push(t('ln_f.weight', [d], 'ln_f.g'), t('ln_f.bias', [d], 'ln_f.b'));
  // GPT2LMHeadModel's own names, so the folder loads into it with no warnings.
  return out.map((s) => ({ ...s, hf: `transformer.${s.hf}` }));
}

export const gpt2: HfFamily = {
  modelType: 'gpt2',
  model: 'gpt',
  modelFile: 'models/gpt.ts',
  fromHf(hf, file, run) {
    const width = intKey(hf, 'n_embd', file);
    const positions = intKey(hf, 'n_positions', file);
    onlyKey(hf, 'n_inner', file, [4 * width], 'the MLP is 4 x n_embd wide');
    onlyKey(hf, 'activation_function', file, ['gelu_new'], "lomoc's gelu is the tanh approximation");
    onlyKey(hf, 'scale_attn_weights', file, [true], 'attention scales by 1/sqrt(head dim)');
    onlyKey(hf, 'scale_attn_by_inverse_layer_idx', file, [false], 'no per-layer attention scaling');
    onlyKey(hf, 'tie_word_embeddings', file, [true], 'the LM head is wte');
    return {
      batch: run.batch, seq: run.seq ?? Math.min(positions, 1024), vocab: intKey(hf, 'vocab_size', file), width,
      layers: intKey(hf, 'n_layer', file), heads: intKey(hf, 'n_head', file), positions, eps: numKey(hf, 'layer_norm_epsilon', file, 1e-5),
    };
  },
  toHf: (cfg) => ({
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: cfg.vocab, n_positions: cfg.positions ?? cfg.seq, n_ctx: cfg.positions ?? cfg.seq,
    n_embd: cfg.width, n_layer: cfg.layers, n_head: cfg.heads, n_inner: null, activation_function: 'gelu_new',
    layer_norm_epsilon: cfg.eps ?? 1e-5, tie_word_embeddings: true, torch_dtype: 'float32',
  }),
  tensors,
  canonical: (name) => (name.startsWith('transformer.') ? name : `transformer.${name}`),
  ignored: (name) => /\.attn\.(masked_)?bias$/.test(name) || name === 'transformer.lm_head.weight' || name === 'lm_head.weight',
};
