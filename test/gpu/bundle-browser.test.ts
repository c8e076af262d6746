// A bundle trains in a browser: headless Chromium (WebGPU on SwiftShader) loads the bundle's
// index.js over HTTP, which fetches manifest.json and the kernels relative to its own URL, acquires
// a device from navigator.gpu and trains 3 steps; the losses match the in-process trainer's on
// Dawn. Without chromium this fails (as test/timeline.test.ts does), naming how to install it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { compileProgram, idRanges } from '../../compiler/compile-program.ts';
import gpt from '../../models/gpt.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { acquireDevice } from '../../runtime/webgpu/node.ts';
import { createTrainer, dataInputs } from '../../runtime/webgpu/trainer.ts';

function chromium(): string {
  const found = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error("chromium is not installed: run .ci/run (it installs Debian's chromium), or apt-get install -y chromium");
  return found.stdout.trim();
}

const page = (job: unknown) => `<!doctype html><meta charset="utf-8"><script type="module">
const job = ${JSON.stringify(job)};
const out = {};
try {
  const { inputs, createTrainer } = await import('./index.js');
  const t = await createTrainer({ gpu: navigator.gpu, seed: job.seed });
  out.adapter = t.adapter;
  out.losses = [];
  for (const b of job.batches) {
    const batch = Object.fromEntries(Object.entries(inputs).map(([k, s]) => [k, (s.dtype === 'i32' ? Int32Array : Float32Array).from(b[k])]));
    out.losses.push(await t.step(batch, { lr: job.lr, weightDecay: job.weightDecay }));
  }
  t.destroy();
} catch (e) {
  out.error = e.name + ': ' + e.message;
}
await fetch('/result', { method: 'POST', body: JSON.stringify(out) });
</script>`;

const types: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.wgsl': 'text/plain' };

/** Serves `dir`, opens page.html in headless chromium, and resolves to what the page posts back. */
function browse(dir: string, profile: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let browser: ChildProcess | undefined;
    // Settles once chromium has exited, so that its profile folder can be removed.
    const done = (f: () => void) => {
      clearTimeout(timer);
      server.close();
      if (!browser || browser.exitCode !== null || browser.signalCode !== null) return f();
      browser.once('exit', f);
      browser.kill();
    };
    const timer = setTimeout(() => done(() => reject(new Error('the page posted no result in 90 s'))), 90_000);
    const server = http.createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method === 'POST' && url.pathname === '/result') {
        let body = '';
        for await (const chunk of req) body += chunk;
        res.end();
        done(() => resolve(JSON.parse(body)));
        return;
      }
      const file = path.join(dir, path.normalize(decodeURIComponent(url.pathname)));
      try {
        const body = await readFile(file);
        res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
        res.end(body);
      } catch {
        res.writeHead(404);
        res.end();
      }
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      browser = spawn(chromium(), ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
        `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/page.html`], { stdio: 'ignore' });
      browser.on('error', (e) => done(() => reject(e)));
    });
  });
}

describe('a bundle trains in a browser', () => {
  it('gpt tiny, lomo: index.js in headless Chromium (WebGPU on SwiftShader) matches the in-process trainer', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-browser-'));
    try {
      const bundle = path.join(dir, 'gpt');
      const io = { out: () => undefined, err: (t: string) => expect.fail(t) };
      expect(await main(['compile', 'models/gpt.ts', '--preset', 'tiny', '--optimizer', 'lomo', '--out', bundle], io)).toBe(0);
      const c = compileProgram(gpt, { preset: 'tiny', optimizer: 'lomo', target: 'gpu' }); // lomoc compile's default
      const vocab = idRanges(c.step);
      const batches = [1, 2, 3].map((i) => randomBatch(dataInputs(c.program), vocab, i));
      const job = { seed: 3, lr: 0.05, weightDecay: 0.01, batches: batches.map((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Array.from(v)]))) };
      writeFileSync(path.join(bundle, 'page.html'), page(job));
      const got = browse(bundle, path.join(dir, 'profile'));

      const acq = await acquireDevice(c.program);
      const t = await createTrainer({ device: acq, program: c.program, seed: 3 });
      const want: number[] = [];
      for (const b of batches) want.push((await t.step(b, { lr: 0.05, weightDecay: 0.01 }))!);
      t.destroy();
      acq.device.destroy();

      const result = await got;
      expect(result.error).toBeUndefined();
      expect(result.adapter).toMatch(/^browser: /);
      const losses = result.losses as number[];
      expect(losses).toHaveLength(3);
      // Another adapter (SwiftShader, not lavapipe): equal to rounding (they have been bit-identical).
      losses.forEach((l, i) => expect(Math.abs(l - want[i]) / want[i], `step ${i + 1}: ${l} vs ${want[i]}`).toBeLessThan(1e-5));
    } finally {
      // Chromium's helper processes may still write into the profile for a moment after the
      // browser exits: retry, and leave a temporary folder behind rather than fail the test on it.
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
      } catch {
        // the OS clears tmpdir
      }
    }
  });
});
