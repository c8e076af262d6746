// The inference program on the reference executor (`lomoc generate --device cpu`, and the oracle
// the WebGPU decoder is tested against): the prefill and decode steps run node by node on host
// tensors, the key/value caches carried from step to step on the host.
import type { Decoder, Logits } from '../../contract/decoder.ts';
import type { Graph } from '../ir/types.ts';
import { bindFeed, runNode } from '../reference/execute.ts';
import { alloc, type HostTensor, type Precision } from '../reference/tensor.ts';
import { inferenceNames } from './chunk-step.ts';
import type { CompiledInference } from './compile-inference.ts';

/** Host values of params by name (a checkpoint's, an importer's, or initParams'). */
export type ParamsMap = Readonly<Record<string, HostTensor>>;

export function referenceDecoder(c: CompiledInference, params: ParamsMap, precision: Precision = 'f32'): Decoder {
  const caches = new Map<string, HostTensor>();
  for (const s of c.decode.state ?? []) caches.set(s.name, alloc(c.decode.values[s.value].shape, c.decode.values[s.value].dtype, precision));
  // Each param converted to the run's storage once.
  const bound = new Map<string, HostTensor>();
  for (const p of c.decode.params) bound.set(p.name, bindFeed('param', p.name, c.decode.values[p.value], params[p.name], precision));

  const run = (g: Graph, tokens: readonly number[], pos: number, rows: number): Logits => {
    const values = new Array<HostTensor | undefined>(g.values.length).fill(undefined);
    const ids = new Int32Array(rows);
    ids.set(tokens);
    for (const d of g.inputs)
      values[d.value] = { shape: g.values[d.value].shape, data: d.name === inferenceNames.pos ? Int32Array.of(pos) : ids };
    for (const p of g.params) values[p.value] = bound.get(p.name);
    for (const s of g.state ?? []) values[s.value] = caches.get(s.name);
    for (const n of g.nodes) runNode(n, g, values, precision);
    for (const s of g.state ?? []) caches.set(s.name, values[s.next]!);
    const logits = values[g.loss]!.data as Logits;
    const row = tokens.length - 1;
    return logits.slice(row * c.vocab, (row + 1) * c.vocab);
  };
  return {
    context: c.context,
    chunk: c.chunk,
    vocab: c.vocab,
    prefill: async (tokens, pos) => run(c.prefill, tokens, pos, c.chunk),
    decode: async (token, pos) => run(c.decode, [token], pos, 1),
  };
}
