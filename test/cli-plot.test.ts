// `lomoc plot`: several train logs on one SVG, labeled from each log's start line, with --concat
// placing a fine-tune after the run whose checkpoint it began from; bad logs get whole messages.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lossChartSvg } from '../cli/loss-svg.ts';
import { concatOffsets, readLog } from '../cli/plot.ts';
import { run } from './support/cli.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-plot-'));
const jsonl = (entries: object[]) => entries.map((e) => JSON.stringify(e)).join('\n') + '\n';

/** A log as `lomoc train --save DIR` writes it. */
function writeRun(dir: string, o: { optimizer: string; data: string; steps: number; bytes: number; init?: string; clipNorm?: number; extra?: object; lossAt: (s: number) => number }): string {
  const ckpt = join(dir, 'checkpoint.safetensors');
  const entries: object[] = [
    { event: 'start', model: 'gpt', preset: 'small', optimizer: o.optimizer, lr: 0.1, schedule: 'cosine', warmup: 0, data: o.data, tokenizer: 'bytes', steps: o.steps, unigramEntropy: 3.07, deviceBytes: o.bytes - 16, ...(o.init ? { init: o.init } : {}), ...(o.clipNorm ? { clipNorm: o.clipNorm } : {}), ...o.extra },
  ];
  for (let s = 1; s <= o.steps; s++) entries.push({ step: s, loss: o.lossAt(s), lr: 0.1, ms: 10, tokensPerSecond: 100, deviceBytes: o.bytes });
  entries.push({ step: o.steps, valLoss: o.lossAt(o.steps) + 0.05 }, { event: 'checkpoint', step: o.steps, file: ckpt }, { event: 'end', step: o.steps, deviceBytes: o.bytes });
  const file = join(dir, 'log.jsonl');
  writeFileSync(file, jsonl(entries));
  return file;
}

describe('lomoc plot', () => {
  it('draws each run labeled with its optimizer, data and peak device memory; --concat puts a fine-tune after its pretraining', async () => {
    const [a, b] = [tmp(), tmp()];
    const pre = writeRun(a, { optimizer: 'adamw', data: 'moby-dick', steps: 4, bytes: 46_957_060, lossAt: (s) => 5 - s / 2 });
    const fine = writeRun(b, { optimizer: 'lomo', data: 'sotu', steps: 3, bytes: 40_215_556, init: join(a, 'checkpoint.safetensors'), clipNorm: 1, lossAt: (s) => 3 - s / 10 });
    const out = join(tmp(), 'sub', 'both.svg');
    const r = await run('plot', pre, fine, '--concat', '--out', out);
    expect(r).toEqual({ code: 0, stdout: `wrote ${out}: ${pre} (4 steps), ${fine} (3 steps, from step 4)`, stderr: '' });
    const svg = readFileSync(out, 'utf8');
    expect(svg).toContain('adamw on moby-dick (bytes), lr 0.1 cosine; peak 44.78 MiB on device');
    expect(svg).toContain(`lomo on sotu (bytes), lr 0.1 cosine, clip-norm 1, from ${basename(a)}/checkpoint.safetensors; peak 38.35 MiB on device`);
    expect(svg).toContain('gpt small: loss');
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg.match(/stroke-dasharray="6 4"/g)).toHaveLength(2); // each run's unigram entropy
    // The fine-tune's last point is at step 4 + 3, the right end of the axis.
    expect(svg).toContain('>7</text>');
    expect(concatOffsets([readLog(pre), readLog(fine)])).toEqual([0, 4]);
    expect(concatOffsets([readLog(fine), readLog(pre)])).toEqual([4, 0]);

    const apart = await run('plot', pre, fine, '--out', out, '--title', 'a & b');
    expect(apart.stdout).toBe(`wrote ${out}: ${pre} (4 steps), ${fine} (3 steps)`);
    expect(readFileSync(out, 'utf8')).toContain('a &amp; b');
  });

  it('a 16-bit run is labeled with its dtype and rounding; a log from before rounding was written, with its dtype alone', async () => {
    const runs = [{ dtype: 'bf16', rounding: 'stochastic' }, { dtype: 'bf16', rounding: 'nearest' }, { dtype: 'f16' }].map((extra) =>
      writeRun(tmp(), { optimizer: 'lomo', data: 'moby-dick', steps: 2, bytes: 20_928_516, extra, lossAt: (s) => 4 - s }));
    const out = join(tmp(), 'sr.svg');
    expect((await run('plot', ...runs, '--out', out)).code).toBe(0);
    const svg = readFileSync(out, 'utf8');
    for (const label of ['bf16 stochastic rounding', 'bf16 round to nearest', 'f16; peak'])
      expect(svg).toContain(`lomo on moby-dick (bytes), lr 0.1 cosine, ${label}`);
  });

  it('a resumed log keeps the last entry of each step; a log from before the start line is labeled by its file', () => {
    const dir = tmp();
    const file = join(dir, 'old.jsonl');
    writeFileSync(file, jsonl([{ step: 1, loss: 5 }, { step: 2, loss: 4.5 }, { step: 2, loss: 4 }, { step: 2, valLoss: 4.2 }, { event: 'checkpoint', step: 2, file: 'x.safetensors' }]));
    const r = readLog(file);
    expect(r.train).toEqual([{ step: 1, loss: 5 }, { step: 2, loss: 4 }]);
    expect(r.val).toEqual([{ step: 2, loss: 4.2 }]);
    expect(r.peakDeviceBytes).toBeUndefined();
    const svg = lossChartSvg([{ label: file, train: r.train, val: r.val }]);
    expect(svg).toContain(`>${file}</text>`);
  });

  it('bad input: one whole message each, exit 1', async () => {
    const dir = tmp();
    const [garbage, empty, noSteps] = ['garbage.jsonl', 'empty.jsonl', 'nosteps.jsonl'].map((f) => join(dir, f));
    writeFileSync(garbage, '{"step":1,"loss":5}\nStep 2: loss 4.5 and a long line of text after it\n');
    writeFileSync(empty, '');
    writeFileSync(noSteps, jsonl([{ event: 'start', optimizer: 'lomo' }]));
    const orphanLog = writeRun(mkdtempSync(join(dir, 'o')), { optimizer: 'lomo', data: 'sotu', steps: 2, bytes: 1, init: '/nowhere/checkpoint.safetensors', lossAt: () => 3 });
    const out = join(dir, 'x.svg');
    const cases: [string[], string][] = [
      [[join(dir, 'nope.jsonl'), '--out', out], `error: lomoc plot: ${join(dir, 'nope.jsonl')}: no such file`],
      [[dir, '--out', out], `error: lomoc plot: ${dir}: is a folder, expected a log file`],
      [[garbage, '--out', out], `${garbage}:2:1: error: lomoc plot: expected one JSON object per line (a log written by lomoc train), got 'Step 2: loss 4.5 and a long line of text...'`],
      [[empty, '--out', out], `error: lomoc plot: ${empty} holds no training steps (expected a log written by lomoc train --log)`],
      [[noSteps, '--out', out], `error: lomoc plot: ${noSteps} holds no training steps (expected a log written by lomoc train --log)`],
      [[orphanLog, '--concat', '--out', out], `error: lomoc plot: --concat: ${orphanLog} began from /nowhere/checkpoint.safetensors, which none of the other logs wrote; give the log of the run that saved it, or leave out --concat`],
      [[empty], "error: lomoc plot: option '--out FILE' is required"],
      [['--out', out], "error: lomoc plot: expected <log.jsonl>..., got nothing; run 'lomoc help plot' for its options"],
    ];
    for (const [argv, message] of cases) expect(await run('plot', ...argv), argv.join(' ')).toEqual({ code: 1, stdout: '', stderr: message });
  });

  it('help shows the repeated argument and the options', async () => {
    const r = await run('help', 'plot');
    expect(r.stdout).toContain('usage: lomoc plot <log.jsonl>... [options]');
    for (const opt of ['--out FILE', '--title T', '--concat']) expect(r.stdout).toContain(opt);
  });
});
