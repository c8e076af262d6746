// Shared by the generation tests: small random configs of gpt and llama, the full forward's
// logits on the reference executor (the oracle), and the logits a decoder gives position by position.
import fc from 'fast-check';
import type { Decoder } from '../../contract/decoder.ts';
import { compileInference, type CompiledInference } from '../../compiler/inference/compile-inference.ts';
import { referenceDecoder } from '../../compiler/inference/reference-decoder.ts';
import type { ModelDef } from '../../compiler/dsl/model.ts';
import { execute } from '../../compiler/reference/execute.ts';
import { initParams } from '../../compiler/reference/init.ts';
import type { HostTensor, Precision } from '../../compiler/reference/tensor.ts';
import { loadModel } from '../../compiler/load-model.ts';

export const gpt = (): Promise<ModelDef> => loadModel('models/gpt.ts');
export const llama = (): Promise<ModelDef> => loadModel('models/llama.ts');

export interface SmallConfig {
  readonly sets: string[];
  readonly seq: number;
  readonly vocab: number;
  readonly chunk: number;
}

/** A random small config of a model with the keys seq, vocab, width, layers, heads (and ffn for llama). */
export const smallConfig = (ffn: boolean): fc.Arbitrary<SmallConfig> =>
  fc
    .record({ seq: fc.integer({ min: 2, max: 7 }), vocab: fc.integer({ min: 3, max: 17 }), heads: fc.integer({ min: 1, max: 2 }), dh: fc.constantFrom(2, 4), layers: fc.integer({ min: 1, max: 2 }), chunkAt: fc.double({ min: 0, max: 1, noNaN: true }) })
    .map((r) => ({
      sets: [`seq=${r.seq}`, `vocab=${r.vocab}`, `width=${r.heads * r.dh}`, `heads=${r.heads}`, `layers=${r.layers}`, ...(ffn ? [`ffn=${3 * r.dh}`] : [])],
      seq: r.seq,
      vocab: r.vocab,
      chunk: 1 + Math.min(r.seq - 1, Math.floor(r.chunkAt * r.seq)),
    }));

export interface Setup {
  readonly c: CompiledInference;
  readonly params: Record<string, HostTensor>;
}

export function setup(def: ModelDef, cfg: { sets?: string[]; chunk?: number; preset?: string }, seed: number, precision: Precision): Setup {
  const c = compileInference(def, { preset: cfg.preset ?? 'tiny', sets: cfg.sets, chunk: cfg.chunk, verifyEach: true });
  return { c, params: initParams(c.forward, seed, precision) };
}

/** The full forward's logits row by row ([context][vocab]) over `tokens` padded with zeros. */
export function fullLogits(s: Setup, tokens: readonly number[], precision: Precision): number[][] {
  const g = s.c.forward;
  const ids = new Int32Array(s.c.context);
  ids.set(tokens);
  const inputs = Object.fromEntries(g.inputs.map((d) => [d.name, { shape: g.values[d.value].shape, data: ids }]));
  const ex = execute(g, { inputs, params: s.params }, precision);
  const data = ex.values[g.outputs!.logits]!.data;
  return Array.from({ length: s.c.context }, (_, t) => Array.from(data.subarray(t * s.c.vocab, (t + 1) * s.c.vocab)));
}

/** The logits at every position: the first `prefilled` tokens in one prefill per chunk (the last row of each), the rest one decode step each. */
export async function stepLogits(dec: Decoder, tokens: readonly number[], prefilled: number): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (let p = 0; p < prefilled; p += dec.chunk) {
    const part = tokens.slice(p, Math.min(prefilled, p + dec.chunk));
    out.set(p + part.length - 1, Array.from(await dec.prefill(part, p)));
  }
  for (let p = prefilled; p < tokens.length; p++) out.set(p, Array.from(await dec.decode(tokens[p], p)));
  return out;
}

export const reference = (s: Setup, precision: Precision): Decoder => referenceDecoder(s.c, s.params, precision);
