// A bundle carries the inference program: lomoc compile writes it for a model that names its
// logits (and none for one that does not), it loads back as the very program compileInference
// lowers, its params are the step's, a bundle without it loads and cannot generate (the exact
// message), and a tampered section is refused by the manifest check, naming the field.
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleInference } from '../compiler/bundle/inference-section.ts';
import { writeBundle, type BundleInfo } from '../compiler/bundle/write-bundle.ts';
import { compileProgram } from '../compiler/compile-program.ts';
import { compileInference, lowerInference, planInference } from '../compiler/inference/compile-inference.ts';
import gpt from '../models/gpt.ts';
import mlp from '../models/mlp.ts';
import { BundleError, noInferenceMessage } from '../runtime/bundle/load-bundle.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { run } from './support/cli.ts';
import { rejection } from './support/bundles.ts';

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-bundle-inference-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const compiled = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: 'cpu' });
const inference = bundleInference(gpt, compiled.forward, compiled.config, 'cpu');
const info: BundleInfo = {
  model: 'gpt',
  preset: 'tiny',
  config: compiled.config,
  step: { optimizer: 'lomo', dtype: 'f32', checkpoint: 'none', clipNorm: null, clipValue: null, target: 'cpu' },
  plan: compiled.plan,
  inference,
};
const dir = path.join(root, 'gpt');
const written = writeBundle(dir, compiled.program, info, { entry: false });
const manifestText = readFileSync(path.join(dir, 'manifest.json'), 'utf8');

/** A copy of the bundle whose manifest `edit` changed (kernels shared by hard link: read only). */
function tampered(name: string, edit: (m: Record<string, any>) => void): string {
  const copy = path.join(root, name);
  writeBundle(copy, compiled.program, info, { entry: false });
  const m = JSON.parse(manifestText);
  edit(m);
  writeFileSync(path.join(copy, 'manifest.json'), JSON.stringify(m));
  return copy;
}



describe('the bundle\'s inference program', () => {
  it('loads back as the program compileInference lowers, over the step\'s params by name and shape, sharing kernel files', async () => {
    const loaded = await loadBundleDir(dir);
    const want = lowerInference(planInference(compileInference(gpt, { sets: Object.entries(compiled.config).map(([k, v]) => `${k}=${String(v)}`) }), { target: 'cpu' }));
    const got = loaded.inference!.program;
    expect(got.entries).toEqual(want.entries);
    expect(got.dispatches).toEqual(want.dispatches);
    expect(got.arenas).toEqual(want.arenas);
    expect(got.inputs).toEqual(want.inputs);
    expect(got.outputs).toEqual(want.outputs);
    expect(got.state).toEqual(want.state);
    expect(got.params).toEqual(want.params);
    expect({ ...got.shaders }).toEqual(want.shaders);
    expect(loaded.inference).toMatchObject({ context: 8, chunk: 8, vocab: 32 });
    expect(written.inference!.plan.peak).toBe(want.arenas.reduce((a, b) => a + b, 0));
    // Generation reads the trained weights: every inference param is a step param of the same shape.
    const step = new Map(loaded.program.params.map((p) => [p.name, p.shape.join()]));
    expect(got.params.length).toBeGreaterThan(0);
    for (const p of got.params) expect(step.get(p.name), p.name).toBe(p.shape.join());
    // A shader both programs run is one file: fewer files than the two programs' keys.
    const files = new Set([...Object.values(written.program.kernels), ...Object.values(written.inference!.program.kernels)]);
    expect(files.size).toBeLessThan(Object.keys(written.program.kernels).length + Object.keys(written.inference!.program.kernels).length);
  });

  it('a preset with config keys the default preset lacks (gpt2: positions, eps) gets its inference program', () => {
    const big = compileProgram(gpt, { preset: 'gpt2', sets: ['batch=1', 'seq=64', 'layers=1'], optimizer: 'lomo', target: 'cpu' });
    const inf = bundleInference(gpt, big.forward, big.config, 'cpu', 'gpt2');
    expect(inf?.context).toBe(64);
    expect(inf?.vocab).toBe(50257);
  });

  it('a model that names no logits gets no section; an older bundle without one loads and lomoc generate names the reason', async () => {
    const m = compileProgram(mlp, { optimizer: 'lomo', target: 'cpu' });
    expect(bundleInference(mlp, m.forward, m.config, 'cpu')).toBeUndefined();
    const old = tampered('old', (j) => delete j.inference);
    const loaded = await loadBundleDir(old);
    expect(loaded.inference).toBeUndefined();
    expect(loaded.program.dispatches.length).toBe(compiled.program.dispatches.length);
    const r = await run('generate', old, '--prompt-tokens', '1,2');
    expect([r.code, r.stderr]).toEqual([1, `error: lomoc generate: ${old}: ${noInferenceMessage}`]);
    expect(noInferenceMessage).toBe(
      "the bundle carries no inference program (it was compiled before bundles carried one, or its model names no logits with output('logits', ...)); compile it again with lomoc compile to generate from it",
    );
  });

  it('a bundle with an inference program refuses options compiled into it, and --device cpu', async () => {
    const cases: [string[], string][] = [
      [['--preset', 'small'], `error: lomoc generate: option '--preset' is for a model file; the bundle ${dir} was compiled with its own`],
      [['--chunk', '2'], `error: lomoc generate: option '--chunk' is for a model file; the bundle ${dir} was compiled with its own`],
      [['--device', 'cpu'], `error: lomoc generate: --device cpu runs the reference executor on a model file; a bundle (${dir}) runs on WebGPU: drop --device cpu, or give the model file`],
      [['--init', path.join(root, 'none.safetensors')], `error: lomoc generate: --init ${path.join(root, 'none.safetensors')}: no such checkpoint file`],
    ];
    for (const [args, message] of cases) {
      const r = await run('generate', dir, '--prompt-tokens', '1', ...args);
      expect([r.code, r.stderr]).toEqual([1, message]);
    }
  });

  it('a tampered inference section is refused, naming the field', async () => {
    const ip = written.inference!.program;
    const lastUse = Math.max(...[...ip.inputs, ...ip.params, ...ip.state, ...ip.outputs, ...ip.dispatches.flatMap((d) => d.bindings)].map((r) => r.offset + r.bytes));
    const cases: [string, (m: Record<string, any>) => void, string][] = [
      ['rename', (m) => (m.inference.program.params[0].name = 'w.other'), "manifest.json: inference.program.params.0.name: 'w.other' is no param of the training step: generation reads the step's weights"],
      ['reshape', (m) => {
        const p = m.inference.program.params.find((x: { shape: number[] }) => x.shape.length === 2 && x.shape[0] !== x.shape[1]);
        p.shape = [p.shape[1], p.shape[0]];
      }, 'manifest.json: inference.program.params.0.shape: [16, 32], but the training step\'s \'wte\' is [32, 16]'],
      ['entry', (m) => (m.inference.program.entries.decode.to = 1e6), `manifest.json: inference.program.entries.decode: dispatches ${written.inference!.program.entries.decode.from}..1000000 are not a range of the ${written.inference!.program.dispatches.length} dispatches`],
      ['no-decode', (m) => delete m.inference.program.entries.decode, 'manifest.json: inference.program.entries: expected exactly decode and prefill, got prefill'],
      ['input', (m) => (m.inference.program.inputs[1].name = 'prefill.where'), 'manifest.json: inference.program.inputs: expected prefill.tokens (i32), prefill.pos (i32), decode.tokens (i32), decode.pos (i32), got prefill.tokens:i32, prefill.where:i32, decode.tokens:i32, decode.pos:i32'],
      ['arena', (m) => (m.inference.program.arenas[0] += 256), `manifest.json: inference.program.arenas.0: ${written.inference!.program.arenas[0] + 256} bytes, but the tensors and bindings in it end at byte ${lastUse}: an arena is at most its last use rounded up to 256`],
      ['peak', (m) => (m.inference.plan.peak += 256), `manifest.json: inference.program.arenas: they hold ${written.inference!.plan.peak} bytes in all, but inference.plan.peak is ${written.inference!.plan.peak + 256}: the arenas are the plan's layout`],
      ['binding', (m) => (m.inference.program.dispatches[0].bindings[0].offset = written.inference!.program.arenas[0]), `manifest.json: inference.program.dispatches.0.bindings.0: bytes ${written.inference!.program.arenas[0]}..${written.inference!.program.arenas[0] + written.inference!.program.dispatches[0].bindings[0].bytes} lie outside arena 0 of ${written.inference!.program.arenas[0]} bytes`],
      ['kernel', (m) => (m.inference.program.dispatches[0].shader = 'nope'), "manifest.json: inference.program.dispatches.0.shader: no kernel 'nope' in inference.program.kernels"],
      ['path', (m) => (m.inference.program.kernels[Object.keys(m.inference.program.kernels)[0]] = '../manifest.json'), `manifest.json: inference.program.kernels.${Object.keys(written.inference!.program.kernels)[0]}: expected kernels/NAME.wgsl`],
      ['vocab', (m) => (m.inference.vocab = 33), 'manifest.json: inference.vocab: 33, but the logits have 32 columns'],
      ['chunk', (m) => (m.inference.chunk = 4), 'manifest.json: inference.chunk: 4, but prefill.tokens is [1, 8]'],
      ['dtype', (m) => (m.inference.dtype = 'bf16'), 'manifest.json: inference.dtype: Invalid option: expected one of "f32"|"f16"'],
    ];
    for (const [name, edit, message] of cases) expect(await rejection(tampered(name, edit)), name).toBe(message);
  });

  it('any number in the inference program changed: the bundle loads as written or is refused with a BundleError', async () => {
    // Paths to every number of the section (the fuzzer of the whole manifest: test/hardening/fuzz-manifest.test.ts).
    const base = JSON.parse(manifestText);
    const paths: (string | number)[][] = [];
    const walk = (x: unknown, at: (string | number)[]) => {
      if (typeof x === 'number') paths.push(at);
      else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) walk(v, [...at, Array.isArray(x) ? Number(k) : k]);
    };
    walk(base.inference, ['inference']);
    const target = path.join(root, 'fuzz');
    writeBundle(target, compiled.program, info, { entry: false });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: paths.length - 1 }), fc.oneof(fc.integer({ min: -3, max: 70000 }), fc.constant(0.5), fc.constant(2 ** 40)), async (i, v) => {
        const m = JSON.parse(manifestText);
        let o = m;
        for (const k of paths[i].slice(0, -1)) o = o[k];
        o[paths[i].at(-1)!] = v;
        writeFileSync(path.join(target, 'manifest.json'), JSON.stringify(m));
        const out = await rejection(target);
        if (out === 'loaded') return; // a change the program tolerates (a uniform, a workgroup count)
        expect(out).toMatch(/^(manifest\.json|kernels\/[0-9]+\.wgsl): /);
      }),
      { numRuns: 60, seed: 12 },
    );
  });
});
