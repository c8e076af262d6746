// --rounding: one step option on every command. Its default (stochastic for bf16 LOMO, nearest
// otherwise) is not written down, so bundles and checkpoints from before it read as before; a
// value that overrides the default is recorded in the manifest's step and reaches the update nodes.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultRounding } from '../compiler/passes/optimizer-step.ts';
import { runIdentity } from '../runtime/train/run-record.ts';
import { run as lomoc } from './support/cli.ts';
import { stepConfigFrom } from '../cli/args.ts';

const manifestOf = async (...args: string[]) => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'lomoc-rounding-')), 'bundle');
  const r = await lomoc('compile', 'models/mlp.ts', '--preset', 'tiny', '--target', 'cpu', '--out', dir, ...args);
  expect(r.stderr).toBe('');
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { step: Record<string, unknown> };
};

describe('--rounding', () => {
  it('defaults: stochastic only for bf16 under an in-backward optimizer without a master copy', () => {
    expect(defaultRounding('bf16', 'lomo', undefined)).toBe('stochastic');
    expect(defaultRounding('bf16', 'sgd', undefined)).toBe('nearest');
    expect(defaultRounding('bf16', 'sgd', false)).toBe('nearest');
    expect(defaultRounding('f16', 'lomo', undefined)).toBe('nearest');
    expect(defaultRounding('f32', 'lomo', undefined)).toBe('nearest');
    expect(defaultRounding(undefined, 'adamw', undefined)).toBe('nearest');
  });

  it('parses into the step config; a bad value is a whole, clear error', () => {
    expect(stepConfigFrom('plan', { rounding: 'stochastic' }).rounding).toBe('stochastic');
    expect(stepConfigFrom('plan', {}).rounding).toBeUndefined();
    let msg = 'no error';
    try { stepConfigFrom('plan', { rounding: 'up' }); } catch (e) { msg = (e as Error).message; }
    expect(msg).toBe("error: lomoc plan: option '--rounding' expects nearest or stochastic, got 'up'");
  });

  it('compile records it only where it overrides the default', async () => {
    expect((await manifestOf('--dtype', 'bf16', '--optimizer', 'lomo')).step.rounding).toBeUndefined();
    expect((await manifestOf('--dtype', 'bf16', '--optimizer', 'lomo', '--rounding', 'stochastic')).step.rounding).toBeUndefined();
    expect((await manifestOf('--dtype', 'bf16', '--optimizer', 'lomo', '--rounding', 'nearest')).step.rounding).toBe('nearest');
  }, 60_000);

  it('the run identity carries it only when given, so older checkpoints still resume', () => {
    const base = { model: 'm', config: {}, optimizer: 'lomo', checkpoint: 'none', lr: 0.1, schedule: 'constant', warmup: 0, weightDecay: 0, data: 'd', tokenizer: 't', seed: 1, steps: 1 };
    expect('rounding' in runIdentity(base)).toBe(false);
    expect(runIdentity({ ...base, rounding: 'nearest' }).rounding).toBe('nearest');
  });
});

describe('--rounding with a bundle', () => {
  it('a bundle fixes it: giving it is an error naming the bundle\'s value', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'lomoc-rounding-')), 'bundle');
    expect((await lomoc('compile', 'models/gpt.ts', '--preset', 'tiny', '--target', 'cpu', '--dtype', 'bf16', '--out', dir)).stderr).toBe('');
    const r = await lomoc('train', dir, '--rounding', 'nearest', '--steps', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: lomoc train: option '--rounding' cannot be given with a bundle: the bundle ${dir} fixes it (compiled with rounding stochastic); compile another bundle to change it`);
  }, 60_000);
});
