// Bundles: what `lomoc compile` writes loads back as the same program, and a broken or hostile
// bundle is rejected with an error naming the field, before anything reaches a device.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../compiler/bundle/write-bundle.ts';
import { compileProgram } from '../compiler/compile-program.ts';
import gpt from '../models/gpt.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { main } from '../cli/main.ts';
import { editManifest, rejection } from './support/bundles.ts';

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const compiled = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: 'cpu' });
const info = {
  model: 'gpt',
  preset: 'tiny',
  config: compiled.config,
  step: { optimizer: 'lomo' as const, dtype: 'f32' as const, checkpoint: 'none', clipNorm: null, clipValue: null, target: 'cpu' as const },
  plan: compiled.plan,
};

function bundle(name: string, edit?: (m: Record<string, any>) => void): string {
  const dir = path.join(root, name);
  writeBundle(dir, compiled.program, info, { entry: false }); // the entry: test/bundle-entry.test.ts
  return edit ? editManifest(dir, edit) : dir;
}


describe('bundles', () => {
  it('load back as the very program that was compiled', async () => {
    const { program, manifest } = await loadBundleDir(bundle('ok'));
    expect(program).toEqual(compiled.program);
    expect(manifest.plan.peak).toBe(compiled.plan.peak);
  });

  it("a manifest without a kernel target (written before there was a choice) loads as the cpu target's; another value is rejected", async () => {
    const { manifest } = await loadBundleDir(bundle('no-target', (m) => delete m.step.target));
    expect(manifest.step.target).toBe('cpu');
    expect(await rejection(bundle('bad-target', (m) => (m.step.target = 'tpu')))).toBe('manifest.json: step.target: Invalid option: expected one of "cpu"|"gpu"');
  });

  it('a broken or hostile bundle is rejected naming the field', async () => {
    const cases: [string, (m: Record<string, any>) => void, string][] = [
      ['format', (m) => (m.format = 'other'), 'manifest.json: format: Invalid input: expected "lomoc-bundle"'],
      ['version', (m) => (m.version = 2), 'manifest.json: version: Invalid input: expected 1'],
      ['arena', (m) => (m.program.params[0].arena = 7), 'manifest.json: program.params.0.arena: arena 7 does not exist (the bundle has 1)'],
      ['offset', (m) => (m.program.loss.offset = m.program.arenas[0]), `manifest.json: program.loss: bytes ${compiled.program.arenas[0]}..${compiled.program.arenas[0] + 4} lie outside arena 0 of ${compiled.program.arenas[0]} bytes`],
      ['negative', (m) => (m.program.dispatches[0].bindings[0].offset = -256), 'manifest.json: program.dispatches.0.bindings.0.offset: Too small: expected number to be >=0'],
      ['dtype', (m) => (m.program.inputs[0].dtype = 'f64'), 'manifest.json: program.inputs.0.dtype: Invalid option: expected one of "f32"|"f16"|"bf16"|"i32"'],
      ['size', (m) => (m.program.params[0].bytes = 4), `manifest.json: program.params.0.bytes: expected ${compiled.program.params[0].bytes} bytes for f32[${compiled.program.params[0].shape.join(', ')}], got 4`],
      ['bindings', (m) => (m.program.dispatches[0].bindings = Array(9).fill(m.program.dispatches[0].bindings[0])), 'manifest.json: program.dispatches.0.bindings: Too big: expected array to have <=8 items'],
      ['traversal', (m) => (m.program.kernels[Object.keys(m.program.kernels)[0]] = '../../etc/passwd'), `manifest.json: program.kernels.${Object.keys(compiled.program.shaders)[0]}: expected kernels/NAME.wgsl`],
      ['shader', (m) => (m.program.dispatches[3].shader = 'nope'), "manifest.json: program.dispatches.3.shader: no kernel 'nope' in program.kernels"],
      ['workgroups', (m) => (m.program.dispatches[0].workgroups = [70000, 1, 1]), 'manifest.json: program.dispatches.0.workgroups.0: Too big: expected number to be <=65535'],
      ['loss', (m) => (m.program.loss.shape = [1]), 'manifest.json: program.loss.shape: expected a scalar, got [1]'],
    ];
    for (const [name, edit, message] of cases) expect(await rejection(bundle(name, edit)), name).toBe(message);
  });

  it('truncated or missing files are clear errors', async () => {
    const truncated = bundle('truncated');
    const file = path.join(truncated, 'manifest.json');
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 200));
    expect(await rejection(truncated)).toMatch(/^manifest\.json: not valid JSON \(.+\)$/);
    expect(await rejection(path.join(root, 'nowhere'))).toBe(`${path.join(root, 'nowhere')}: no manifest.json (is it a folder written by lomoc compile?)`);
    const noKernel = bundle('no-kernel');
    rmSync(path.join(noKernel, 'kernels', '000.wgsl'));
    expect(await rejection(noKernel)).toMatch(/^kernels\/000\.wgsl: cannot read the kernel of '.+' \(ENOENT: .+\)$/);
    const notWgsl = bundle('not-wgsl');
    writeFileSync(path.join(notWgsl, 'kernels', '001.wgsl'), 'console.log("hi")');
    expect(await rejection(notWgsl)).toBe("kernels/001.wgsl: not a WGSL compute shader with an entry point 'main'");
  });

  it('lomoc compile writes a bundle that loads; --out is required', async () => {
    const io = () => {
      const out: string[] = [];
      const err: string[] = [];
      return { out, err, io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
    };
    const missing = io();
    expect(await main(['compile', 'models/mlp.ts'], missing.io)).toBe(1);
    expect(missing.err).toEqual(["error: lomoc compile: option '--out DIR' is required"]);
    const dir = path.join(root, 'cli');
    const ok = io();
    expect(await main(['compile', 'models/llama.ts', '--preset', 'tiny', '--optimizer', 'adamw', '--checkpoint', 'blocks', '--out', dir], ok.io)).toBe(0);
    expect(ok.out[0]).toMatch(/^wrote {7}.+manifest\.json and \d+ kernels/);
    const { manifest } = await loadBundleDir(dir);
    expect(manifest.step).toEqual({ optimizer: 'adamw', dtype: 'f32', checkpoint: 'blocks', checkpointDetail: '2 blocks', clipNorm: null, clipValue: null, target: 'gpu' });
    expect(ok.out[3]).toMatch(/; kernel target gpu \(auto: a bundle runs elsewhere, so lomoc compile asks no adapter; the default, gpu\)$/);
    expect(ok.out[5]).toMatch(new RegExp(`^inference {3}prefill 8 tokens a call and decode 1, context 8; [0-9.]+ KiB \\(its own plan's peak\\): lomoc generate ${dir}$`));
    const cpu = io();
    expect(await main(['compile', 'models/mlp.ts', '--target', 'cpu', '--out', path.join(root, 'cli-cpu')], cpu.io)).toBe(0);
    expect(cpu.out[5]).toBe("inference   none: model 'mlp' names no logits (output('logits', ...)), so this bundle cannot generate");
    expect((await loadBundleDir(path.join(root, 'cli-cpu'))).manifest.step.target).toBe('cpu');
    const auto = io();
    // auto means what it means on every command; compile looks at no adapter, takes the stated default and records it.
    expect(await main(['compile', 'models/mlp.ts', '--target', 'auto', '--out', path.join(root, 'cli-auto')], auto.io)).toBe(0);
    expect((await loadBundleDir(path.join(root, 'cli-auto'))).manifest.step.target).toBe('gpu');
    expect(auto.out[3]).toMatch(/; kernel target gpu \(auto: a bundle runs elsewhere, so lomoc compile asks no adapter; the default, gpu\)$/);
    const bad = io();
    expect(await main(['compile', 'models/mlp.ts', '--target', 'tpu', '--out', path.join(root, 'cli-tpu')], bad.io)).toBe(1);
    expect(bad.err).toEqual(["error: lomoc compile: option '--target' expects auto, cpu or gpu, got 'tpu'"]);
  }, 60_000); // three compiles, each with its page and (llama) its inference program
});
