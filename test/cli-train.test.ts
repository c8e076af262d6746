// `lomoc train` without a GPU: option, data, vocabulary and resume errors (all raised before a
// device is acquired), and the pieces: batches, validation windows, schedules, the baseline, the
// SVG. The training runs themselves, resume included, are in test/gpu/train.test.ts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { run } from './support/cli.ts';
import { lossCurveSvg } from '../cli/loss-svg.ts';
import { loadText, split, tokenize, trainBatch, unigramEntropy, valBatches } from '../cli/train-data.ts';
import { lrAt } from '../cli/train.ts';
import { saveCheckpoint } from '../runtime/checkpoint/node.ts';


const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-train-'));

describe('lomoc train: errors before the device', () => {
  it('help lists its options', async () => {
    const r = await run('help', 'train');
    expect(r.code).toBe(0);
    for (const opt of ['--data NAME|FILE', '--tokenizer NAME', '--steps N', '--eval-every K', '--save DIR', '--save-every K', '--resume DIR', '--init FILE', '--lr-schedule NAME', '--warmup N', '--json'])
      expect(r.stdout).toContain(opt);
  });

  it('option, data and vocabulary mistakes: one whole message each, exit 1', async () => {
    const dir = tmp();
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '');
    const latin1 = join(dir, 'latin1.txt');
    writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x61]));
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'hello world');
    const gpt = ['models/gpt.ts', '--preset', 'tiny'];
    const cases: [string[], string][] = [
      [[...gpt], "error: lomoc train: option '--steps N' is required"],
      [[...gpt, '--steps', '2', '--lr-schedule', 'step'], "error: lomoc train: option '--lr-schedule' expects constant, linear or cosine, got 'step'"],
      [[...gpt, '--steps', '2', '--tokenizer', 'bpe'], "error: lomoc train: option '--tokenizer' expects gpt2 or bytes, got 'bpe'"],
      [[...gpt, '--steps', '10', '--warmup', '11'], "error: lomoc train: option '--warmup' expects a number of steps at most --steps (10), got '11'"],
      [[...gpt, '--steps', '10', '--warmup', '-1'], "error: lomoc train: option '--warmup' must be >= 0, got '-1'"],
      [[...gpt, '--steps', '2', '--stop-at', '3'], "error: lomoc train: option '--stop-at' expects a step at most --steps (2), got '3'"],
      [[...gpt, '--steps', '2', '--save-every', '1'], "error: lomoc train: option '--save-every' needs '--save DIR'"],
      [[...gpt, '--steps', '2'], 'error: lomoc train: the bytes tokenizer gives 256 ids, but model \'gpt\' (preset tiny) has vocab 32: add --set vocab=256'],
      [[...gpt, '--set', 'vocab=256', '--tokenizer', 'gpt2', '--steps', '2'], "error: lomoc train: the gpt2 tokenizer gives 50257 ids, but model 'gpt' (preset tiny) has vocab 256: add --set vocab=50257"],
      [[...gpt, '--set', 'vocab=256', '--steps', '2', '--data', join(dir, 'nope.txt')], `error: lomoc train: --data '${join(dir, 'nope.txt')}' is neither moby-dick nor sotu nor a readable file (no such file)`],
      [[...gpt, '--set', 'vocab=256', '--steps', '2', '--data', empty], `error: lomoc train: --data '${empty}' is empty`],
      [[...gpt, '--set', 'vocab=256', '--steps', '2', '--data', latin1], `error: lomoc train: --data '${latin1}' is not UTF-8 text (invalid byte 0x20 at offset 4: byte 2 of the sequence that 0xe9 at offset 3 starts must be in 0x80..0xbf)`],
      [[...gpt, '--set', 'vocab=256', '--steps', '2', '--data', short], `error: lomoc train: --data '${short}' gives 11 tokens: too few for a validation window of 9 tokens in its last 10% (use a longer text or a shorter --seq)`],
      [['models/mlp.ts', '--steps', '2'], "error: lomoc train: model 'mlp' must take exactly two i32 inputs 'tokens' and 'targets' of shape [batch, seq]; it takes 'x' f32 [4, 8], 'labels' i32 [4]"],
      [[...gpt, '--set', 'vocab=256', '--steps', '2', '--resume', dir], `error: lomoc train: --resume: ${join(dir, 'checkpoint.safetensors')}: no such checkpoint file`],
    ];
    for (const [argv, message] of cases) {
      const r = await run('train', ...argv);
      expect(r, argv.join(' ')).toEqual({ code: 1, stdout: '', stderr: message });
    }
  });

  it('--resume refuses a checkpoint from another run, naming each difference', async () => {
    const dir = tmp();
    saveCheckpoint(join(dir, 'checkpoint.safetensors'), {}, { format: 'x' });
    const base = ['train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--steps', '4', '--resume', dir];
    expect((await run(...base)).stderr).toBe(`error: lomoc train: --resume: ${join(dir, 'checkpoint.safetensors')} is not a lomoc checkpoint (metadata format "x", expected 'lomoc-checkpoint/1')`);
    const run0 = { model: 'gpt', config: '{}', optimizer: 'adamw', checkpoint: 'none', 'clip-norm': '', 'clip-value': '', lr: '0.01', 'lr-schedule': 'constant', 'weight-decay': '0', data: 'moby-dick', tokenizer: 'bytes', seed: '0' };
    const config = JSON.stringify({ batch: 2, seq: 8, vocab: 256, width: 16, layers: 2, heads: 2 });
    saveCheckpoint(join(dir, 'checkpoint.safetensors'), {}, { format: 'lomoc-checkpoint/1', run: JSON.stringify({ ...run0, config }) });
    expect((await run(...base)).stderr).toBe(
      `error: lomoc train: --resume: this run differs from the one that wrote ${join(dir, 'checkpoint.safetensors')}: optimizer lomo (the checkpoint's: adamw)`,
    );
    // --warmup is part of the schedule: a checkpoint with it does not resume without it, nor the reverse.
    saveCheckpoint(join(dir, 'checkpoint.safetensors'), {}, { format: 'lomoc-checkpoint/1', run: JSON.stringify({ ...run0, optimizer: 'lomo', config, warmup: '5' }) });
    expect((await run(...base)).stderr).toBe(
      `error: lomoc train: --resume: this run differs from the one that wrote ${join(dir, 'checkpoint.safetensors')}: warmup (none) (the checkpoint's: 5)`,
    );
    expect((await run(...base, '--warmup', '3')).stderr).toBe(
      `error: lomoc train: --resume: this run differs from the one that wrote ${join(dir, 'checkpoint.safetensors')}: warmup 3 (the checkpoint's: 5)`,
    );
    // So is the storage dtype: an f32 checkpoint does not resume an f16 run.
    saveCheckpoint(join(dir, 'checkpoint.safetensors'), {}, { format: 'lomoc-checkpoint/1', run: JSON.stringify({ ...run0, optimizer: 'lomo', config }) });
    expect((await run(...base, '--dtype', 'f16')).stderr).toBe(
      `error: lomoc train: --resume: this run differs from the one that wrote ${join(dir, 'checkpoint.safetensors')}: dtype f16 (the checkpoint's: (none))`,
    );
    expect((await run(...base, '--dtype', 'f8')).stderr).toBe("error: lomoc train: option '--dtype' expects f32, f16 or bf16, got 'f8'");
  });
});

describe('lomoc train: a bundle', () => {
  it('a bundle fixes the step options: giving one is an error naming the bundle\'s value', async () => {
    const out = join(tmp(), 'gpt-tiny');
    expect((await run('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--out', out)).code).toBe(0);
    const cases: [string[], string][] = [
      [['--optimizer', 'adamw'], `error: lomoc train: option '--optimizer' cannot be given with a bundle: the bundle ${out} fixes it (compiled with optimizer lomo); compile another bundle to change it`],
      [['--seq', '16'], `error: lomoc train: option '--seq' cannot be given with a bundle: the bundle ${out} fixes it (compiled with seq 8); compile another bundle to change it`],
      [['--dtype', 'f16'], `error: lomoc train: option '--dtype' cannot be given with a bundle: the bundle ${out} fixes it (compiled with dtype f32); compile another bundle to change it`],
      [['--fuse-loss', 'off'], `error: lomoc train: option '--fuse-loss' cannot be given with a bundle: the bundle ${out} fixes it (compiled with the --fuse-loss given to lomoc compile); compile another bundle to change it`],
      [['--subgroups'], `error: lomoc train: option '--subgroups' cannot be given with a bundle: the bundle ${out} fixes it (compiled with no subgroup reductions (compile without --subgroups)); compile another bundle to change it`],
    ];
    for (const [opts, message] of cases) expect(await run('train', out, '--steps', '2', ...opts)).toEqual({ code: 1, stdout: '', stderr: message });
    const empty = tmp();
    expect((await run('train', empty, '--steps', '2')).stderr).toBe(`error: lomoc train: ${empty}: no manifest.json (is it a folder written by lomoc compile?)`);
  });
});

describe('lomoc train: data', () => {
  it('the corpora load, and tokenise as bytes and GPT-2 BPE', async () => {
    const moby = loadText('moby-dick');
    expect(moby).toContain('Call me Ishmael.');
    expect(loadText('sotu')).toContain('Fellow-Citizens of the Senate and House of Representatives');
    expect([...(await tokenize('Call me', 'bytes'))]).toEqual([67, 97, 108, 108, 32, 109, 101]);
    expect([...(await tokenize('Hello world', 'gpt2'))]).toEqual([15496, 995]); // GPT-2's ids
  });

  it('batches: windows shifted by one, a function of (seed, position) alone; validation from the held-out tail', () => {
    const ids = Int32Array.from({ length: 1000 }, (_, i) => i);
    const { train, val } = split(ids, 8, 'x');
    expect([train.length, val.length, val[0]]).toEqual([900, 100, 900]);
    const b = trainBatch(train, 4, 8, 7, 3);
    expect(trainBatch(train, 4, 8, 7, 3)).toEqual(b);
    expect(trainBatch(train, 4, 8, 7, 4)).not.toEqual(b);
    for (let r = 0; r < 4; r++)
      for (let t = 0; t < 8; t++) {
        expect(b.targets[r * 8 + t]).toBe(b.tokens[r * 8 + t] + 1);
        expect(b.tokens[r * 8 + t]).toBe(b.tokens[r * 8] + t);
      }
    expect(Math.max(...b.targets)).toBeLessThan(900);
    const v = valBatches(val, 4, 8);
    expect(v).toHaveLength(3); // 12 windows of 8 in 99 tokens, 4 per batch
    expect([...v[0].tokens.slice(0, 9)]).toEqual([900, 901, 902, 903, 904, 905, 906, 907, 908]);
    expect(v.every((x) => x.targets.every((t) => t < 1000))).toBe(true);
  });

  it('schedules, the unigram baseline and the SVG', () => {
    const req = { lr: 0.1, steps: 10 };
    expect(lrAt({ ...req, schedule: 'constant' }, 7)).toBe(0.1);
    expect(lrAt({ ...req, schedule: 'linear' }, 1)).toBe(0.1);
    expect(lrAt({ ...req, schedule: 'linear' }, 6)).toBeCloseTo(0.05);
    expect(lrAt({ ...req, schedule: 'cosine' }, 6)).toBeCloseTo(0.05);
    expect(unigramEntropy(Int32Array.of(1, 2, 3, 4))).toBeCloseTo(Math.log(4));
    expect(unigramEntropy(Int32Array.of(5, 5, 5))).toBe(0);
    const svg = lossCurveSvg([{ step: 1, loss: 5 }, { step: 2, loss: 4 }], [{ step: 2, loss: 4.5 }], { title: 'a < b', baseline: 3 });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('<polyline');
    expect(svg).toContain('a &lt; b');
    expect(svg.match(/<circle/g)).toHaveLength(2); // the validation point and the legend's
  });

  it('warmup: lr rises linearly to the peak at step N, then the schedule runs over the remaining steps', () => {
    const req = { lr: 0.1, steps: 10, warmup: 4 };
    [0.025, 0.05, 0.075, 0.1].forEach((x, i) => expect(lrAt({ ...req, schedule: 'cosine' }, i + 1)).toBeCloseTo(x, 15));
    expect(lrAt({ ...req, schedule: 'cosine' }, 5)).toBe(0.1); // the schedule's first step
    expect(lrAt({ ...req, schedule: 'linear' }, 8)).toBeCloseTo(0.05); // 3 of the 6 remaining steps done
    expect(lrAt({ ...req, schedule: 'constant' }, 9)).toBe(0.1);
  });

  it('warmup: lr never exceeds the peak, never falls during warmup, and warmup 0 is the schedule without it', () => {
    // The schedules as they were before --warmup existed.
    const old = (r: { lr: number; steps: number; schedule: string }, s: number) => {
      const t = (s - 1) / r.steps;
      return r.schedule === 'linear' ? r.lr * (1 - t) : r.schedule === 'cosine' ? r.lr * 0.5 * (1 + Math.cos(Math.PI * t)) : r.lr;
    };
    const run = fc.record({
      lr: fc.double({ min: 1e-6, max: 10, noNaN: true }),
      steps: fc.integer({ min: 1, max: 500 }),
      schedule: fc.constantFrom('constant' as const, 'linear' as const, 'cosine' as const),
      w: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(run, ({ lr, steps, schedule, w }) => {
        const warmup = Math.floor(w * steps);
        const lrs = Array.from({ length: steps }, (_, i) => lrAt({ lr, steps, schedule, warmup }, i + 1));
        expect(lrs.every((x) => x >= 0 && x <= lr)).toBe(true);
        for (let s = 1; s < warmup; s++) expect(lrs[s]).toBeGreaterThan(lrs[s - 1]);
        if (warmup > 0) expect(lrs[warmup - 1]).toBe(lr);
        for (let s = 1; s <= steps; s++) expect(lrAt({ lr, steps, schedule, warmup: 0 }, s)).toBe(old({ lr, steps, schedule }, s));
      }),
    );
  });
});
