// Hugging Face folders written by the tests themselves (no downloads here): random tensors under
// HF's names and layouts for a small config, in F32, F16 or BF16, whole or sharded; plus lomoc's
// logits and one training step on the reference executor, and the PyTorch peer's for the same.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f16bits } from '../../contract/f16.ts';
import { normals } from '../../contract/random.ts';
import type { Config, ModelDef } from '../../compiler/dsl/model.ts';
import { traceModel } from '../../compiler/dsl/model.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import type { HfFamily } from '../../models/hf/family.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import { decodeSafetensors, toFloat32, type Dtype } from '../../runtime/checkpoint/safetensors.ts';
import { writeHfFolder, type HfTensorOut } from '../../runtime/checkpoint/hf-folder.ts';
import { buildStep, plainStep, stepFeeds } from '../support/step.ts';

export const models: Readonly<Record<string, ModelDef>> = { gpt: gpt as unknown as ModelDef, llama: llama as unknown as ModelDef };

/** f32 -> bf16 bits, rounding to nearest even (as torch's .to(torch.bfloat16)). */
export function bf16bits(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function encodeAs(values: Float32Array, dtype: Dtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(0));
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = dtype === 'BF16' ? bf16bits(values[i]) : f16bits(values[i]);
  return new Uint8Array(out.buffer);
}

export const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `lomoc-hf-${tag}-`));

/** Random HF tensors for `hfConfig` (norm weights near 1), keyed by HF name, in table order. */
export function randomHfTensors(family: HfFamily, cfg: Config, seed: number): Map<string, { shape: readonly number[]; values: Float32Array }> {
  const rnd = normals(seed);
  const out = new Map<string, { shape: readonly number[]; values: Float32Array }>();
  for (const s of family.tensors(cfg)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const isNorm = /(ln_\d|ln_f|norm)\.weight$/.test(s.hf);
    const values = Float32Array.from({ length: n }, () => (isNorm ? 1 + 0.1 * rnd() : (s.hf.endsWith('.bias') ? 0.05 : 0.3) * rnd()));
    out.set(s.hf, { shape: s.shape, values });
  }
  return out;
}

/** Writes a folder at a new temporary path; `extra` tensors (buffers, strays) are appended. */
export function writeFolder(hfConfig: Record<string, unknown>, tensors: Map<string, { shape: readonly number[]; values: Float32Array }>, opts: { dtype?: Dtype; maxShardBytes?: number; rename?: (n: string) => string; tag?: string } = {}): string {
  const dir = join(tmp(opts.tag ?? 'w'), 'model');
  const dtype = opts.dtype ?? 'F32';
  const list: HfTensorOut[] = [...tensors].map(([name, t]) => ({ name: (opts.rename ?? ((n) => n))(name), dtype, shape: t.shape, data: () => encodeAs(t.values, dtype) }));
  writeHfFolder(dir, { ...hfConfig, torch_dtype: dtype === 'F32' ? 'float32' : dtype === 'BF16' ? 'bfloat16' : 'float16' }, list, opts.maxShardBytes ?? 5e9);
  return dir;
}

export interface Run {
  readonly tokens: number[][];
  readonly targets: number[][];
}

export function randomRun(vocab: number, batch: number, seq: number, seed: number): Run {
  const rnd = normals(seed);
  const id = () => Math.floor(Math.abs(rnd() * 1e6)) % vocab;
  const grid = () => Array.from({ length: batch }, () => Array.from({ length: seq }, id));
  return { tokens: grid(), targets: grid() };
}

const i32 = (g: number[][]): HostTensor => ({ shape: [g.length, g[0].length], data: Int32Array.from(g.flat()) });

/** lomoc's logits on the reference executor: the value crossEntropy reads. */
export function lomocLogits(model: ModelDef, cfg: Config, params: Record<string, Float32Array>, run: Run): Float32Array {
  const { graph } = traceModel(model, cfg);
  const ce = graph.nodes.find((n) => n.op === 'crossEntropy')!;
  const feeds = { inputs: { tokens: i32(run.tokens), targets: i32(run.targets) }, params: hostParams(graph.params.map((p) => ({ name: p.name, shape: graph.values[p.value].shape })), params) };
  return Float32Array.from(execute(graph, feeds, 'f32').values[ce.inputs[0]]!.data);
}

function hostParams(decl: readonly { name: string; shape: readonly number[] }[], params: Record<string, Float32Array>): Record<string, HostTensor> {
  return Object.fromEntries(decl.map((p) => [p.name, { shape: p.shape, data: params[p.name] }]));
}

/** One LOMO step on the reference executor: the loss and the updated params. */
export function lomocLomoStep(model: ModelDef, cfg: Config, params: Record<string, Float32Array>, run: Run, lr: number): { loss: number; params: Record<string, Float32Array> } {
  const { graph } = traceModel(model, cfg);
  const built = buildStep(graph, { optimizer: 'lomo' });
  const base = { inputs: { tokens: i32(run.tokens), targets: i32(run.targets) }, params: hostParams(graph.params.map((p) => ({ name: p.name, shape: graph.values[p.value].shape })), params) };
  const r = plainStep(built.step, stepFeeds(built.step, base, { lr, weightDecay: 0 }));
  return { loss: r.loss, params: Object.fromEntries(Object.entries(r.params).map(([k, v]) => [k, Float32Array.from(v.data)])) };
}

export const peerScript = join(import.meta.dirname, '..', 'peers', 'hf_peer.py');

export interface PeerJob {
  readonly dir: string;
  readonly run: Run;
  /** With lr: the loss and every tensor after one SGD step too. */
  readonly lr?: number;
}

/** The PyTorch peer's outputs for each job (one process: importing torch takes seconds). */
export async function torchPeer(jobs: readonly PeerJob[]): Promise<Record<string, Float32Array>[]> {
  const run = promisify(execFile);
  try {
    await run('/usr/bin/python3', ['-c', 'import torch']);
  } catch {
    throw new Error("PyTorch is missing for /usr/bin/python3: run scripts/setup-torch.sh (as root) to install Debian's python3-torch");
  }
  const work = tmp('peer');
  const spec = jobs.map((j, i) => ({ dir: j.dir, ...j.run, lr: j.lr ?? null, out: join(work, `out-${i}.safetensors`) }));
  writeFileSync(join(work, 'jobs.json'), JSON.stringify(spec));
  await run('/usr/bin/python3', [peerScript, join(work, 'jobs.json')], { maxBuffer: 1 << 24 });
  return spec.map(({ out }) => {
    const d = decodeSafetensors(readFileSync(out), out);
    return Object.fromEntries(Object.entries(d.tensors).map(([k, t]) => [k, toFloat32(k, t)]));
  });
}

/** max |a - b| / (1 + max |b|): a scale-free f32 distance. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (1 + m);
}

/** GPT-2's map from bytes to printable characters (bytes_to_unicode in its encoder.py). */
function bytesToUnicode(): string[] {
  const keep = new Set<number>();
  for (const [a, b] of [[33, 126], [161, 172], [174, 255]]) for (let i = a; i <= b; i++) keep.add(i);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep.has(b) ? b : 256 + n++));
}

/** A tiny GPT-2-style byte-level BPE tokenizer.json: 256 byte tokens, 7 merges, <|endoftext|> (264 ids). */
export function byteLevelBpe(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((c, i) => (vocab[c] = i));
  const merges = ['t h', 'th e', 'Ġ the', 'a n', 'an d', 'Ġ w', 'Ġw h'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: vocab['<|endoftext|>'], content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null, pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** A folder holding `json` as tokenizer.json (and tokenizer_config.json when given). */
export function tokenizerFolder(json: Record<string, unknown>, config?: Record<string, unknown>): string {
  const dir = join(tmp('tok'), 'tokenizer');
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  if (config) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}
