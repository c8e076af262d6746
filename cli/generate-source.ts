// Where `lomoc generate` gets its model, weights and tokenizer: a model file (random weights from
// its initialisers), or a checkpoint `lomoc train --save` wrote (a .safetensors file, or the
// folder holding checkpoint.safetensors), whose metadata names the model, its config and its
// tokenizer. An importer of other formats (Hugging Face folders) plugs in by returning a
// GenerateSource: a model, a config, and a params map.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LomocError } from '../compiler/diagnostics.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import { loadModel } from '../compiler/load-model.ts';
import { loadCheckpoint, requireTensor, SafetensorsError } from '../runtime/checkpoint/node.ts';
import { tokenizerVocab, type TokenizerName } from './train-data.ts';

export interface GenerateSource {
  readonly def: ModelDef;
  readonly preset?: string;
  /** Config overrides (key=value) on the preset. */
  readonly sets: readonly string[];
  /** Every param's values by name; undefined: draw them from the model's initialisers. */
  readonly params?: (shapes: readonly { name: string; shape: readonly number[] }[]) => Record<string, Float32Array>;
  /** The tokenizer the weights were trained with, when the source says. */
  readonly tokenizer?: TokenizerName;
  /** What was loaded, for the header line. */
  readonly what: string;
}

const lomocRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A checkpoint's params: every one the model declares, with its shape (errors name the file and the tensor). */
export function checkpointParams(file: string): GenerateSource['params'] {
  return (shapes) => {
    const ckpt = loadCheckpoint(file);
    return Object.fromEntries(shapes.map((p) => [p.name, requireTensor(ckpt, p.name, file, p.shape)]));
  };
}

/** The tokenizer a checkpoint's metadata names (run.tokenizer), if any. */
function checkpointTokenizer(file: string): TokenizerName | undefined {
  let run: Record<string, unknown> = {};
  try {
    run = JSON.parse(loadCheckpoint(file).metadata.run ?? '{}') as Record<string, unknown>;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc generate: --init ${e.message}`);
    throw new LomocError(`lomoc generate: ${file}: metadata 'run' is not JSON`);
  }
  return run.tokenizer === 'gpt2' || run.tokenizer === 'bytes' ? run.tokenizer : undefined;
}

export async function generateSource(source: string, model: string | undefined, preset: string | undefined, sets: readonly string[], init?: string): Promise<GenerateSource> {
  const st = statSync(source, { throwIfNoEntry: false });
  if (!st) throw new LomocError(`lomoc generate: expected a model file (.ts), a checkpoint (.safetensors) or a folder holding checkpoint.safetensors, found nothing at '${source}'`);
  const file = st.isDirectory() ? path.join(source, 'checkpoint.safetensors') : source;
  if (st.isFile() && source.endsWith('.ts')) {
    if (model !== undefined) throw new LomocError("lomoc generate: option '--model' is for checkpoints; the model file is the first argument");
    if (init === undefined) return { def: await loadModel(source), preset, sets, what: `${source} (random weights: no checkpoint)` };
    const initFile = statSync(init, { throwIfNoEntry: false })?.isDirectory() ? path.join(init, 'checkpoint.safetensors') : init;
    const tokenizer = checkpointTokenizer(initFile);
    return { def: await loadModel(source), preset, sets, params: checkpointParams(initFile), tokenizer, what: `${source} with the weights of ${initFile}` };
  }
  if (init !== undefined) throw new LomocError("lomoc generate: option '--init' is for a model file or a bundle; a checkpoint given first is its own weights");
  if (!file.endsWith('.safetensors') || !existsSync(file))
    throw new LomocError(`lomoc generate: expected a model file (.ts), a checkpoint (.safetensors) or a folder holding checkpoint.safetensors, got '${source}'`);
  let metadata: Record<string, string>;
  try {
    metadata = loadCheckpoint(file).metadata;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc generate: ${e.message}`);
    throw e;
  }
  let run: Record<string, string> = {};
  try {
    run = JSON.parse(metadata.run ?? '{}') as Record<string, string>;
  } catch {
    throw new LomocError(`lomoc generate: ${file}: metadata 'run' is not JSON`);
  }
  const name = run.model;
  const modelFile = model ?? (name ? path.join(lomocRoot, 'models', `${name}.ts`) : undefined);
  if (!modelFile || !existsSync(modelFile))
    throw new LomocError(`lomoc generate: ${file}: ${name ? `model '${name}' is not one of lomoc's models/` : 'the checkpoint names no model'}; give its file with --model FILE`);
  const def = await loadModel(modelFile);
  // The checkpoint's config, key by key, under the user's overrides; the batch becomes 1 later.
  const config = JSON.parse(run.config ?? '{}') as Record<string, unknown>;
  const saved = Object.entries(config).filter(([k]) => k in (def.presets[preset ?? def.defaultPreset] ?? {})).map(([k, v]) => `${k}=${String(v)}`);
  const tokenizer = run.tokenizer === 'gpt2' || run.tokenizer === 'bytes' ? run.tokenizer : undefined;
  return { def, preset, sets: [...saved, ...sets], params: checkpointParams(file), tokenizer, what: `${file} (model ${def.name})` };
}

/** The tokenizer for a vocabulary: the source's, else the one whose size matches (bytes 256, gpt2 50257), else none. */
export function pickTokenizer(vocab: number, named?: TokenizerName): TokenizerName | undefined {
  if (named) {
    if (tokenizerVocab[named] > vocab)
      throw new LomocError(`lomoc generate: the tokenizer '${named}' gives ids up to ${tokenizerVocab[named] - 1}, but the model's vocabulary has ${vocab} tokens`);
    return named;
  }
  return (Object.keys(tokenizerVocab) as TokenizerName[]).find((t) => tokenizerVocab[t] === vocab);
}

export interface TextCodec {
  encode(text: string): number[];
  /** The text of a whole sequence of ids. */
  decode(ids: readonly number[]): string;
}

export async function textCodec(name: TokenizerName): Promise<TextCodec> {
  if (name === 'bytes')
    return { encode: (t) => [...new TextEncoder().encode(t)], decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)) };
  const { encode, decode } = await import('gpt-tokenizer/encoding/r50k_base');
  return { encode: (t) => encode(t), decode: (ids) => decode(ids) };
}
