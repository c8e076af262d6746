// Bundles and subgroups: `lomoc compile` uses none unless --subgroups asks; then the manifest
// records `step.subgroups`, the program asks for the feature and its reductions call subgroup
// operations; a manifest whose record disagrees with its features is rejected naming the field;
// and a program compiled with subgroups is refused on an adapter without the feature, saying how
// to recompile.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { acquireFrom } from '../runtime/webgpu/device.ts';
import { editManifest, manifestOf, rejection, type ManifestJson } from './support/bundles.ts';

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-subgroups-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function compile(name: string, ...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const dir = path.join(root, name);
  const code = await main(['compile', 'models/mlp.ts', '--target', 'cpu', ...args, '--out', dir], { out: (t: string) => out.push(t), err: (t: string) => err.push(t) });
  return { code, dir, out, err };
}

const kernelsOf = (dir: string) => readdirSync(path.join(dir, 'kernels')).map((f) => readFileSync(path.join(dir, 'kernels', f), 'utf8'));

// Each compile of models/mlp.ts takes seconds alone, far more on a loaded machine.
const slow = 120_000;

describe('lomoc compile --subgroups', () => {
  it('default: no subgroups, recorded as nothing; --subgroups: recorded, asked for, used by the reductions; both load', async () => {
    const plain = await compile('plain');
    expect(plain.code).toBe(0);
    expect('subgroups' in manifestOf(plain.dir).step).toBe(false);
    expect(manifestOf(plain.dir).program.features).toEqual([]);
    expect(kernelsOf(plain.dir).some((k) => k.includes('subgroup'))).toBe(false);
    expect(plain.out.some((l) => l.startsWith('subgroups'))).toBe(false);

    const sg = await compile('sg', '--subgroups');
    expect([sg.code, sg.err]).toEqual([0, []]);
    const m = manifestOf(sg.dir);
    expect(m.step.subgroups).toBe(true);
    expect(m.program.features).toEqual(['subgroups']);
    const using = kernelsOf(sg.dir).filter((k) => k.startsWith('enable subgroups;'));
    expect(using.length).toBeGreaterThan(0);
    expect(using.every((k) => k.startsWith('enable subgroups;\nrequires subgroup_id;\n') && /subgroupAdd\(v\)/.test(k) && /@builtin\(subgroup_id\)/.test(k))).toBe(true);
    expect(sg.out).toContain('subgroups   reductions across threads use subgroup operations: needs the adapter feature subgroups (--subgroups)');
    expect((await loadBundleDir(sg.dir)).manifest.step.subgroups).toBe(true);
    expect((await loadBundleDir(plain.dir)).program.features).toEqual([]);
  }, slow);

  it('a manifest whose step.subgroups disagrees with program.features is rejected naming the field', async () => {
    // Edits the bundles the test above wrote (vitest runs a file's tests in order).
    const edit = (from: string, f: (m: ManifestJson) => void) => editManifest(path.join(root, from), f);
    expect(await rejection(edit('plain', (m) => (m.step.subgroups = true)))).toBe('manifest.json: step.subgroups: true but program.features does not ask for subgroups');
    expect(await rejection(edit('sg', (m) => delete m.step.subgroups))).toBe('manifest.json: step.subgroups: absent but program.features asks for subgroups');
    expect(await rejection(edit('sg', (m) => (m.step.subgroups = false)))).toMatch(/^manifest\.json: step\.subgroups: /);
  }, slow);
});

describe('a program compiled with subgroups on an adapter without the feature', () => {
  it('is refused naming the feature and how to recompile', async () => {
    const sg = await compile('sg-2', '--subgroups');
    const { program } = await loadBundleDir(sg.dir);
    const limits = {
      maxStorageBuffersPerShaderStage: 10, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupSizeY: 1024,
      maxComputeWorkgroupStorageSize: 32768, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 31,
    };
    const old = { info: { description: 'Old GPU', vendor: 'acme' }, limits, features: new Set<string>(['shader-f16']) } as unknown as GPUAdapter;
    await expect(acquireFrom([{ backend: 'vulkan', request: async () => old }], program, 'run setup-gpu.sh')).rejects.toThrow(
      'no WebGPU adapter can run this (vulkan: Old GPU (acme) cannot run it (feature subgroups: missing (the program was compiled with --subgroups; compile it without that option to run without the feature)))',
    );
    // The feature without the WGSL language feature subgroup_id (the subgroup_id and num_subgroups built-ins): refused too.
    const older = { ...old, features: new Set(['subgroups']) } as unknown as GPUAdapter;
    await expect(acquireFrom([{ backend: 'browser', request: async () => older, languageFeatures: async () => new Set(['packed_4x8_integer_dot_product']) }], program, 'use a newer browser')).rejects.toThrow(
      'no WebGPU adapter can run this (browser: Old GPU (acme) cannot run it (WGSL language feature subgroup_id: missing (the program was compiled with --subgroups; compile it without that option to run without the feature)))',
    );
  }, slow);
});
