// Bundles with loss scaling and one-pass clipping on WebGPU: through the bundle's own index.js an
// overflow (65536 overflows the f16 loss seed; then one injected with a scale of 2^40) skips the
// step, leaves every param bit for bit and halves the scale; `lomoc train` on a --clip-mode previous
// bundle trains the same losses and params as `lomoc train` on the model file with the same
// options; a run resumes across a bundle and the model file, both ways, bit for bit; and the page's
// session on the bundle's index.js (in Node: the page's code, without a browser) keeps the scale in
// its checkpoints, which resume in lomoc train and back.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundleDir } from '../../runtime/bundle/node.ts';
import { loadCheckpoint, saveCheckpoint } from '../../runtime/checkpoint/node.ts';
import { toFloat32 } from '../../runtime/checkpoint/safetensors.ts';
import { dataInputs } from '../../contract/program.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { acquireDevice } from '../../runtime/webgpu/node.ts';
import { Session, type Entry, type Trainer as PageTrainer } from '../../runtime/page/session.ts';
import { tokensOf } from '../../runtime/page/text.ts';
import { loadText } from '../../cli/train-data.ts';
import { run } from '../support/cli.ts';


const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-bundle-scale-'));
const model = ['models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--target', 'cpu'];
// lomoc train on lavapipe stores f16 natively (the adapter offers shader-f16): the bundle does too.
const scaled = ['--dtype', 'f16', '--clip-norm', '1', '--loss-scale', 'dynamic', '--loss-scale-interval', '2'];
const onePass = ['--clip-norm', '0.5', '--clip-mode', 'previous'];
const runArgs = ['--data', 'moby-dick', '--seed', '3', '--lr', '0.05', '--steps', '6', '--json'];
const root = tmp();
const scaledDir = join(root, 'scaled');
const onePassDir = join(root, 'one-pass');

beforeAll(async () => {
  for (const [dir, opts] of [[scaledDir, [...scaled, '--half', 'native']], [onePassDir, onePass]] as const) {
    const r = await run('compile', ...model, ...opts, '--out', dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
}, 300_000);

/** Trains (`what`: the model's options, or a bundle folder) and returns its checkpoint and losses. */
async function train(what: readonly string[], ...more: string[]) {
  const r = await run('train', ...what, ...runArgs, ...more);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { losses: { step: number; loss: number }[] }).losses;
}

const bitsEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Two checkpoints hold the same tensors bit for bit, the same losses and the same loss scale state. */
function sameCheckpoint(a: string, b: string) {
  const [x, y] = [loadCheckpoint(join(a, 'checkpoint.safetensors')), loadCheckpoint(join(b, 'checkpoint.safetensors'))];
  expect(Object.keys(y.tensors).sort()).toEqual(Object.keys(x.tensors).sort());
  for (const [name, t] of Object.entries(x.tensors)) expect(Buffer.from(y.tensors[name].data).equals(Buffer.from(t.data)), name).toBe(true);
  expect(JSON.parse(y.metadata.losses)).toEqual(JSON.parse(x.metadata.losses));
  expect(y.metadata.lossScale).toBe(x.metadata.lossScale);
  return x;
}

describe("a loss-scaling bundle's index.js", () => {
  it('an overflow skips the step: every param bit for bit, the scale halved; a clean step moves them; a given scale leaves the state', async () => {
    const { program } = await loadBundleDir(scaledDir);
    const entry = await import(pathToFileURL(join(scaledDir, 'node.js')).href);
    expect(entry.lossScale).toEqual({ kind: 'dynamic', init: 65536, interval: 2 });
    const acq = await acquireDevice(program);
    try {
      const t = await entry.createTrainer({ device: acq.device, seed: 3 });
      const batch = (i: number) => randomBatch(dataInputs(program), { tokens: 256, targets: 256 }, i);
      const hyper = { lr: 0.05, weightDecay: 0.01 };
      const unchanged = async (step: () => Promise<unknown>) => {
        const before: Record<string, Float32Array> = await t.readParams();
        await step();
        const after: Record<string, Float32Array> = await t.readParams();
        return Object.keys(before).filter((k) => !bitsEqual(before[k], after[k]));
      };
      expect(t.lossScale).toEqual({ scale: 65536, cleanSteps: 0, skipped: 0 });
      // 65536 is past f16's largest (65504): the seed overflows, whatever the batch.
      expect(await unchanged(() => t.step(batch(1), hyper))).toEqual([]);
      expect([t.skippedLast, t.lossScale]).toEqual([true, { scale: 32768, cleanSteps: 0, skipped: 1 }]);
      expect((await unchanged(() => t.step(batch(2), hyper))).length).toBeGreaterThan(0);
      expect([t.skippedLast, t.lossScale]).toEqual([false, { scale: 32768, cleanSteps: 1, skipped: 1 }]);
      // Injected, as lomoc train's reference test does: a scale no gradient survives.
      t.restoreLossScale({ scale: 2 ** 40, cleanSteps: 1, skipped: 1 });
      expect(await unchanged(() => t.step(batch(3), hyper))).toEqual([]);
      expect([t.skippedLast, t.lossScale]).toEqual([true, { scale: 2 ** 39, cleanSteps: 0, skipped: 2 }]);
      // Validation gives its scale: lr 0 moves nothing, and the scaler's state stays.
      const loss = await t.step(batch(4), { lr: 0, weightDecay: 0, lossScale: 1 });
      expect(Number.isFinite(loss)).toBe(true);
      expect(t.lossScale).toEqual({ scale: 2 ** 39, cleanSteps: 0, skipped: 2 });
      expect(() => t.restoreLossScale({ scale: 0, cleanSteps: 0, skipped: 0 })).toThrow('restoreLossScale: expected { scale > 0, cleanSteps, skipped } (whole numbers), got {"scale":0,"cleanSteps":0,"skipped":0}');
      t.destroy();
    } finally {
      acq.device.destroy();
    }
  }, 300_000);
});

describe('lomoc train: a bundle and the model file', () => {
  it('--loss-scale dynamic: a run resumes across them both ways, bit for bit; a checkpoint without the scaler state is refused', async () => {
    const straight = tmp();
    await train([...model, ...scaled], '--save', straight);
    const [a, b] = [tmp(), tmp()];
    await train([...model, ...scaled], '--save', a, '--stop-at', '3');
    await train([scaledDir], '--save', a, '--resume', a);
    const x = sameCheckpoint(straight, a);
    // Steps 1 and 4 overflow at 65536 (the scale doubles after 2 clean steps).
    expect(JSON.parse(x.metadata.lossScale)).toEqual({ scale: 65536, cleanSteps: 0, skipped: 2 });
    await train([scaledDir], '--save', b, '--stop-at', '3');
    const half = loadCheckpoint(join(b, 'checkpoint.safetensors'));
    expect(JSON.parse(half.metadata.lossScale)).toEqual({ scale: 65536, cleanSteps: 0, skipped: 1 }); // 32768 after step 1, doubled after 2 and 3
    const c = tmp();
    copyFileSync(join(b, 'checkpoint.safetensors'), join(c, 'checkpoint.safetensors'));
    await train([...model, ...scaled], '--save', b, '--resume', b);
    sameCheckpoint(straight, b);

    const { lossScale: _gone, ...rest } = half.metadata;
    const file = join(c, 'checkpoint.safetensors');
    saveCheckpoint(file, Object.fromEntries(Object.entries(half.tensors).map(([k, t]) => [k, { shape: t.shape, data: toFloat32(k, t) }])), rest);
    const r = await run('train', scaledDir, ...runArgs, '--resume', c);
    expect(r.stderr.trim()).toBe(
      `error: lomoc train: --resume: ${file}: __metadata__.lossScale: missing; this run uses --loss-scale, and a resume needs the scale and clean-step count its checkpoint stores`,
    );
    expect(r.code).toBe(1);
  }, 600_000);

  it('--clip-mode previous: the bundle trains the same losses and params as the model file, and a run resumes across them, bit for bit', async () => {
    const [fromModel, fromBundle] = [tmp(), tmp()];
    const m = await train([...model, ...onePass], '--save', fromModel);
    const b = await train([onePassDir], '--save', fromBundle);
    expect(b).toEqual(m);
    const x = sameCheckpoint(fromModel, fromBundle);
    expect(toFloat32('optimizer.clip.norm', x.tensors['optimizer.clip.norm'])[0]).toBeGreaterThan(0);
    const c = tmp();
    await train([onePassDir], '--save', c, '--stop-at', '3');
    await train([...model, ...onePass], '--save', c, '--resume', c);
    sameCheckpoint(fromModel, c);
  }, 600_000);
});

describe("the page's session on a loss-scaling bundle's index.js (Node, no browser)", () => {
  it("its checkpoint resumes in lomoc train, and lomoc train's in it, bit for bit", async () => {
    const straight = tmp();
    await train([scaledDir], '--save', straight);
    const { program } = await loadBundleDir(scaledDir);
    const entry = (await import(pathToFileURL(join(scaledDir, 'node.js')).href)) as Entry & { createTrainer(o: { device: GPUDevice; seed: number }): Promise<PageTrainer> };
    const tokens = await tokensOf('moby-dick', loadText('moby-dick'), 'bytes', 8);
    const runOpts = { lr: 0.05, schedule: 'constant' as const, warmup: 0, weightDecay: 0, steps: 6, evalEvery: 0, seed: 3 };
    const manifest = JSON.parse(readFileSync(join(scaledDir, 'manifest.json'), 'utf8'));
    const shapes = Object.fromEntries(program.state.map((s) => [s.name, s.shape]));
    const acq = await acquireDevice(program);
    try {
      const session = async () => new Session(entry, manifest.step, await entry.createTrainer({ device: acq.device, seed: 3 }), tokens, 'bytes', runOpts, shapes);
      // The page trains 3 steps and saves; lomoc train resumes to 6.
      const page = await session();
      await page.train({ step: () => {}, val: () => {}, after: async (s) => (s === 3 ? page.pause() : undefined) });
      expect([page.step, page.trainer.lossScale]).toEqual([3, { scale: 65536, cleanSteps: 0, skipped: 1 }]);
      const a = tmp();
      writeFileSync(join(a, 'checkpoint.safetensors'), await page.checkpoint());
      page.trainer.destroy();
      await train([scaledDir], '--save', a, '--resume', a);
      sameCheckpoint(straight, a);
      // lomoc train stops at 3; the page loads its checkpoint and trains on to 6.
      const b = tmp();
      await train([scaledDir], '--save', b, '--stop-at', '3');
      const back = await session();
      await back.restore('checkpoint.safetensors', readFileSync(join(b, 'checkpoint.safetensors')));
      expect(back.trainer.lossScale).toEqual({ scale: 65536, cleanSteps: 0, skipped: 1 });
      await back.train({ step: () => {}, val: () => {} });
      writeFileSync(join(b, 'checkpoint.safetensors'), await back.checkpoint());
      back.trainer.destroy();
      sameCheckpoint(straight, b);
    } finally {
      acq.device.destroy();
    }
  }, 600_000);
});
