// `lomoc generate` end to end on the reference executor: --json output, greedy and seeded runs,
// a checkpoint's weights, and bad input with its whole message.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../../runtime/checkpoint/node.ts';
import { generate } from '../../runtime/generate/generate.ts';
import { run } from '../support/cli.ts';
import { gpt, reference, setup } from './support.ts';

const gen = (...args: string[]) => run('generate', ...args);
const json = (stdout: string) => JSON.parse(stdout) as { promptTokens: number[]; tokens: number[]; text: string | null };

describe('lomoc generate', { timeout: 60_000 }, () => {
  it('--json: prompt tokens, generated tokens, and text null without a tokenizer; greedy runs repeat', async () => {
    const a = await gen('models/gpt.ts', '--prompt-tokens', '1,2,3', '--temperature', '0', '--max-tokens', '4', '--device', 'cpu', '--json');
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const r = json(a.stdout);
    expect(r.promptTokens).toEqual([1, 2, 3]);
    expect(r.tokens).toHaveLength(4);
    expect(r.text).toBeNull();
    expect(json((await gen('models/gpt.ts', '--prompt-tokens', '1,2,3', '--temperature', '0', '--max-tokens', '4', '--device', 'cpu', '--json')).stdout).tokens).toEqual(r.tokens);
  });

  it('a byte vocabulary takes a text prompt; the same seed gives the same text', async () => {
    const args = ['models/gpt.ts', '--preset', 'small', '--set', 'layers=1', '--set', 'seq=16', '--prompt', 'Hi', '--max-tokens', '5', '--seed', '7', '--top-k', '20', '--device', 'cpu', '--json'];
    const [a, b] = [json((await gen(...args)).stdout), json((await gen(...args)).stdout)];
    expect(a.promptTokens).toEqual([72, 105]);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.text).toBe(new TextDecoder().decode(Uint8Array.from(a.tokens)));
  });

  it('stops when the sequence fills the context, and says so', async () => {
    const r = await gen('models/gpt.ts', '--prompt-tokens', '1,2,3,4,5,6', '--max-tokens', '10', '--device', 'cpu');
    expect(r.code).toBe(0);
    expect(r.stdout.split(' ')).toHaveLength(2);
    expect(r.stderr).toContain('note        stopped after 2 tokens: the sequence fills the context of 8');
  });

  it("a checkpoint supplies the weights: the tokens are the reference decoder's with the checkpoint's params", async () => {
    const s = setup(await gpt(), {}, 9, 'f32');
    const dir = mkdtempSync(join(tmpdir(), 'lomoc-generate-'));
    const tensors = Object.fromEntries(Object.entries(s.params).map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]));
    const meta = (tokenizer?: string) => ({ format: 'lomoc-checkpoint/1', run: JSON.stringify({ model: 'gpt', config: JSON.stringify(s.c.config), ...(tokenizer ? { tokenizer } : {}) }) });
    saveCheckpoint(join(dir, 'checkpoint.safetensors'), tensors, meta());
    const want: number[] = [];
    for await (const t of generate(reference(s, 'f32'), [5, 6], { maxTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 0 })) want.push(t);
    const r = await gen(dir, '--prompt-tokens', '5,6', '--temperature', '0', '--max-tokens', '5', '--device', 'cpu', '--json');
    expect(r.stderr).toBe('');
    expect(json(r.stdout).tokens).toEqual(want);
    // A checkpoint whose tokenizer does not fit the model's vocabulary.
    saveCheckpoint(join(dir, 'bytes.safetensors'), tensors, meta('bytes'));
    const bad = await gen(join(dir, 'bytes.safetensors'), '--prompt-tokens', '5,6', '--device', 'cpu');
    expect([bad.code, bad.stderr]).toEqual([1, "error: lomoc generate: the tokenizer 'bytes' gives ids up to 255, but the model's vocabulary has 32 tokens"]);
  });

  it('bad input: one error line each, naming the option or file, what was expected and what was found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lomoc-generate-'));
    mkdirSync(join(dir, 'bundle'));
    writeFileSync(join(dir, 'bundle', 'manifest.json'), '{}');
    const cases: [string[], string][] = [
      [['--prompt-tokens', '1', '--top-p', '0'], "error: lomoc generate: option '--top-p' expects a number in (0, 1], got '0'"],
      [['--prompt-tokens', '1', '--top-p', '1.5'], "error: lomoc generate: option '--top-p' expects a number in (0, 1], got '1.5'"],
      [['--prompt-tokens', '1', '--temperature', '-1'], "error: lomoc generate: option '--temperature' must be >= 0, got '-1'"],
      [['--prompt-tokens', '1,2,3,4,5,6,7,8,9'], "error: lomoc generate: the prompt has 9 tokens, more than the model's context of 8"],
      [['--prompt-tokens', '1,x'], "error: lomoc generate: option '--prompt-tokens' expects comma-separated token ids like 1,2,3, got '1,x'"],
      [['--prompt-tokens', '40'], 'error: lomoc generate: token id 40 is outside the vocabulary [0, 32)'],
      [['--prompt', 'hello'], "error: lomoc generate: model 'gpt' has a vocabulary of 32 tokens, which no tokenizer matches (bytes: 256, gpt2: 50257); give the prompt as ids with --prompt-tokens"],
      [[], "error: lomoc generate: give the prompt with exactly one of '--prompt TEXT' and '--prompt-tokens ID,ID,...'"],
      [['--prompt-tokens', '1', '--max-tokens', '0'], "error: lomoc generate: option '--max-tokens' must be positive, got '0'"],
    ];
    for (const [args, message] of cases) {
      const r = await gen('models/gpt.ts', '--device', 'cpu', ...args);
      expect([r.code, r.stderr]).toEqual([1, message]);
    }
    for (const [args, message] of [[['--prompt-tokens', '1', '--device', 'gpu'], "error: lomoc generate: option '--device' expects webgpu or cpu, got 'gpu'"]] as const) {
      const r = await gen('models/gpt.ts', ...args);
      expect([r.code, r.stderr]).toEqual([1, message]);
    }
    const bundle = await gen(join(dir, 'bundle'), '--prompt-tokens', '1');
    // A bundle folder is loaded and checked as a bundle (its inference program: test/bundle-inference.test.ts).
    expect([bundle.code, bundle.stderr]).toEqual([1, `error: lomoc generate: ${join(dir, 'bundle')}/manifest.json: format: Invalid input: expected "lomoc-bundle"`]);
    const none = await gen(join(dir, 'nothing.ts'), '--prompt-tokens', '1');
    expect([none.code, none.stderr]).toEqual([1, `error: lomoc generate: expected a model file (.ts), a checkpoint (.safetensors) or a folder holding checkpoint.safetensors, found nothing at '${join(dir, 'nothing.ts')}'`]);
  });
});
