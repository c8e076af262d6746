// Dynamic loss scaling that recovers: the host's rule (contract/loss-scale.ts), the trainer that
// applies it to a compiled f16 step (the reference executor's: the same code path as WebGPU's but
// for the device), and `lomoc train` around it: options, checkpoint metadata, an exact resume.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { referenceTrainer } from '../cli/reference-trainer.ts';
import { trainBatch } from '../cli/train-data.ts';
import { loadModel } from '../compiler/load-model.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { initialLossScale, lossScaleDefaults, nextLossScale, type LossScaleSpec } from '../contract/loss-scale.ts';
import { loadCheckpoint, saveCheckpoint } from '../runtime/checkpoint/node.ts';
import { toFloat32 } from '../runtime/checkpoint/safetensors.ts';
import { run } from './support/cli.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-scale-'));
const gpt = ['models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256'];

describe('the loss scale rule (GradScaler)', () => {
  it('halves on each overflow, doubles after each run of `interval` clean steps, never otherwise (property)', () =>
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), (overflows, interval) => {
        const spec: LossScaleSpec = { kind: 'dynamic', init: 65536, interval };
        let s = initialLossScale(spec);
        let want = 65536;
        let run = 0;
        for (const o of overflows) {
          s = nextLossScale(spec, s, o);
          run = o ? 0 : run + 1;
          if (o) want /= 2;
          else if (run === interval) [want, run] = [want * 2, 0];
          expect(s.scale).toBe(want);
          expect(s.cleanSteps).toBe(run);
        }
        expect(s.skipped).toBe(overflows.filter((o) => o).length);
      }),
    ));

  it('a fixed scale never moves; overflows are still counted', () => {
    const spec: LossScaleSpec = { kind: 'static', scale: 128 };
    const s = [true, false, false].reduce((acc, o) => nextLossScale(spec, acc, o), initialLossScale(spec));
    expect(s).toEqual({ scale: 128, cleanSteps: 2, skipped: 1 });
    expect(lossScaleDefaults).toMatchObject({ init: 65536, interval: 2000 });
  });
});

describe('a trainer with loss scaling (f16 LOMO with exact clipping, reference executor)', async () => {
  const def = await loadModel('models/gpt.ts');
  const c = compileStep(def, { preset: 'tiny', sets: ['vocab=256'], optimizer: 'lomo', dtype: 'f16', clipNorm: 1, lossScale: true });
  const tokens = Int32Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256);
  const batch = (s: number) => trainBatch(tokens, 2, 8, 1, s);
  const hyper = { lr: 0.05, weightDecay: 0.01 };
  const spec: LossScaleSpec = { kind: 'dynamic', init: 65536, interval: 3 };

  it('an injected overflow (a scale past f16) skips the step: every param bit for bit unchanged, the scale halved', async () => {
    const t = referenceTrainer(c.step, 1, c.plan.peak, spec);
    await t.step(batch(1), { lr: 0, weightDecay: 0, lossScale: 1 }); // params as f16 storage holds them
    t.lossScaler!.restore({ scale: 2 ** 40, cleanSteps: 2, skipped: 0 });
    const before = await t.readParams();
    await t.step(batch(0), hyper);
    expect(t.lossScaler!.lastOverflow).toBe(true);
    expect(t.lossScaler!.state).toEqual({ scale: 2 ** 39, cleanSteps: 0, skipped: 1 });
    const after = await t.readParams();
    for (const [name, v] of Object.entries(before)) expect(Buffer.from(after[name].buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
  });

  it('the scale falls until steps are clean, then grows back after `interval` clean steps', async () => {
    const t = referenceTrainer(c.step, 1, c.plan.peak, spec);
    t.lossScaler!.restore({ scale: 2 ** 20, cleanSteps: 0, skipped: 0 });
    const scales: number[] = [];
    const overflowed: boolean[] = [];
    for (let s = 0; s < 12; s++) {
      await t.step(batch(s), hyper);
      scales.push(t.lossScaler!.state.scale);
      overflowed.push(t.lossScaler!.lastOverflow);
    }
    // The seed is stored as the loss is, in f16: any scale past 65504 overflows. 2^20 halves down to
    // 2^15, the first clean scale; every 3 clean steps it doubles, 65536 overflows and is halved again.
    expect(overflowed).toEqual([true, true, true, true, true, false, false, false, true, false, false, false]);
    expect(scales).toEqual([2 ** 19, 2 ** 18, 2 ** 17, 2 ** 16, 2 ** 15, 2 ** 15, 2 ** 15, 2 ** 16, 2 ** 15, 2 ** 15, 2 ** 15, 2 ** 16]);
  });

  it('a scale given for a step (evaluation) leaves the state alone', async () => {
    const t = referenceTrainer(c.step, 1, c.plan.peak, spec);
    await t.step(batch(0), { lr: 0, weightDecay: 0, lossScale: 1 });
    expect(t.lossScaler!.state).toEqual(initialLossScale(spec));
  });
});

describe('lomoc train --loss-scale', () => {
  it('mistakes: each a whole message naming the option', async () => {
    const cases: [string[], string][] = [
      [['--loss-scale', 'dynamic'], 'error: lomoc train: --loss-scale: loss scaling is for f16 storage (--dtype f16), got --dtype f32 (the default), whose range needs none'],
      [['--loss-scale', 'dynamic', '--dtype', 'bf16'], 'error: lomoc train: --loss-scale: loss scaling is for f16 storage (--dtype f16), got --dtype bf16, whose range needs none'],
      [['--loss-scale-interval', '5', '--dtype', 'f16'], 'error: lomoc train: --loss-scale-interval: it sets how often --loss-scale dynamic grows the scale; give --loss-scale dynamic too'],
      [['--loss-scale', 'often', '--dtype', 'f16'], "error: lomoc train: option '--loss-scale' expects a finite number above 0, got 'often'"],
      [['--clip-mode', 'previous', '--clip-norm', '1', '--loss-scale', 'dynamic', '--dtype', 'f16'],
        'error: --clip-mode previous: loss scaling must find an overflow in the whole gradient before the first update, which a one-pass clip cannot; use --clip-mode exact with --loss-scale'],
      [['--clip-mode', 'sometimes'], "error: lomoc train: option '--clip-mode' expects exact or previous, got 'sometimes'"],
    ];
    for (const [args, want] of cases) {
      const r = await run('train', ...gpt, '--steps', '1', '--device', 'cpu', ...args);
      expect(r.stderr.trim(), args.join(' ')).toBe(want);
      expect(r.code).toBe(1);
    }
  });

  it('resume is exact: 3 steps, save, resume 3 more == 6 steps, bit for bit (params, state, loss scale)', async () => {
    const [a, b] = [tmp(), tmp()];
    const opts = [...gpt, '--seed', '3', '--device', 'cpu', '--dtype', 'f16', '--loss-scale', 'dynamic', '--loss-scale-interval', '2', '--clip-norm', '1', '--lr', '0.05', '--json'];
    const whole = await run('train', ...opts, '--steps', '6', '--save', a);
    expect(whole.stderr).toBe('');
    const first = await run('train', ...opts, '--steps', '6', '--stop-at', '3', '--save', b);
    expect(first.stderr).toBe('');
    const rest = await run('train', ...opts, '--steps', '6', '--resume', b, '--save', b);
    expect(rest.stderr).toBe('');
    const [x, y] = [loadCheckpoint(join(a, 'checkpoint.safetensors')), loadCheckpoint(join(b, 'checkpoint.safetensors'))];
    expect(Object.keys(y.tensors).sort()).toEqual(Object.keys(x.tensors).sort());
    for (const name of Object.keys(x.tensors)) expect(Buffer.from(y.tensors[name].data).equals(Buffer.from(x.tensors[name].data)), name).toBe(true);
    expect(y.metadata.lossScale).toBe(x.metadata.lossScale);
    expect(JSON.parse(x.metadata.lossScale)).toMatchObject({ scale: expect.any(Number), cleanSteps: expect.any(Number) });
    // The scale moved in this run: 65536 overflows the f16 seed, so the first step is skipped.
    expect(JSON.parse(x.metadata.lossScale).skipped).toBeGreaterThan(0);

    // A checkpoint whose scaler state is missing does not resume.
    const { lossScale: _gone, ...rest2 } = y.metadata;
    saveCheckpoint(join(b, 'checkpoint.safetensors'), Object.fromEntries(Object.entries(y.tensors).map(([k, t]) => [k, { shape: t.shape, data: toFloat32(k, t) }])), rest2);
    const missing = await run('train', ...opts, '--steps', '6', '--resume', b);
    expect(missing.stderr.trim()).toBe(
      `error: lomoc train: --resume: ${join(b, 'checkpoint.safetensors')}: __metadata__.lossScale: missing; this run uses --loss-scale, and a resume needs the scale and clean-step count its checkpoint stores`,
    );
  }, 120_000);
});
