// Bundles with loss scaling (--loss-scale) and one-pass clipping (--clip-mode previous): lomoc
// compile records both in the manifest and the program they were compiled into; the loader checks
// the one against the other; a manifest written before the fields existed loads as exact clipping
// without scaling; lomoc train on a bundle takes the bundle's spec; and the page's checkpoints carry
// the scaler state under the same run identity as lomoc train's (no device: a stand-in trainer).
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runIdentity } from '../cli/train-checkpoint.ts';
import { trainRequest, trainSpec } from '../cli/train-request.ts';
import { trainSource } from '../cli/train-source.ts';
import { parseCommandArgs } from '../cli/args.ts';
import type { Io } from '../cli/report.ts';
import { writeBundle } from '../compiler/bundle/write-bundle.ts';
import { compileProgram } from '../compiler/compile-program.ts';
import { kernelTargets } from '../compiler/codegen/wgsl/target.ts';
import type { LossScaleSpec, LossScaleState } from '../contract/loss-scale.ts';
import type { Manifest } from '../contract/manifest.ts';
import gpt from '../models/gpt.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { decodeSafetensors } from '../runtime/checkpoint/safetensors.ts';
import { lossScaleStats, Session, SessionError, type Entry, type Trainer } from '../runtime/page/session.ts';
import { run } from './support/cli.ts';
import { editManifest, rejection } from './support/bundles.ts';

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-scale-'));
const silent: Io = { out: () => {}, err: () => {} };


const spec: LossScaleSpec = { kind: 'dynamic', init: 65536, interval: 2 };
const target = { ...kernelTargets.cpu, half: 'native' as const };
const scaled = compileProgram(gpt, { preset: 'tiny', sets: ['vocab=256'], optimizer: 'lomo', dtype: 'f16', clipNorm: 1, lossScale: spec, target });
const onePass = compileProgram(gpt, { preset: 'tiny', sets: ['vocab=256'], optimizer: 'lomo', clipNorm: 0.5, clipMode: 'previous', target });
const plain = compileProgram(gpt, { preset: 'tiny', sets: ['vocab=256'], optimizer: 'lomo', dtype: 'f16', clipNorm: 1, target });
const baseStep = { optimizer: 'lomo', checkpoint: 'none', clipValue: null, target: 'cpu' } as const;

function bundle(name: string, c: typeof scaled, step: Manifest['step'], edit?: (m: Record<string, any>) => void): string {
  const dir = path.join(root, name);
  writeBundle(dir, c.program, { model: 'gpt', preset: 'tiny', config: c.config, step, plan: c.plan }, { entry: false });
  return edit ? editManifest(dir, edit) : dir;
}
const scaledStep: Manifest['step'] = { ...baseStep, dtype: 'f16', half: 'native', clipNorm: 1, lossScale: spec };
const onePassStep: Manifest['step'] = { ...baseStep, dtype: 'f32', clipNorm: 0.5, clipMode: 'previous' };
const plainStep: Manifest['step'] = { ...baseStep, dtype: 'f16', half: 'native', clipNorm: 1 };


describe('a bundle records its loss scaling and clip mode', () => {
  it('loads back as the very program compiled (the gradient factor output included), with the spec and the mode', async () => {
    const a = await loadBundleDir(bundle('scaled', scaled, scaledStep));
    expect(a.program).toEqual(scaled.program);
    expect(a.program.outputs?.map((s) => s.name)).toEqual(['step.gradFactor']);
    expect(a.manifest.step.lossScale).toEqual(spec);
    const b = await loadBundleDir(bundle('one-pass', onePass, onePassStep));
    expect(b.program).toEqual(onePass.program);
    expect(b.manifest.step.clipMode).toBe('previous');
    expect(b.program.state.map((s) => s.name)).toContain('clip.norm');
  });

  it('a manifest without the fields (written before them) loads: no loss scaling, exact clipping; lomoc train takes it so', async () => {
    const dir = bundle('old', plain, plainStep);
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(Object.keys(m.step)).not.toContain('lossScale');
    expect(Object.keys(m.step)).not.toContain('clipMode');
    expect(Object.keys(m.program)).not.toContain('outputs');
    const { manifest, program } = await loadBundleDir(dir);
    expect(manifest.step.lossScale).toBeUndefined();
    expect(manifest.step.clipMode).toBeUndefined();
    expect(program.outputs).toBeUndefined();
    const src = await trainSource(trainRequest([dir], parseCommandArgs(trainSpec, [dir, '--steps', '1']).values), silent);
    expect(src.step.lossScale).toBeUndefined();
    expect(src.step.clipMode).toBeUndefined();
  });

  it('the loader checks the spec and the mode against the program, naming the field', async () => {
    const cases: [string, string, typeof scaled, Manifest['step'], (m: Record<string, any>) => void][] = [
      ['no-spec', "manifest.json: step.lossScale: missing, but the program was compiled with loss scaling (it reads input 'lossScale' and outputs 'step.gradFactor'): the manifest must say how the scale moves",
        scaled, scaledStep, (m) => delete m.step.lossScale],
      ['spec-unscaled', "manifest.json: step.lossScale: given, but the program was compiled without loss scaling (it reads no input 'lossScale' and outputs no 'step.gradFactor')",
        plain, plainStep, (m) => (m.step.lossScale = spec)],
      ['no-output', "manifest.json: step.lossScale: given, but the program was compiled without loss scaling (it reads input 'lossScale' and outputs no 'step.gradFactor')",
        scaled, scaledStep, (m) => delete m.program.outputs],
      ['f32-scale', 'manifest.json: step.lossScale: loss scaling is for f16 storage, this bundle has dtype f32', onePass, onePassStep, (m) => {
        m.step.lossScale = spec;
        delete m.step.clipMode;
      }],
      ['output-name', "manifest.json: program.outputs.0.name: expected 'step.gradFactor' (the only output a training step reads back), got 'step.other'",
        scaled, scaledStep, (m) => (m.program.outputs[0].name = 'step.other')],
      ['output-shape', "manifest.json: program.outputs.0: 'step.gradFactor' must be an f32 scalar, got f32[1]",
        scaled, scaledStep, (m) => (m.program.outputs[0].shape = [1])],
      ['output-arena', 'manifest.json: program.outputs.0.arena: arena 3 does not exist (the bundle has 1)', scaled, scaledStep, (m) => (m.program.outputs[0].arena = 3)],
      ['bad-kind', "manifest.json: step.lossScale.kind: Invalid discriminator value. Expected 'dynamic' | 'static'", scaled, scaledStep, (m) => (m.step.lossScale = { kind: 'sometimes' })],
      ['bad-interval', 'manifest.json: step.lossScale.interval: Too small: expected number to be >0', scaled, scaledStep, (m) => (m.step.lossScale.interval = 0)],
      ['bad-mode', 'manifest.json: step.clipMode: Invalid option: expected one of "exact"|"previous"', onePass, onePassStep, (m) => (m.step.clipMode = 'twice')],
      ['mode-exact', "manifest.json: step.clipMode: missing (exact), but the program holds 'clip.norm', the previous norm of --clip-mode previous", onePass, onePassStep, (m) => delete m.step.clipMode],
      ['mode-no-norm', "manifest.json: program.state: step.clipMode is 'previous', but the program holds no f32 scalar 'clip.norm' (the previous step's norm)", plain, plainStep, (m) => (m.step.clipMode = 'previous')],
      ['mode-no-clip', "manifest.json: step.clipMode: 'previous' chooses how clipNorm clips, but step.clipNorm is null", onePass, onePassStep, (m) => (m.step.clipNorm = null)],
      ['mode-and-scale', "manifest.json: step.clipMode: 'previous' cannot go with step.lossScale: an overflow must be found in the whole gradient before the first update",
        scaled, scaledStep, (m) => (m.step.clipMode = 'previous')],
    ];
    for (const [name, message, c, step, edit] of cases) expect(await rejection(bundle(name, c, step, edit)), name).toBe(message);
  });
});

describe('lomoc compile and lomoc train on a bundle', () => {
  it('lomoc compile --loss-scale dynamic and --clip-mode previous write bundles that say so; lomoc train on them refuses the options, naming the bundle\'s', async () => {
    const a = path.join(root, 'cli-scaled');
    const r = await run('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--dtype', 'f16', '--clip-norm', '1', '--loss-scale', 'dynamic', '--loss-scale-interval', '2', '--target', 'cpu', '--out', a);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("loss scale  dynamic from 65536 (halved and the step skipped on an overflow, x2 after 2 clean steps): index.js's trainer keeps it, checkpoints store it");
    const m = (await loadBundleDir(a)).manifest;
    expect(m.step.lossScale).toEqual(spec);
    expect(m.step.clipMode).toBeUndefined();
    const dts = readFileSync(path.join(a, 'index.d.ts'), 'utf8');
    expect(dts).toContain('export declare const lossScale: {');
    expect(dts).toContain('readonly lossScale: LossScaleState | null;');
    expect(dts).toContain('restoreLossScale(state: LossScaleState): void;');

    const b = path.join(root, 'cli-one-pass');
    const q = await run('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--clip-norm', '0.5', '--clip-mode', 'previous', '--target', 'cpu', '--out', b);
    expect(q.stderr).toBe('');
    expect(q.stdout).toContain("clip        norm 0.5 by the previous step's norm: one pass, approximate (the norm is state: clip.norm)");
    expect((await loadBundleDir(b)).manifest.step).toMatchObject({ clipMode: 'previous', clipNorm: 0.5 });
    expect(readFileSync(path.join(b, 'index.d.ts'), 'utf8')).toContain('export declare const clipMode: "previous";');

    const cases: [string, string[], string][] = [
      [a, ['--loss-scale', '1024'], `error: lomoc train: option '--loss-scale' cannot be given with a bundle: the bundle ${a} fixes it (compiled with loss-scale dynamic, loss-scale-interval 2); compile another bundle to change it`],
      [a, ['--loss-scale-interval', '9'], `error: lomoc train: option '--loss-scale-interval' cannot be given with a bundle: the bundle ${a} fixes it (compiled with loss-scale dynamic, loss-scale-interval 2); compile another bundle to change it`],
      [b, ['--clip-mode', 'exact'], `error: lomoc train: option '--clip-mode' cannot be given with a bundle: the bundle ${b} fixes it (compiled with clip-mode previous); compile another bundle to change it`],
    ];
    for (const [dir, opts, want] of cases) {
      const t = await run('train', dir, '--steps', '1', ...opts);
      expect(t.stderr.trim(), opts.join(' ')).toBe(want);
      expect(t.code).toBe(1);
    }
  }, 120_000);

  it('lomoc compile: contradictory scaling and clipping options are errors naming them, and nothing is written', async () => {
    const out = path.join(root, 'never');
    const base = ['compile', 'models/gpt.ts', '--preset', 'tiny', '--optimizer', 'lomo', '--target', 'cpu', '--out', out];
    const cases: [string[], string][] = [
      [['--loss-scale', 'dynamic'], 'error: lomoc compile: --loss-scale: loss scaling is for f16 storage (--dtype f16), got --dtype f32 (the default), whose range needs none'],
      [['--loss-scale', 'dynamic', '--dtype', 'f16', '--clip-norm', '1', '--clip-mode', 'previous'],
        'error: --clip-mode previous: loss scaling must find an overflow in the whole gradient before the first update, which a one-pass clip cannot; use --clip-mode exact with --loss-scale'],
      [['--clip-mode', 'previous'], 'error: --clip-mode previous: it chooses how --clip-norm clips; give --clip-norm too'],
    ];
    for (const [opts, want] of cases) {
      const r = await run(...base, ...opts);
      expect(r.stderr.trim(), opts.join(' ')).toBe(want);
      expect(r.code).toBe(1);
      expect(existsSync(out)).toBe(false);
    }
  }, 60_000);

  it('a run on a bundle has the identity of the same run from the model file, so a checkpoint resumes across them', async () => {
    const runArgs = ['--data', 'moby-dick', '--seed', '3', '--lr', '0.05', '--steps', '6'];
    for (const [c, step, opts] of [
      [scaled, scaledStep, ['--dtype', 'f16', '--clip-norm', '1', '--loss-scale', 'dynamic', '--loss-scale-interval', '2']],
      [onePass, onePassStep, ['--clip-norm', '0.5', '--clip-mode', 'previous']],
    ] as const) {
      const dir = bundle(`identity-${step.dtype}`, c, step);
      const fromBundle = trainRequest([dir], parseCommandArgs(trainSpec, [dir, ...runArgs]).values);
      const model = ['models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--device', 'cpu', ...opts, ...runArgs];
      const fromModel = trainRequest(['models/gpt.ts'], parseCommandArgs(trainSpec, model).values);
      const ours = runIdentity(fromBundle, await trainSource(fromBundle, silent));
      expect(ours).toEqual(runIdentity(fromModel, await trainSource(fromModel, silent)));
      expect(ours[step.lossScale ? 'loss-scale' : 'clip-mode']).toBe(step.lossScale ? '{"kind":"dynamic","init":65536,"interval":2}' : 'previous');
    }
  }, 60_000);
});

describe("the page's run of a scaling bundle (session.ts, a stand-in trainer)", () => {
  const tokens = Int32Array.from({ length: 4000 }, (_, i) => (i * 31) % 256);
  const entry: Entry = {
    model: 'gpt', preset: 'tiny', optimizer: 'lomo', config: scaled.config,
    inputs: { tokens: { dtype: 'i32', shape: [2, 8] }, targets: { dtype: 'i32', shape: [2, 8] } },
    params: { w: { dtype: 'f16', shape: [2] } },
    planBytes: 0,
    createTrainer: () => Promise.reject(new Error('unused')),
    createGenerator: () => Promise.reject(new Error('unused')),
  };
  /** A trainer whose step k overflows when k is in `overflows`, moving its state as the runtime's scaler does. */
  const stand = (overflows: readonly number[]) => {
    let state: LossScaleState = { scale: 65536, cleanSteps: 0, skipped: 0 };
    let k = 0;
    let last = false;
    const given: (number | undefined)[] = [];
    const t: Trainer & { given: typeof given } = {
      given,
      async step(_b, hyper) {
        given.push(hyper.lossScale);
        if (hyper.lossScale !== undefined) return 1;
        k++;
        const over = overflows.includes(k);
        state = over ? { scale: state.scale / 2, cleanSteps: 0, skipped: state.skipped + 1 } : { ...state, cleanSteps: state.cleanSteps + 1 };
        last = over;
        return 2;
      },
      readParams: async () => ({ w: Float32Array.of(1, 2) }),
      readState: async () => ({}),
      writeParams: () => {},
      writeState: () => {},
      destroy: () => {},
      deviceBytes: 0,
      adapter: 'none',
      device: {} as GPUDevice,
      get lossScale() {
        return state;
      },
      get skippedLast() {
        return last;
      },
      restoreLossScale(s) {
        state = s;
      },
    };
    return t;
  };
  const runOpts = { lr: 0.05, schedule: 'constant' as const, warmup: 0, weightDecay: 0, steps: 6, evalEvery: 0, seed: 3 };
  const text = { data: 'moby-dick', train: tokens.subarray(0, 3600), val: tokens.subarray(3600), total: 4000 };
  const pageStep = { optimizer: 'lomo', dtype: 'f16', checkpoint: 'none', clipNorm: 1, clipValue: null, lossScale: spec };

  it("checkpoints carry the scaler state under lomoc train's identity; validation gives a scale and leaves the state alone; a resume restores it", async () => {
    const t = stand([1]);
    const s = new Session(entry, pageStep, t, text, 'bytes', { ...runOpts, steps: 3 }, {});
    const skipped: boolean[] = [];
    await s.train({ step: (p) => skipped.push(p.skipped === true), val: () => {} });
    expect(skipped).toEqual([true, false, false]);
    // The last step validates with a given scale of 1: the state is the training steps' alone.
    expect(t.given.at(-1)).toBe(1);
    expect(t.lossScale).toEqual({ scale: 32768, cleanSteps: 2, skipped: 1 });
    const saved = decodeSafetensors(await s.checkpoint());
    expect(JSON.parse(saved.metadata.lossScale)).toEqual({ scale: 32768, cleanSteps: 2, skipped: 1 });
    const req = trainRequest(['b'], parseCommandArgs(trainSpec, ['b', '--data', 'moby-dick', '--seed', '3', '--lr', '0.05', '--steps', '3']).values);
    const src = { name: 'gpt', config: scaled.config, checkpointText: 'none', step: { preset: 'tiny', sets: [], optimizer: 'lomo', dtype: 'f16' as const, clipNorm: 1, lossScale: spec } };
    expect(JSON.parse(saved.metadata.run)).toEqual(runIdentity(req, src));

    const u = stand([]);
    const fresh = new Session(entry, pageStep, u, text, 'bytes', { ...runOpts, steps: 3 }, {});
    await fresh.restore('c.safetensors', await s.checkpoint());
    expect(u.lossScale).toEqual({ scale: 32768, cleanSteps: 2, skipped: 1 });
    expect(fresh.step).toBe(3);
  });

  it("the page's stats line shows the scale and the steps skipped, and the last step's overflow; nothing without a scaler", async () => {
    const t = stand([1, 3]);
    const s = new Session(entry, pageStep, t, text, 'bytes', { ...runOpts, steps: 3 }, {});
    const lines: string[] = [];
    await s.train({ step: () => lines.push(lossScaleStats(t)), val: () => {} });
    expect(lines).toEqual([
      ' · loss scale 32768, 1 step skipped (the last step overflowed in f16: its updates skipped, the scale halved)',
      ' · loss scale 32768, 1 step skipped',
      ' · loss scale 16384, 2 steps skipped (the last step overflowed in f16: its updates skipped, the scale halved)',
    ]);
    expect(lossScaleStats({ lossScale: null, skippedLast: false })).toBe('');
  });

  it('a checkpoint without the scaler state (or a broken one) is refused, naming the field and the option, and changes nothing', async () => {
    const s = new Session(entry, pageStep, stand([]), text, 'bytes', { ...runOpts, steps: 3 }, {});
    await s.train({ step: () => {}, val: () => {} });
    const good = decodeSafetensors(await s.checkpoint());
    const { encodeSafetensors } = await import('../runtime/checkpoint/safetensors.ts');
    const tensors = { w: { shape: [2], data: Float32Array.of(1, 2) } };
    const { lossScale: _gone, ...without } = good.metadata;
    const u = stand([]);
    const fresh = new Session(entry, pageStep, u, text, 'bytes', { ...runOpts, steps: 3 }, {});
    const fails = async (metadata: Record<string, string>) => {
      try {
        await fresh.restore('c.safetensors', encodeSafetensors(tensors, metadata));
      } catch (e) {
        expect(e).toBeInstanceOf(SessionError);
        return (e as Error).message;
      }
      return 'restored';
    };
    expect(await fails(without)).toBe(
      'c.safetensors: __metadata__.lossScale: missing; this bundle uses --loss-scale, and a resume needs the scale and clean-step count its checkpoint stores',
    );
    expect(await fails({ ...good.metadata, lossScale: '{"scale":-1,"cleanSteps":0,"skipped":0}' })).toBe(
      'c.safetensors: __metadata__.lossScale: expected the loss scale state {scale, cleanSteps, skipped}, got "{\\"scale\\":-1,\\"cleanSteps\\":0,\\"skipped\\":0}"',
    );
    expect(fresh.step).toBe(0);
    expect(u.lossScale).toEqual({ scale: 65536, cleanSteps: 0, skipped: 0 });
  });
});
