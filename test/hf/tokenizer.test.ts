// Tokenizers from a checkpoint folder's tokenizer.json (read by @huggingface/tokenizers): the test
// writes two tiny ones in Hugging Face's format, GPT-2's byte-level BPE and LLaMA-2's
// SentencePiece-style BPE with byte fallback, and checks known encodings, decode(encode(text)) ==
// text on the test texts and on random Unicode, and the vocab-size check against the model.
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkVocab, loadHfTokenizer, textTokenizer } from '../../cli/hf-tokenizer.ts';
import { byteLevelBpe, tokenizerFolder as folder, tmp } from './fixtures.ts';

function llamaBpe(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const c of ['▁', 'a', 'b', 'd', 'e', 'h', 'l', 'n', 'o', 't', 'w']) vocab[c] = Object.keys(vocab).length;
  const merges = ['▁ t', 'h e', '▁t he', 'a n', 'an d', '▁ w', 'o r', 'l d'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [{ Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges },
  };
}

const texts = ['the band and the world', 'Call me Ishmael. Some years ago—never mind how long precisely—', 'ünïcödé ✓ 日本語 🐋\ttabs\nnewlines  two spaces', ''];

describe('tokenizer.json from the checkpoint folder', () => {
  it("GPT-2's byte-level BPE: known merges, and decode(encode(text)) == text", async () => {
    const tk = await loadHfTokenizer(folder(byteLevelBpe()));
    expect(tk.vocab).toBe(256 + 7 + 1);
    // Byte b has id b: 'the' 257, then 'Ġband' = 'Ġ' (space, 32) 'b' (98) 'and' (260), then 'Ġwh' 262.
    expect([...(await tk.encode('the band wh'))]).toEqual([257, 32, 98, 260, 262]);
    for (const t of texts) expect(tk.decode!([...(await tk.encode(t))])).toBe(t);
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 40 }), async (t) => tk.decode!([...(await tk.encode(t))]) === t), { numRuns: 200 });
  });

  it("LLaMA-2's SentencePiece-style BPE with byte fallback, with tokenizer_config.json", async () => {
    const tk = await loadHfTokenizer(folder(llamaBpe(), { add_bos_token: true, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'LlamaTokenizer' }));
    expect(tk.vocab).toBe(3 + 256 + 11 + 8);
    const ids = [...(await tk.encode('the world'))];
    // '▁the' and '▁w' 'or' 'ld': merges, no bytes; '日' falls back to its three UTF-8 bytes.
    expect(ids).toEqual([272, 275, 276, 277]);
    expect([...(await tk.encode('日'))]).toEqual([259, 3 + 0xe6, 3 + 0x97, 3 + 0xa5]);
    for (const t of texts.filter((x) => x !== '')) expect(tk.decode!([...(await tk.encode(t))])).toBe(t);
  });

  it('errors: no tokenizer.json, invalid JSON, a bad --tokenizer, a vocab size other than the model\'s', async () => {
    const empty = tmp('notok');
    await expect(loadHfTokenizer(empty)).rejects.toThrow(`error: ${empty}/tokenizer.json: no such file (a Hugging Face tokenizer folder holds tokenizer.json)`);
    writeFileSync(join(empty, 'tokenizer.json'), '{oops');
    const why = (() => {
      try {
        return JSON.parse('{oops');
      } catch (e) {
        return (e as Error).message; // Node's wording varies by version
      }
    })();
    await expect(loadHfTokenizer(empty)).rejects.toThrow(`error: ${empty}/tokenizer.json: not valid JSON (${why})`);
    await expect(textTokenizer('sentencepiece')).rejects.toThrow("error: lomoc train: option '--tokenizer' expects bytes, gpt2 or a folder with tokenizer.json, got 'sentencepiece'");
    const dir = folder(byteLevelBpe());
    const tk = await loadHfTokenizer(dir);
    expect(() => checkVocab(tk, 50257, 'gpt')).toThrow(`error: ${dir}/tokenizer.json: the tokenizer's vocabulary has 264 ids, but model 'gpt' has vocab 50257`);
    expect(() => checkVocab(tk, 264, 'gpt')).not.toThrow();
  });
});
