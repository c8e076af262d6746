#!/usr/bin/env node
// What lomoc needs beyond npm packages, checked (and installed where it can be) before `npm test`:
//   - a WebGPU adapter for Dawn (the `webgpu` package). Without a GPU: Mesa's lavapipe and
//     llvmpipe from Debian, through scripts/setup-gpu.sh;
//   - Debian's chromium, for the browser tests, in a clone (a folder with test/) only;
//   - with --with-torch (npm test's pretest passes it): Debian's python3-torch for /usr/bin/python3, the PyTorch peer of the parity tests.
// Missing pieces are installed when running as root with apt-get; otherwise it prints the one
// command to run. A found adapter and chromium are remembered in node_modules/.cache/lomoc-setup,
// keyed on what would change the answer (Vulkan drivers, chromium, Node, webgpu), so the check
// costs a few stat calls afterwards. LOMOC_SKIP_SETUP=1 skips everything.
// Plain JS: it runs before anything else, on a machine that may have nothing but Node and npm.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const usage = `usage: node scripts/setup.mjs [--with-torch] [--force] [--warn-only]
  --with-torch  also make sure /usr/bin/python3 can import torch (Debian's python3-torch)
  --force       check again even if a previous check found everything
  --warn-only   exit 0 even when something is still missing (npm's pretest uses this)
  LOMOC_SKIP_SETUP=1 skips all of it; LOMOC_SETUP_CACHE=FILE keeps the remembered answer there.`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const setupGpu = path.join(root, 'scripts', 'setup-gpu.sh');
// The node_modules holding lomoc's dependencies: lomoc's own in a clone, the enclosing one when installed.
const nodeModules = path.basename(path.dirname(root)) === 'node_modules' ? path.dirname(root) : path.join(root, 'node_modules');
const cacheFile = process.env.LOMOC_SETUP_CACHE || path.join(nodeModules, '.cache', 'lomoc-setup', 'found.json');
const inClone = existsSync(path.join(root, 'test'));
const say = (line) => process.stdout.write(`lomoc setup: ${line}\n`);

/** The file `name` on PATH, or undefined. */
function which(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir || '.', name);
    try {
      if (statSync(file).isFile()) return file;
    } catch {}
  }
  return undefined;
}

/** What a changed answer would follow: the Vulkan drivers, chromium, Node and Dawn's package. */
function cacheKey() {
  const stamp = (file) => {
    try {
      return `${file}@${statSync(file).mtimeMs}`;
    } catch {
      return `${file}@-`;
    }
  };
  const icds = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'].flatMap((dir) =>
    existsSync(dir) ? readdirSync(dir).map((f) => stamp(path.join(dir, f))) : []);
  const chromium = which('chromium');
  return JSON.stringify({
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    webgpu: stamp(path.join(nodeModules, 'webgpu', 'package.json')),
    icds,
    chromium: inClone ? (chromium ? stamp(chromium) : null) : 'not needed',
    icdEnv: process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES ?? null,
  });
}

/** Asks Dawn for its default adapter in a child process (a hung driver cannot hang setup). */
function probeAdapter() {
  const probe = `process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { create } = await import('webgpu');
const a = await create([]).requestAdapter();
console.log('lomoc-probe:' + JSON.stringify(a ? (a.info.description || a.info.vendor || 'unnamed adapter') : null));
process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('lomoc-probe:'));
  if (line) {
    const found = JSON.parse(line.slice('lomoc-probe:'.length));
    return found ? { ok: true, name: found } : { ok: false, why: 'Dawn offers no default adapter' };
  }
  if (r.error?.code === 'ETIMEDOUT') return { ok: false, why: 'the adapter probe did not finish in 60 s' };
  const err = (r.stderr ?? '').trim().split('\n').find((l) => /Error|error:/.test(l)) ?? `exit status ${r.status}`;
  return { ok: false, why: /ERR_MODULE_NOT_FOUND|Cannot find package 'webgpu'/.test(r.stderr) ? "the npm package 'webgpu' is not installed (run npm install)" : err };
}

function torchOk() {
  return existsSync('/usr/bin/python3') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

const canApt = process.platform === 'linux' && process.getuid?.() === 0 && which('apt-get') !== undefined;
let aptUpdated = false;
/** apt-get install as root; true when apt-get said yes. */
function aptInstall(packages) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    say('apt-get update');
    aptUpdated = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env }).status === 0;
  }
  say(`apt-get install -y ${packages.join(' ')}`);
  return spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env }).status === 0;
}

/** Each need: how to check it, how to install it as root, the command to give a user. */
const needs = [
  {
    name: 'WebGPU adapter',
    check: probeAdapter,
    install: () => spawnSync('bash', [setupGpu], { stdio: 'inherit' }).status === 0,
    installing: "no WebGPU adapter: installing Mesa's lavapipe (Vulkan) and llvmpipe (GLES) with scripts/setup-gpu.sh",
    command: `sudo bash ${path.relative(process.cwd(), setupGpu) || setupGpu}`,
    failing: 'lomoc run/train on WebGPU and the tests in test/gpu',
  },
  ...(inClone ? [{
    name: 'chromium',
    check: () => (which('chromium') ? { ok: true, name: which('chromium') } : { ok: false, why: 'no chromium on PATH' }),
    install: () => aptInstall(['chromium']),
    installing: "no chromium: installing Debian's chromium for the browser tests",
    command: 'sudo apt-get install -y chromium',
    failing: 'the tests that open a browser (test/timeline.test.ts, test/gpu/bundle-browser.test.ts, test/gpu/page.test.ts)',
  }] : []),
];
const torch = {
  name: 'torch for /usr/bin/python3',
  check: () => (torchOk() ? { ok: true, name: 'python3-torch' } : { ok: false, why: '/usr/bin/python3 cannot import torch' }),
  install: () => aptInstall(['python3-torch']),
  installing: "/usr/bin/python3 has no torch: installing Debian's python3-torch",
  command: 'sudo apt-get install -y python3-torch',
  failing: 'the tests that compare against PyTorch',
};

/** Checks one need, installs it if it can; returns what it found at the end, or undefined. */
function ensure(need) {
  const found = need.check();
  if (found.ok) return found.name;
  if (!canApt) {
    say(`${need.name} missing (${found.why}); run \`${need.command}\`, or ${need.failing} fail`);
    return undefined;
  }
  say(need.installing);
  const installed = need.install();
  const after = need.check();
  if (after.ok) say(`${need.name}: installed (${after.name})`);
  else say(`${need.name} still missing after ${installed ? 'installing' : 'a failed install'} (${after.why}); ${need.failing} will fail`);
  return after.ok ? after.name : undefined;
}

/** Writes the cache key (after any installs: the key they changed); a read-only folder only costs the next check. */
function remember() {
  try {
    mkdirSync(path.dirname(cacheFile), { recursive: true });
    writeFileSync(`${cacheFile}.${process.pid}`, cacheKey());
    renameSync(`${cacheFile}.${process.pid}`, cacheFile);
    return `remembered in ${path.relative(process.cwd(), cacheFile)}`;
  } catch (e) {
    return `not remembered: ${e.message}`;
  }
}

function main(argv) {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const known = new Set(['--with-torch', '--force', '--warn-only']);
  const bad = argv.find((a) => !known.has(a));
  if (bad !== undefined) {
    process.stderr.write(`lomoc setup: unknown option '${bad}'\n${usage}\n`);
    return 2;
  }
  if (process.env.LOMOC_SKIP_SETUP === '1') return 0;
  const key = cacheKey();
  const cached = !argv.includes('--force') && existsSync(cacheFile) && readFileSync(cacheFile, 'utf8') === key;
  const found = cached ? [] : needs.map(ensure);
  let ok = cached || found.every((f) => f !== undefined);
  if (ok && !cached) say(`${needs.map((n, i) => `${n.name}: ${found[i]}`).join('; ')} (${remember()})`);
  if (argv.includes('--with-torch')) ok = ensure(torch) !== undefined && ok;
  return ok || argv.includes('--warn-only') ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
