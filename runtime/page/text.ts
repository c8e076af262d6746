// The text a page trains on: a sample shipped in the bundle, a file the user chose or dropped, or
// pasted text; tokenised as the bundle's vocabulary says, split into training tokens and the
// held-out tail. Every problem is a TextError with a message for the page: nothing is thrown away
// before the new text is known to be usable.
import { byteTokens, splitTokens, type Split } from '../train/data.ts';

export class TextError extends Error {
  override name = 'TextError';
}

export type TokenizerName = 'bytes' | 'gpt2';

/** The tokenizer whose ids the bundle's vocabulary holds, or a TextError naming the mismatch. */
export function tokenizerFor(vocab: unknown): TokenizerName {
  if (vocab === 256) return 'bytes';
  if (vocab === 50257) return 'gpt2';
  throw new TextError(`this bundle's vocabulary (${String(vocab)}) matches no tokenizer the page has: bytes (256 ids) or gpt2 (50257 ids)`);
}

/** UTF-8 text from a file's bytes; binary or empty content is an error naming the file and the first bad byte. */
export function decodeText(name: string, bytes: Uint8Array): string {
  if (bytes.byteLength === 0) throw new TextError(`the file '${name}' is empty`);
  const nul = bytes.indexOf(0);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // The first byte that breaks UTF-8: decode growing prefixes by halving steps.
    let at = 0;
    for (let step = 1 << 20; at < bytes.length; ) {
      const end = Math.min(bytes.length, at + step);
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end), { stream: true });
        at = end;
      } catch {
        if (step === 1) break;
        step >>= 1;
      }
    }
    throw new TextError(`the file '${name}' is not UTF-8 text (invalid byte 0x${bytes[at]?.toString(16).padStart(2, '0')} at offset ${at})`);
  }
  if (nul >= 0) throw new TextError(`the file '${name}' is binary, not text (a zero byte at offset ${nul})`);
  return text;
}

export interface Tokens extends Split {
  /** What the run records as its data (the sample's corpus name, the file's name, or 'pasted'). */
  readonly data: string;
  readonly total: number;
}

/** Tokenises `text` and holds out its last 10%; each part must hold one window of seq + 1 tokens. */
export async function tokensOf(data: string, text: string, tokenizer: TokenizerName, seq: number): Promise<Tokens> {
  if (text.length === 0) throw new TextError(`the text (${data}) is empty`);
  let ids: Int32Array;
  if (tokenizer === 'bytes') ids = byteTokens(text);
  else {
    const { encode } = await import('gpt-tokenizer/encoding/r50k_base');
    ids = Int32Array.from(encode(text));
  }
  const { train, val } = splitTokens(ids);
  const need = Math.ceil((seq + 1) / 0.1);
  if (val.length < seq + 1 || train.length < seq + 1)
    throw new TextError(`the text (${data}) gives ${ids.length} tokens: too few for one batch window of ${seq + 1} tokens in its last 10% (about ${need} tokens or more are needed)`);
  return { data, train, val, total: ids.length };
}
