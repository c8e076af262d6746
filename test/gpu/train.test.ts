// `lomoc train` on WebGPU: resuming equals never stopping (losses and every saved tensor, bit for
// bit, with AdamW's moments and validation in between), and --init's reports.
import { mkdtempSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { loadCheckpoint, saveCheckpoint } from '../../runtime/checkpoint/node.ts';
import { toFloat32, type TensorInput } from '../../runtime/checkpoint/safetensors.ts';
import { run } from '../support/cli.ts';


const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-train-'));
const gpt = ['train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--data', 'moby-dick', '--seed', '3'];

describe('lomoc train on WebGPU', () => {
  for (const optimizer of ['adamw', 'lomo']) {
    it(`${optimizer}: 6 steps straight (2 of warmup) equal 3 steps, a checkpoint, and 3 resumed steps, bit for bit`, async () => {
      const opts = [...gpt, '--optimizer', optimizer, '--lr', '0.01', '--lr-schedule', 'cosine', '--warmup', '2', '--weight-decay', '0.01', '--steps', '6', '--eval-every', '2', '--json'];
      const a = tmp();
      const straight = await run(...opts, '--save', a);
      expect(straight.stderr).toBe('');
      const b = tmp();
      const first = await run(...opts, '--save', b, '--stop-at', '3');
      expect(first.stderr).toBe('');
      expect(loadCheckpoint(join(b, 'checkpoint.safetensors')).metadata.step).toBe('3');
      const resumed = await run(...opts, '--save', b, '--resume', b);
      expect(resumed.stderr).toBe('');
      const losses = (r: { stdout: string }) => (JSON.parse(r.stdout).losses as { step: number; loss: number }[]).map((p) => p.loss);
      expect(losses(straight)).toHaveLength(6);
      expect([...losses(first), ...losses(resumed)]).toEqual(losses(straight));
      expect(losses(straight)[5]).toBeLessThan(losses(straight)[0]);
      const x = loadCheckpoint(join(a, 'checkpoint.safetensors'));
      const y = loadCheckpoint(join(b, 'checkpoint.safetensors'));
      expect(Object.keys(y.tensors).sort()).toEqual(Object.keys(x.tensors).sort());
      if (optimizer === 'adamw') expect(Object.keys(x.tensors).some((k) => k.startsWith('optimizer.'))).toBe(true);
      for (const [name, t] of Object.entries(x.tensors)) expect(Buffer.from(y.tensors[name].data).equals(Buffer.from(t.data)), name).toBe(true);
      expect(y.metadata.step).toBe('6');
      expect(JSON.parse(y.metadata.losses)).toEqual(JSON.parse(x.metadata.losses));
      // The log holds every step once per run that ran it, and the plot exists.
      const log = readFileSync(join(b, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(log.filter((e) => e.loss !== undefined).map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(readFileSync(join(b, 'loss.svg'), 'utf8')).toContain('<polyline');
    });
  }

  it('a bundle from lomoc compile trains identically to the model file, and its checkpoints carry the same run identity', async () => {
    const bundle = join(tmp(), 'gpt-tiny');
    const step = ['--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'adamw'];
    expect((await run('compile', 'models/gpt.ts', ...step, '--out', bundle)).code).toBe(0);
    const opts = ['--data', 'moby-dick', '--seed', '3', '--lr', '0.01', '--steps', '3', '--json'];
    const [a, b] = [tmp(), tmp()];
    const fromBundle = await run('train', bundle, ...opts, '--save', a);
    expect(fromBundle.stderr).toBe('');
    const fromModel = await run('train', 'models/gpt.ts', ...step, ...opts, '--save', b);
    expect(fromModel.stderr).toBe('');
    const losses = (r: { stdout: string }) => (JSON.parse(r.stdout).losses as { step: number; loss: number }[]).map((p) => p.loss);
    expect(losses(fromBundle)).toHaveLength(3);
    expect(losses(fromBundle)).toEqual(losses(fromModel));
    const [x, y] = [a, b].map((d) => loadCheckpoint(join(d, 'checkpoint.safetensors')).metadata);
    expect(JSON.parse(x.run)).toEqual(JSON.parse(y.run));
    expect(JSON.parse(x.compile)).toMatchObject({ optimizer: 'adamw', checkpoint: 'none', bundle });
  });

  it('--device cpu (the reference executor) trains to the losses WebGPU gives; --checkpoint is one record from a bundle or the model file', async () => {
    const opts = [...gpt, '--optimizer', 'adamw', '--steps', '3', '--eval-every', '3', '--json'];
    const gpu = await run(...opts);
    expect(gpu.stderr).toBe('');
    const cpu = await run(...opts, '--device', 'cpu');
    expect(cpu.stderr).toBe('');
    const [g, c] = [gpu, cpu].map((r) => JSON.parse(r.stdout));
    expect(g.adapter).toMatch(/; kernel target (cpu \(auto: software adapter(?:; subgroup reductions)?\); tuning off \(--tune auto: software adapter; give --tune 60s to tune\)|gpu \(auto: hardware adapter(?:; subgroup reductions)?\); tuned \d+ matmul shapes in .+)$/);
    expect(c.adapter).toBe('cpu: reference executor (f32, one node at a time)');
    expect(c.losses.map((p: { step: number }) => p.step)).toEqual([1, 2, 3]);
    for (const [i, p] of (g.losses as { loss: number }[]).entries()) expect(Math.abs(p.loss - c.losses[i].loss), `step ${i + 1}`).toBeLessThan(1e-4);
    expect(Math.abs(g.val[0].loss - c.val[0].loss)).toBeLessThan(1e-4);

    // A run from a bundle and one from the model file record the same checkpoint text.
    const bundle = join(tmp(), 'gpt-blocks');
    const step = ['--preset', 'tiny', '--set', 'vocab=256', '--checkpoint', 'blocks'];
    expect((await run('compile', 'models/gpt.ts', ...step, '--out', bundle)).code).toBe(0);
    const [a, b] = [tmp(), tmp()];
    expect((await run('train', bundle, '--steps', '1', '--save', a, '--json')).stderr).toBe('');
    expect((await run('train', 'models/gpt.ts', ...step, '--steps', '1', '--save', b, '--json')).stderr).toBe('');
    const [x, y] = [a, b].map((d) => loadCheckpoint(join(d, 'checkpoint.safetensors')).metadata);
    expect(JSON.parse(x.run)).toEqual(JSON.parse(y.run));
    expect(JSON.parse(x.run).checkpoint).toBe('blocks');
    expect(JSON.parse(x.compile)).toMatchObject({ checkpoint: 'blocks', checkpointDetail: '2 blocks' });
    expect(JSON.parse(y.compile)).toMatchObject({ checkpoint: 'blocks', checkpointDetail: '2 blocks' });
  });

  it('--init loads weights by name: warnings for missing and unexpected tensors, an error for mis-shaped ones', async () => {
    const a = tmp();
    expect((await run(...gpt, '--steps', '2', '--save', a, '--json')).code).toBe(0);
    const file = join(a, 'checkpoint.safetensors');
    const ok = await run(...gpt, '--steps', '1', '--init', file);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/^init {8}(\d+) of \1 params from /m);

    const src = loadCheckpoint(file);
    const tensors: Record<string, TensorInput> = {};
    for (const [n, t] of Object.entries(src.tensors)) if (n !== 'wpe') tensors[n] = { shape: t.shape, data: toFloat32(n, t) };
    tensors['extra.w'] = { shape: [2], data: Float32Array.of(1, 2) };
    const partial = join(a, 'partial.safetensors');
    saveCheckpoint(partial, tensors);
    const warned = await run(...gpt, '--steps', '1', '--init', partial);
    expect(warned.code).toBe(0);
    expect(warned.stderr).toBe(
      [
        `warning: --init ${partial}: 1 param not in the file keep their initial values: wpe`,
        `warning: --init ${partial}: 1 tensor in the file match no param and are ignored: extra.w`,
      ].join('\n'),
    );

    const wrong = await run('train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--set', 'width=32', '--steps', '1', '--init', file);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(new RegExp(`^error: lomoc train: --init ${file}: \\d+ mis-shaped tensors: 'wte' is \\[256, 16\\] in the file, the model's is \\[256, 32\\]; `));
  });

  it('on a terminal: the live bar instead of step lines, validation above it, the summary last; the logs plot as one timeline', async () => {
    const chunks: string[] = [];
    const tty = Object.assign(new Writable({ write: (c, _e, done) => (chunks.push(String(c)), done()) }), { isTTY: true, columns: 120 });
    const out: string[] = [];
    const a = tmp();
    const code = await main([...gpt, '--optimizer', 'adamw', '--steps', '3', '--warmup', '2', '--eval-every', '2', '--save', a], { out: (t) => out.push(t), err: () => {}, tty });
    expect(code).toBe(0);
    expect(out.filter((l) => /^step +\d+\/\d+/.test(l))).toEqual([]);
    expect(out).toContain('step        adamw, lr 0.01 (constant, warmup 2), checkpoint none');
    expect(out[out.length - 1]).toMatch(/^\n3 steps, [\d,]+ tokens\/s; wrote checkpoint /);
    const screen = chunks.join('').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(screen).toMatch(/validation loss \d\.\d{4} at step 2 \(unigram entropy \d\.\d{4}\)\n/);
    expect(screen).toMatch(/step 3\/3 \[=+\] ETA \S+ \| loss \d\.\d{4} \| [\d,]+ tok\/s \| [\d.]+ (KiB|MiB)/);
    // The log starts with what plot labels the run with and records the device memory.
    const log = readFileSync(join(a, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log[0]).toMatchObject({ event: 'start', optimizer: 'adamw', data: 'moby-dick', warmup: 2 });
    expect(log[log.length - 1]).toMatchObject({ event: 'end', step: 3 });
    expect(log.filter((e) => e.loss !== undefined).every((e) => e.deviceBytes > 0)).toBe(true);
    expect(log.filter((e) => e.loss !== undefined).map((e) => e.lr)).toEqual([0.005, 0.01, 0.01]);

    const b = tmp();
    const fine = await run('train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--seed', '3', '--optimizer', 'lomo', '--data', 'sotu', '--steps', '2', '--init', join(a, 'checkpoint.safetensors'), '--save', b);
    expect(fine.code).toBe(0);
    const svg = join(b, 'both.svg');
    const plotted = await run('plot', join(a, 'log.jsonl'), join(b, 'log.jsonl'), '--concat', '--out', svg);
    expect(plotted.stdout).toBe(`wrote ${svg}: ${join(a, 'log.jsonl')} (3 steps), ${join(b, 'log.jsonl')} (2 steps, from step 3)`);
    expect(readFileSync(svg, 'utf8')).toMatch(/lomo on sotu \(bytes\), lr 0\.01 constant, from .*; peak [\d.]+ (KiB|MiB) on device/);

    // A new run saved to the same folder starts the log anew: one run per log, never two mixed.
    const again = await run('train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--data', 'sotu', '--steps', '1', '--save', b);
    expect(again.code).toBe(0);
    const relog = readFileSync(join(b, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(relog.filter((e) => e.event === 'start')).toHaveLength(1);
    expect(relog.filter((e) => e.loss !== undefined).map((e) => e.step)).toEqual([1]);
  });
});
