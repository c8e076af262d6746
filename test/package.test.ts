// lomoc as people get it: `npm pack`, `npm install ./lomoc-x.y.z.tgz` into an empty folder, a model
// file there importing from 'lomoc', and `npx lomoc plan|run|train|compile`. Then model files
// outside the repository (no package.json, or one without "type": "module") run by this checkout's
// bin/lomoc.js; then scripts/setup.mjs, which `npm test` runs first. All through real processes:
// what is under test is the packaging and Node's module loading, which no in-process call sees.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const lomocBin = path.join(root, 'bin', 'lomoc.js');

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

// npm test's own npm_* variables (the repo as local prefix, the lifecycle) must not leak into the
// npm commands run here; the user's cache and registry settings may.
const kept = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || kept.has(k.toLowerCase())));
delete env.INIT_CWD;

function sh(cmd: string, args: readonly string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Fails with everything the command printed when it did not exit 0. */
function ok(r: Result): Result {
  if (r.code !== 0) throw new Error(`exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** A small classifier written as a user would, with types; `dsl` is where it imports the DSL from. Preset broken: w2 has a row too many. */
const mlpSource = (dsl: string): string => `import { add, crossEntropy, fanIn, input, matmul, mean, model, param, relu, zeros } from '${dsl}';

type Config = { batch: number; features: number; hidden: number; classes: number; skew: number };

export default model(
  'my-mlp',
  (cfg: Config) => {
    const x = input('x', [cfg.batch, cfg.features], 'f32');
    const labels = input('labels', [cfg.batch], 'i32');
    const h = relu(add(matmul(x, param('w1', [cfg.features, cfg.hidden], fanIn())), param('b1', [cfg.hidden], zeros())));
    const logits = matmul(h, param('w2', [cfg.hidden + cfg.skew, cfg.classes], fanIn()));
    return mean(crossEntropy(logits, labels));
  },
  { presets: { tiny: { batch: 4, features: 8, hidden: 16, classes: 4, skew: 0 }, broken: { batch: 4, features: 8, hidden: 16, classes: 4, skew: 1 } } },
);
`;
const planLine = (file: string): string =>
  `model       my-mlp (${file}), preset tiny: batch=4 features=8 hidden=16 classes=4 skew=0; dtype f32; checkpoint none`;

const temps: string[] = [];
function temp(name: string): string {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), `lomoc-${name}-`))); // the paths Node reports
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** The losses of `run --json` (numbers) or `train --json` ({ step, loss }). */
function losses(r: Result): number[] {
  return (JSON.parse(ok(r).stdout) as { losses: (number | { loss: number })[] }).losses.map((l) => (typeof l === 'number' ? l : l.loss));
}

describe('lomoc installed from its npm pack tarball into an empty folder', { timeout: 180_000 }, () => {
  let app = '';
  let files: string[] = [];
  beforeAll(async () => {
    const dir = temp('package');
    const packDir = path.join(dir, 'pack');
    app = path.join(dir, 'app');
    mkdirSync(packDir);
    mkdirSync(app);
    const packed = JSON.parse(ok(await sh('npm', ['pack', '--json', '--pack-destination', packDir], root)).stdout) as
      { filename: string; files: { path: string }[] }[];
    files = packed[0].files.map((f) => f.path);
    const started = performance.now();
    ok(await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(packDir, packed[0].filename)], app));
    console.log(`package.test: npm install of the tarball took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    writeFileSync(path.join(app, 'my-model.ts'), mlpSource('lomoc'));
  }, 600_000);

  it('the tarball holds the sources, bins and setup scripts, and no tests, docs or benchmarks', () => {
    expect(files).toEqual(expect.arrayContaining(['package.json', 'bin/lomoc.js', 'bin/model-hooks.mjs', 'compiler/dsl/index.ts',
      'cli/main.ts', 'contract/program.ts', 'runtime/index.ts', 'models/gpt.ts', 'scripts/setup.mjs', 'scripts/setup-gpu.sh']));
    expect(files.filter((f) => /^(test|docs|bench|\.ci)\//.test(f) || f.endsWith('.test.ts'))).toEqual([]);
  });

  it('npx lomoc plan my-model.ts, which imports from lomoc', async () => {
    const r = ok(await sh('npx', ['lomoc', 'plan', 'my-model.ts'], app));
    expect(r.stdout.split('\n')).toContain(planLine('my-model.ts'));
  });

  it('npx lomoc run my-model.ts --steps 2 on WebGPU gives the losses of --device cpu (the reference executor)', async () => {
    const [gpu, cpu] = (await Promise.all([
      sh('npx', ['lomoc', 'run', 'my-model.ts', '--steps', '2', '--json'], app),
      sh('npx', ['lomoc', 'run', 'my-model.ts', '--steps', '2', '--json', '--device', 'cpu'], app),
    ])).map(losses);
    expect(gpu).toHaveLength(2);
    for (const [i, loss] of gpu.entries()) expect(Math.abs(loss - cpu[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(cpu[i])));
    expect(gpu[0]).not.toBe(gpu[1]); // it trained
  });

  it('npx lomoc compile and train a token model copied from the package, importing from lomoc', async () => {
    const gpt = readFileSync(path.join(app, 'node_modules', 'lomoc', 'models', 'gpt.ts'), 'utf8');
    expect(gpt).toContain("from '../compiler/dsl/index.ts'");
    writeFileSync(path.join(app, 'gpt.ts'), gpt.replace("from '../compiler/dsl/index.ts'", "from 'lomoc'"));
    const [compiled, train] = await Promise.all([
      sh('npx', ['lomoc', 'compile', 'gpt.ts', '--preset', 'tiny', '--out', 'out/gpt'], app),
      sh('npx', ['lomoc', 'train', 'gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--steps', '2', '--json'], app),
    ]);
    expect(ok(compiled).stdout).toContain('wrote       out/gpt/manifest.json');
    expect(existsSync(path.join(app, 'out', 'gpt', 'index.js'))).toBe(true);
    const trained = losses(train);
    expect(trained).toHaveLength(2);
    for (const loss of trained) expect(loss).toBeGreaterThan(0);
  });

  it("a model importing another copy of lomoc's DSL (this checkout's, by path) is an error naming both", async () => {
    const dsl = path.join(root, 'compiler', 'dsl', 'index.ts');
    writeFileSync(path.join(app, 'other.ts'), mlpSource(dsl));
    const installed = path.join(app, 'node_modules', 'lomoc');
    expect(await sh(path.join(app, 'node_modules', '.bin', 'lomoc'), ['plan', 'other.ts'], app)).toEqual({
      code: 1,
      stdout: '',
      stderr: `other.ts:1:1: error: cannot load model: importing the file threw: the model imports the DSL of another copy of lomoc (${dsl}), `
        + `but the lomoc running is ${installed}: import the DSL as 'lomoc'\n`,
    });
  });
});

describe('model files outside the repository, run by its bin/lomoc.js', { timeout: 120_000 }, () => {
  const dsl = path.join(root, 'compiler', 'dsl', 'index.ts');

  it('no package.json beside it: the DSL imported by absolute path, by relative path, and as lomoc', async () => {
    const dir = temp('bare');
    const relative = path.relative(dir, dsl).split(path.sep).join('/');
    writeFileSync(path.join(dir, 'absolute.ts'), mlpSource(dsl));
    writeFileSync(path.join(dir, 'relative.ts'), mlpSource(relative.startsWith('.') ? relative : `./${relative}`));
    writeFileSync(path.join(dir, 'bare.ts'), mlpSource('lomoc')); // no node_modules here: the running lomoc
    const files = ['absolute.ts', 'relative.ts', 'bare.ts'];
    const plans = await Promise.all(files.map((file) => sh(process.execPath, [lomocBin, 'plan', file], dir)));
    for (const [i, file] of files.entries()) expect(ok(plans[i]).stdout.split('\n')).toContain(planLine(file));
  });

  it('a package.json without "type": "module": the model still loads as ESM and trains', async () => {
    const dir = temp('cjs-package');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'my-models', version: '1.0.0' }));
    mkdirSync(path.join(dir, 'src'));
    writeFileSync(path.join(dir, 'src', 'model.ts'), mlpSource(path.relative(path.join(dir, 'src'), dsl).split(path.sep).join('/')));
    const r = losses(await sh(process.execPath, [lomocBin, 'run', 'src/model.ts', '--steps', '2', '--device', 'cpu', '--json'], dir));
    expect(r).toHaveLength(2);
  });

  it("errors point at the user's file and line outside the repository", async () => {
    const dir = temp('error');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'my-models', version: '1.0.0' }));
    writeFileSync(path.join(dir, 'model.ts'), mlpSource(dsl));
    const r = await sh(process.execPath, [lomocBin, 'plan', 'model.ts', '--preset', 'broken'], dir);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: 'model.ts:11:20: error: matmul: inner dimensions must match, got [4, 16] and [17, 4]\n'
        + '  note: model.ts:11:30: the right operand was created here\n',
    });
  });
});

describe('scripts/setup.mjs (run by npm test before the tests)', { timeout: 120_000 }, () => {
  const setup = path.join(root, 'scripts', 'setup.mjs');

  it('LOMOC_SKIP_SETUP=1: does nothing, says nothing', async () => {
    expect(await sh(process.execPath, [setup], root, { LOMOC_SKIP_SETUP: '1', PATH: '/nonexistent' }))
      .toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('on this machine (an adapter and chromium): finds them once, then remembers and says nothing', async () => {
    const cache = path.join(temp('setup-cache'), 'found.json');
    const first = ok(await sh(process.execPath, [setup], root, { LOMOC_SETUP_CACHE: cache }));
    expect(first.stdout).toMatch(/^lomoc setup: WebGPU adapter: .+; chromium: .+chromium \(remembered in .+found\.json\)\n$/);
    const started = performance.now();
    expect(await sh(process.execPath, [setup], root, { LOMOC_SETUP_CACHE: cache })).toEqual({ code: 0, stdout: '', stderr: '' });
    console.log(`package.test: setup with everything present and remembered took ${(performance.now() - started).toFixed(0)} ms`);
  });

  it('no adapter and no way to install (no apt-get on PATH): prints the commands; exit 1, or 0 with --warn-only', async () => {
    const cache = path.join(temp('setup-none'), 'found.json');
    // An ICD list naming no file hides every Vulkan driver from Dawn; an empty PATH hides chromium and apt-get.
    const none = { LOMOC_SETUP_CACHE: cache, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json', PATH: '/nonexistent' };
    const expected = [
      'lomoc setup: WebGPU adapter missing (Dawn offers no default adapter); run `sudo bash scripts/setup-gpu.sh`, or lomoc run/train on WebGPU and the tests in test/gpu fail',
      'lomoc setup: chromium missing (no chromium on PATH); run `sudo apt-get install -y chromium`, or the tests that open a browser (test/timeline.test.ts, test/gpu/bundle-browser.test.ts, test/gpu/page.test.ts) fail',
      '',
    ].join('\n');
    expect(await sh(process.execPath, [setup], root, none)).toEqual({ code: 1, stdout: expected, stderr: '' });
    expect(await sh(process.execPath, [setup, '--warn-only'], root, none)).toEqual({ code: 0, stdout: expected, stderr: '' });
    expect(existsSync(cache)).toBe(false); // nothing found, nothing remembered
  });

  // As root with apt-get it installs: here apt-get is a stand-in that records its arguments and
  // "installs" chromium as a script, and Dawn still sees no driver (setup-gpu.sh finds Mesa already
  // there). So: chromium installed, the adapter still missing, nothing remembered.
  it.runIf(process.getuid?.() === 0)('as root with apt-get: runs setup-gpu.sh and installs chromium, and says so', async () => {
    const dir = temp('setup-root');
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['bash', 'sh', 'id', 'dpkg-query', 'dpkg', 'ls', 'grep', 'tee', 'chmod']) {
      const found = await sh('sh', ['-c', `command -v ${tool}`], dir);
      symlinkSync(found.stdout.trim(), path.join(bin, tool));
    }
    const log = path.join(dir, 'apt.log');
    writeFileSync(path.join(bin, 'apt-get'), `#!/bin/sh\necho "$*" >> ${log}\ncase "$*" in *chromium*) printf '#!/bin/sh\\n' > ${bin}/chromium; chmod +x ${bin}/chromium;; esac\n`, { mode: 0o755 });
    const cache = path.join(dir, 'found.json');
    const r = await sh(process.execPath, [setup, '--warn-only'], root,
      { LOMOC_SETUP_CACHE: cache, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json', PATH: bin });
    expect({ ...r, stdout: r.stdout.replace(/\(Mesa [^)]+\)/, '(Mesa V)') }).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        "lomoc setup: no WebGPU adapter: installing Mesa's lavapipe (Vulkan) and llvmpipe (GLES) with scripts/setup-gpu.sh",
        'setup-gpu: lavapipe (Mesa V) and GLES/EGL already installed; nothing to do',
        'lomoc setup: WebGPU adapter still missing after installing (Dawn offers no default adapter); lomoc run/train on WebGPU and the tests in test/gpu will fail',
        "lomoc setup: no chromium: installing Debian's chromium for the browser tests",
        'lomoc setup: apt-get update',
        'lomoc setup: apt-get install -y chromium',
        `lomoc setup: chromium: installed (${bin}/chromium)`,
        '',
      ].join('\n'),
    });
    expect(readFileSync(log, 'utf8')).toBe('update -qq\ninstall -y -qq chromium\n');
    expect(existsSync(cache)).toBe(false);
  });
});
