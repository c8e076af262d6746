// The bundle's typed entry: `lomoc compile --out DIR` writes index.js + index.d.ts (and node.js,
// runtime.js, package.json); the types accept exactly the model's named inputs, and the JavaScript
// runs in plain Node with no compiler and no TypeScript. GPU training through it: test/gpu/bundle.test.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = mkdtempSync(path.join(tmpdir(), 'lomoc-entry-'));
const dir = path.join(root, 'bundle');
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['compile', 'models/gpt.ts', '--preset', 'tiny', '--out', dir], { out: (t) => out.push(t), err: (t) => err.push(t) });
  expect(err).toEqual([]);
  expect(code).toBe(0);
  expect(out[1]).toBe(`entry       ${path.join(dir, 'index.js')} (types: index.d.ts; Node: node.js), runtime.js`);
}, 60_000);

const webgpuTypes = path.join(repo, 'node_modules/@webgpu/types/dist/index.d.ts');
const consumer = (body: string) => `/// <reference path=${JSON.stringify(webgpuTypes)} />
import { createTrainer, inputs, params, type Batch } from './bundle/index.js';
export async function use(device: GPUDevice): Promise<void> {
  const t = await createTrainer({ device, seed: 1 });
  const hyper = { lr: 0.05, weightDecay: 0 };
  const tokens = new Int32Array(16);
  const targets = new Int32Array(16);
${body}
}
`;

/** Type-checks each consumer file against the bundle's index.d.ts: its errors, by file. */
function typeCheck(files: Record<string, string>): Record<string, string[]> {
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(root, name), text);
  const program = ts.createProgram(
    Object.keys(files).map((f) => path.join(root, f)),
    { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, moduleResolution: ts.ModuleResolutionKind.Bundler, types: [], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'] },
  );
  const errors: Record<string, string[]> = Object.fromEntries(Object.keys(files).map((f) => [f, []]));
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const file = d.file ? path.basename(d.file.fileName) : '(global)';
    (errors[file] ??= []).push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  }
  return errors;
}

describe("the bundle's typed entry", () => {
  it('lomoc compile writes index.js, index.d.ts, node.js, runtime.js and package.json beside the manifest', () => {
    for (const f of ['manifest.json', 'index.js', 'index.d.ts', 'node.js', 'node.d.ts', 'runtime.js', 'package.json']) expect(existsSync(path.join(dir, f)), f).toBe(true);
    const dts = readFileSync(path.join(dir, 'index.d.ts'), 'utf8');
    expect(dts).toContain('    /** `i32` [2, 8]: 16 elements. */\n    readonly tokens: Int32Array;');
    expect(dts).toContain("    /** `f32` [16]: 16 elements. */\n    readonly 'h.0.ln1.g': Float32Array;");
    expect(dts).toContain('export declare function createTrainer(options: TrainerOptions): Promise<Trainer>;');
    expect(JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).type).toBe('module');
  });

  it('type-checks a consumer that passes exactly the named inputs, and rejects wrong names, dtypes and params', () => {
    const errors = typeCheck({
      'good.ts': consumer(`  const batch: Batch = { tokens, targets };
  const loss: number | undefined = await t.step(batch, hyper);
  const shape: readonly [2, 8] = inputs.tokens.shape;
  const dtype: 'i32' = inputs.targets.dtype;
  const lnShape: readonly [16] = params['h.0.ln1.g'].shape;
  const p = await t.readParams();
  const w: Float32Array = p['h.0.ln1.g'];
  t.writeParams({ wte: p.wte });
  void [loss, shape, dtype, lnShape, w];
  t.destroy();`),
      'bad-name.ts': consumer('  await t.step({ tokenz: tokens, targets }, hyper);'),
      'bad-dtype.ts': consumer('  await t.step({ tokens: new Float32Array(16), targets }, hyper);'),
      'bad-missing.ts': consumer('  await t.step({ tokens }, hyper);'),
      'bad-param.ts': consumer('  const p = await t.readParams();\n  void p.wtee;'),
      'bad-hyper.ts': consumer('  await t.step({ tokens, targets }, { lr: 0.1 });'),
      'bad-shape.ts': consumer('  const shape: readonly [8, 128] = inputs.tokens.shape;\n  void shape;'),
    });
    expect(errors['good.ts']).toEqual([]);
    expect(errors['(global)'] ?? []).toEqual([]);
    const one = (file: string, pattern: RegExp) => {
      expect(errors[file], file).toHaveLength(1);
      expect(errors[file][0], file).toMatch(pattern);
    };
    one('bad-name.ts', /'tokenz' does not exist in type 'Batch'/);
    one('bad-dtype.ts', /Type 'Float32Array.*' is not assignable to type 'Int32Array.*'/);
    one('bad-missing.ts', /Property 'targets' is missing .* 'Batch'/);
    one('bad-param.ts', /Property 'wtee' does not exist on type 'Params'/);
    one('bad-hyper.ts', /Property 'weightDecay' is missing .* 'Hyper'/);
    one('bad-shape.ts', /Type 'readonly \[2, 8\]' is not assignable to type 'readonly \[8, 128\]'/);
  }, 60_000);

  it('runtime.js imports nothing (no node: module, no package); index.js imports only ./runtime.js', () => {
    const runtime = readFileSync(path.join(dir, 'runtime.js'), 'utf8');
    expect(runtime).not.toMatch(/node:/);
    expect(runtime).not.toMatch(/\bfrom\s*["']|\bimport\s*\(|\brequire\s*\(|^\s*import\s/m);
    expect(runtime).toMatch(/\bexport\s*\{/);
    const index = readFileSync(path.join(dir, 'index.js'), 'utf8');
    expect([...index.matchAll(/\bfrom\s*["']([^"']+)["']/g)].map((m) => m[1])).toEqual(['./runtime.js']);
    expect(index).not.toMatch(/\bimport\s*\(|\brequire\s*\(/);
    const node = readFileSync(path.join(dir, 'node.js'), 'utf8');
    expect([...node.matchAll(/\bfrom\s*["']([^"']+)["']/g)].map((m) => m[1]).sort()).toEqual(['./index.js', './index.js', 'node:fs/promises']);
  });

  it('runs in plain Node with no compiler: exports the tables, and rejects bad options and a hostile bundle before any device', () => {
    const copy = path.join(root, 'hostile');
    mkdirSync(copy);
    execFileSync('cp', ['-r', `${dir}/.`, copy]);
    const manifest = JSON.parse(readFileSync(path.join(copy, 'manifest.json'), 'utf8'));
    manifest.program.loss.offset = manifest.program.arenas[0];
    writeFileSync(path.join(copy, 'manifest.json'), JSON.stringify(manifest));
    // A bundle as written before bundles carried the inference program: it trains, and cannot generate.
    const old = path.join(root, 'old');
    mkdirSync(old);
    execFileSync('cp', ['-r', `${dir}/.`, old]);
    const oldManifest = JSON.parse(readFileSync(path.join(old, 'manifest.json'), 'utf8'));
    delete oldManifest.inference;
    writeFileSync(path.join(old, 'manifest.json'), JSON.stringify(oldManifest));
    const script = `
const b = await import(process.argv[1] + '/node.js');
const h = await import(process.argv[2] + '/node.js');
const o = await import(process.argv[3] + '/node.js');
const out = { model: b.model, optimizer: b.optimizer, inputs: b.inputs, wte: b.params.wte, planBytes: b.planBytes };
try { await b.createTrainer({ seed: 1 }); } catch (e) { out.noDevice = e.name + ': ' + e.message; }
try { await h.createTrainer({ device: {} }); } catch (e) { out.hostile = e.name + ': ' + e.message; }
out.inference = b.inference;
try { await b.createGenerator({}); } catch (e) { out.noGeneratorDevice = e.name + ': ' + e.message; }
try { await o.createGenerator({ device: {} }); } catch (e) { out.old = e.name + ': ' + e.message; }
console.log(JSON.stringify(out));`;
    // Run from the temporary folder: nothing of lomoc (tsx, the compiler, node_modules) is reachable.
    const text = execFileSync(process.execPath, ['--input-type=module', '-e', script, dir, copy, old], { cwd: root, encoding: 'utf8' });
    const out = JSON.parse(text);
    expect(out).toMatchObject({ model: 'gpt', optimizer: 'lomo', inputs: { tokens: { dtype: 'i32', shape: [2, 8] }, targets: { dtype: 'i32', shape: [2, 8] } }, wte: { dtype: 'f32', shape: [32, 16] } });
    expect(out.planBytes).toBe(manifest.program.arenas[0]);
    expect(out.noDevice).toBe("TypeError: createTrainer: pass exactly one of 'device' (a GPUDevice) or 'gpu' (navigator.gpu, or the webgpu package's create([]))");
    expect(out.hostile).toMatch(/^BundleError: manifest\.json: program\.loss: bytes \d+\.\.\d+ lie outside arena 0 of \d+ bytes$/);
    expect(out.inference).toEqual({ context: 8, chunk: 8, vocab: 32, planBytes: manifest.inference.plan.peak });
    expect(out.noGeneratorDevice).toBe("TypeError: createGenerator: pass exactly one of 'device' (a GPUDevice) or 'gpu' (navigator.gpu, or the webgpu package's create([]))");
    expect(out.old).toBe(
      "BundleError: the bundle carries no inference program (it was compiled before bundles carried one, or its model names no logits with output('logits', ...)); compile it again with lomoc compile to generate from it",
    );
  });
});
