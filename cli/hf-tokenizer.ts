// Tokenizers for `lomoc train --tokenizer`: the built-in names (bytes, gpt2) or a folder with a
// Hugging Face tokenizer.json (and tokenizer_config.json), read with @huggingface/tokenizers:
// Hugging Face's own pure-JS implementation of the format (BPE, WordPiece, Unigram, with their
// normalizers and pre-tokenizers), the one transformers.js uses. No native code, no downloads.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import { tokenize, tokenizerVocab, type TokenizerName } from './train-data.ts';

export interface TextTokenizer {
  /** What --tokenizer said: a built-in name or the folder. */
  readonly name: string;
  /** Ids are in [0, vocab). */
  readonly vocab: number;
  encode(text: string): Promise<Int32Array>;
  decode?(ids: readonly number[]): string;
}

function readJson(file: string, required: boolean): Record<string, unknown> | undefined {
  if (!existsSync(file)) {
    if (required) throw new LomocError(`${file}: no such file (a Hugging Face tokenizer folder holds tokenizer.json)`);
    return undefined;
  }
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new LomocError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** A folder's tokenizer.json (+ tokenizer_config.json when present). The library loads on first use, not with the CLI. */
export async function loadHfTokenizer(dir: string): Promise<TextTokenizer> {
  const file = join(dir, 'tokenizer.json');
  const json = readJson(file, true)!;
  const config = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
  const { Tokenizer } = await import('@huggingface/tokenizers');
  let tk: InstanceType<typeof Tokenizer>;
  try {
    tk = new Tokenizer(json, config);
  } catch (e) {
    throw new LomocError(`${file}: not a tokenizer this library reads (${(e as Error).message})`);
  }
  // The vocabulary with added tokens: ids run to the largest one.
  const vocab = Math.max(-1, ...tk.get_vocab(true).values()) + 1;
  return {
    name: dir,
    vocab,
    encode: async (text) => Int32Array.from(tk.encode(text, { add_special_tokens: false }).ids),
    // The library refuses an empty list; no ids are the empty text.
    decode: (ids) => (ids.length ? tk.decode([...ids], { skip_special_tokens: false }) : ''),
  };
}

/** --tokenizer: bytes, gpt2, or a folder with tokenizer.json. */
export async function textTokenizer(name: string): Promise<TextTokenizer> {
  if (name === 'bytes' || name === 'gpt2') return { name, vocab: tokenizerVocab[name], encode: (text) => tokenize(text, name as TokenizerName) };
  if (statSync(name, { throwIfNoEntry: false })?.isDirectory()) return loadHfTokenizer(name);
  throw new LomocError(`lomoc train: option '--tokenizer' expects bytes, gpt2 or a folder with tokenizer.json, got '${name}'`);
}

/** The model must have exactly as many ids as the tokenizer gives. */
export function checkVocab(tk: TextTokenizer, modelVocab: number, model: string): void {
  if (tk.vocab !== modelVocab)
    throw new LomocError(`${tk.name === 'bytes' || tk.name === 'gpt2' ? `the ${tk.name} tokenizer` : join(tk.name, 'tokenizer.json')}: the tokenizer's vocabulary has ${tk.vocab} ids, but model '${model}' has vocab ${modelVocab}${tk.name === 'bytes' || tk.name === 'gpt2' ? `: add --set vocab=${tk.vocab}` : ''}`);
}
