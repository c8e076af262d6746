// The bundle's page in a real browser: Debian's chromium, headless, WebGPU on SwiftShader, driven by
// playwright-core, opening the page from `lomoc serve`. It trains to the same losses as `lomoc
// train` on the same bundle, text and seed in Node (lavapipe); its checkpoints resume in `lomoc
// train --resume` and the reverse; each bad input is a message on the page that loses nothing; a
// screenshot shows the chart and the memory panel; it samples with the bundle's inference program
// what `lomoc generate` samples from the page's checkpoint, without changing a loss; and the page
// loads nothing from outside the bundle folder. A loss-scaling bundle shows its scale and skipped steps.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { serveBundle, type Served } from '../../cli/serve.ts';
import { loadCheckpoint } from '../../runtime/checkpoint/node.ts';
import { encodeSafetensors } from '../../runtime/checkpoint/safetensors.ts';

interface PageState {
  step: number;
  losses: { step: number; loss: number }[];
  val: { step: number; loss: number }[];
  running: boolean;
  message: string;
  deviceBytes: number | null;
  gpu: boolean;
  data: string | null;
  samples: { step: number; tokens: number[]; text: string; tokensPerSecond: number }[];
  lossScale: { scale: number; cleanSteps: number; skipped: number } | null;
  stats: string;
}

function chromiumPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error("chromium is not installed: npm test's set-up installs Debian's chromium (or apt-get install -y chromium)");
  return found.stdout.trim();
}

const root = mkdtempSync(path.join(tmpdir(), 'lomoc-page-'));
const bundle = path.join(root, 'gpt');
let served: Served;
let browser: Browser;
const outside: string[] = [];

async function lomoc(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  const c = await lomoc('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--target', 'cpu', '--out', bundle);
  expect(c.code, c.err).toBe(0);
  served = await serveBundle(bundle, 0);
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await served?.close();
  rmSync(root, { recursive: true, force: true });
});

async function open(init?: () => void): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
  if (init) await page.addInitScript(init);
  page.on('request', (r) => {
    if (!r.url().startsWith(served.url) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) outside.push(r.url());
  });
  await page.goto(served.url);
  await page.waitForFunction(() => document.getElementById('gpu')!.textContent !== 'Checking WebGPU…', null, { timeout: 60_000 });
  return page;
}

const state = (page: Page) => page.evaluate(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state());
const messageOf = async (page: Page) => (await state(page)).message;

async function setRun(page: Page, run: Record<string, string>): Promise<void> {
  for (const [id, v] of Object.entries(run)) await page.fill(`#${id}`, v);
}

async function trainTo(page: Page, steps: number): Promise<PageState> {
  await page.click('#start');
  await page.waitForFunction((n) => {
    const s = (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state();
    return (s.step >= n && !s.running) || s.message !== '';
  }, steps, { timeout: 120_000 });
  return state(page);
}

const run = { lr: '0.05', steps: '4', 'eval-every': '2', seed: '3' };

/** Clicks Sample with these settings and waits for the sample (or a message); the tokens are read from the DOM. */
async function sampleOn(page: Page, settings: Record<string, string>): Promise<{ tokens: number[]; step: number; message: string }> {
  await setRun(page, settings);
  const before = (await state(page)).samples.length;
  await page.click('#sample-now');
  await page.waitForFunction((n) => {
    const s = (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state();
    return s.samples.length > n || s.message !== '';
  }, before, { timeout: 120_000 });
  const last = page.locator('#samples .sample').last();
  const message = await messageOf(page);
  if (message) return { tokens: [], step: -1, message };
  const ids = (await last.getAttribute('data-tokens')) ?? '';
  return { tokens: ids === '' ? [] : ids.split(',').map(Number), step: Number(await last.getAttribute('data-step')), message };
}
const greedy = { prompt: 'Ca', temperature: '0', 'top-k': '0', 'max-tokens': '6', 'sample-seed': '0' };
const nodeArgs = ['--data', 'moby-dick', '--lr', '0.05', '--eval-every', '2', '--seed', '3', '--json'];

describe('the page of a bundle, in headless Chromium', () => {
  it('trains to the losses of lomoc train on the same bundle, text and seed; its checkpoint resumes in Node and a Node checkpoint in the page', async () => {
    const page = await open();
    expect((await state(page)).gpu).toBe(true);
    await page.click('#sample');
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().data === 'moby-dick', null, { timeout: 60_000 });
    await setRun(page, run);
    const got = await trainTo(page, 4);
    expect(got.message).toBe('');

    const node = await lomoc('train', bundle, ...nodeArgs, '--steps', '4', '--save', path.join(root, 'node4'));
    expect(node.code, node.err).toBe(0);
    const want = JSON.parse(node.out) as { losses: { step: number; loss: number }[]; val: { step: number; loss: number }[] };
    expect(got.losses.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    // SwiftShader (the page) against lavapipe (Node): equal to f32 rounding.
    got.losses.forEach((p, i) => expect(Math.abs(p.loss - want.losses[i].loss) / want.losses[i].loss, `step ${p.step}`).toBeLessThan(1e-5));
    got.val.forEach((p, i) => expect(Math.abs(p.loss - want.val[i].loss) / want.val[i].loss, `validation at ${p.step}`).toBeLessThan(1e-5));
    expect(got.deviceBytes).toBeGreaterThan(0);

    // The page's checkpoint, downloaded, resumes in lomoc train (constant schedule: on to step 6).
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    const dir = path.join(root, 'from-page');
    mkdirSync(dir);
    await download.saveAs(path.join(dir, 'checkpoint.safetensors'));
    const saved = loadCheckpoint(path.join(dir, 'checkpoint.safetensors'));
    expect(saved.metadata.step).toBe('4');
    const nodeSaved = loadCheckpoint(path.join(root, 'node4', 'checkpoint.safetensors'));
    expect(Object.keys(saved.tensors).sort()).toEqual(Object.keys(nodeSaved.tensors).sort());
    expect(saved.metadata.run).toBe(nodeSaved.metadata.run);
    writeFileSync(path.join(root, 'from-page-4.safetensors'), readFileSync(path.join(dir, 'checkpoint.safetensors')));
    const resumed = await lomoc('train', bundle, ...nodeArgs, '--steps', '6', '--resume', dir, '--save', dir);
    expect(resumed.code, resumed.err).toBe(0);
    const after = JSON.parse(resumed.out) as { losses: { step: number; loss: number }[] };
    expect(after.losses.map((p) => p.step)).toEqual([5, 6]);

    // Greedy sampling on the page (the weights after step 4) equals lomoc generate on the page's checkpoint, token for token.
    const onPage = await sampleOn(page, greedy);
    expect(onPage.message).toBe('');
    expect(onPage.step).toBe(4);
    expect(onPage.tokens).toHaveLength(6); // the prompt's 2 bytes and 6 fill the context of 8
    const inNode = await lomoc('generate', bundle, '--init', path.join(root, 'from-page-4.safetensors'), '--prompt', 'Ca', '--temperature', '0', '--max-tokens', '6', '--json');
    expect(inNode.code, inNode.err).toBe(0);
    expect(onPage.tokens).toEqual((JSON.parse(inNode.out) as { tokens: number[] }).tokens);
    expect(await page.textContent('#samples .sample:last-child .text')).toBe(new TextDecoder().decode(Uint8Array.from(onPage.tokens)));
    const sampled = await sampleOn(page, { ...greedy, temperature: '0.9', 'top-k': '20', 'sample-seed': '5' });
    const sampledNode = await lomoc('generate', bundle, '--init', path.join(root, 'from-page-4.safetensors'), '--prompt', 'Ca', '--temperature', '0.9', '--top-k', '20', '--seed', '5', '--max-tokens', '6', '--json');
    expect(sampled.tokens).toEqual((JSON.parse(sampledNode.out) as { tokens: number[] }).tokens);
    const rate = (await state(page)).samples.map((x) => x.tokensPerSecond);
    console.log(`page sampling (SwiftShader, gpt tiny bytes, 6 tokens): ${rate.map((r) => r.toFixed(1)).join(', ')} tokens/s`);

    // ... and the Node checkpoint at step 6 continues in a fresh page, to the losses Node gives.
    const page2 = await open();
    await page2.click('#sample');
    await page2.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().data === 'moby-dick', null, { timeout: 60_000 });
    await setRun(page2, { ...run, steps: '8', ...greedy, 'sample-every': '1' });
    await page2.setInputFiles('#load', path.join(dir, 'checkpoint.safetensors'));
    await page2.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().step === 6, null, { timeout: 60_000 });
    const cont = await trainTo(page2, 8);
    expect(cont.message).toBe('');
    const nodeCont = await lomoc('train', bundle, ...nodeArgs, '--steps', '8', '--resume', dir);
    expect(nodeCont.code, nodeCont.err).toBe(0);
    const wantCont = (JSON.parse(nodeCont.out) as { losses: { step: number; loss: number }[] }).losses;
    const pageCont = cont.losses.filter((p) => p.step > 6);
    expect(pageCont.map((p) => p.step)).toEqual([7, 8]);
    // Sampling every step (greedy, after steps 7 and 8) changed no loss: they equal Node's, which never sampled.
    pageCont.forEach((p, i) => expect(Math.abs(p.loss - wantCont[i].loss) / wantCont[i].loss).toBeLessThan(1e-5));
    expect((await state(page2)).samples.map((x) => x.step)).toEqual([7, 8]);
    expect(await page2.locator('#samples .sample').count()).toBe(2);

    // The screenshot after training shows the chart (its training-loss blue) and the memory panel.
    const shot = PNG.sync.read(await page.screenshot());
    let blue = 0;
    for (let i = 0; i < shot.data.length; i += 4) if (Math.abs(shot.data[i] - 0x2f) < 24 && Math.abs(shot.data[i + 1] - 0x6f) < 24 && Math.abs(shot.data[i + 2] - 0xdb) < 24) blue++;
    expect(blue).toBeGreaterThan(200);
    expect(await page.textContent('#memory')).toMatch(/plan's peak.*allocated on the device/s);
    // LOMOC_PAGE_SHOT=FILE keeps the resumed page, samples included, as the picture docs/page.md shows.
    if (process.env.LOMOC_PAGE_SHOT) await page2.screenshot({ path: process.env.LOMOC_PAGE_SHOT, fullPage: true });
    await page.close();
    await page2.close();
  }, 300_000);

  it('bad input is a message on the page naming the problem, and the run trained so far is kept', async () => {
    const page = await open();
    const file = (name: string, bytes: Uint8Array | string) => {
      const f = path.join(root, name);
      writeFileSync(f, bytes);
      return f;
    };
    await page.setInputFiles('#file', file('empty.txt', ''));
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().message !== '');
    expect(await messageOf(page)).toBe("the file 'empty.txt' is empty");
    await page.setInputFiles('#file', file('image.bin', Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0x00)));
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().message.includes('image.bin'));
    expect(await messageOf(page)).toBe("the file 'image.bin' is not UTF-8 text (invalid byte 0x89 at offset 0)");
    await page.setInputFiles('#file', file('short.txt', 'Call me Ishmael.'));
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().message.includes('short.txt'));
    expect(await messageOf(page)).toBe('the text (short.txt) gives 16 tokens: too few for one batch window of 9 tokens in its last 10% (about 90 tokens or more are needed)');

    // A usable text, a few steps, then a checkpoint of another model: a message, and the run goes on.
    await page.click('#sample');
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().data === 'moby-dick', null, { timeout: 60_000 });
    await setRun(page, { ...run, steps: '2' });
    expect((await trainTo(page, 2)).step).toBe(2);
    const foreign = encodeSafetensors({ w: { shape: [1], data: Float32Array.of(1) } }, {
      format: 'lomoc-checkpoint/1', step: '1', run: JSON.stringify({ model: 'llama', optimizer: 'adamw' }),
    });
    await page.setInputFiles('#load', { name: 'other.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(foreign) });
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().message.includes('other.safetensors'));
    expect(await messageOf(page)).toMatch(/^other\.safetensors was written by another run: model gpt \(the checkpoint's: llama\); config .*; optimizer lomo \(the checkpoint's: adamw\); /);
    await page.setInputFiles('#load', { name: 'junk.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('not a checkpoint at all') });
    await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().message.startsWith('junk.safetensors'));
    expect(await messageOf(page)).toMatch(/^junk\.safetensors: /);
    const s = await state(page);
    expect(s.step).toBe(2);
    expect(s.losses).toHaveLength(2);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    expect((await download.createReadStream()) !== null).toBe(true);
    await page.close();
  }, 300_000);

  it('without WebGPU, or with a bundle whose limits the adapter lacks, the page says what is missing', async () => {
    const noGpu = await open(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });
    });
    expect(await noGpu.textContent('#gpu')).toBe('WebGPU is missing: this browser has no navigator.gpu. Use a browser with WebGPU enabled (Chrome or Edge 113+, or a flag in others).');
    expect(await noGpu.isDisabled('#start')).toBe(true);
    await noGpu.close();

    // A copy of the bundle that asks for more workgroup memory than any adapter grants.
    const big = path.join(root, 'big');
    const c = await lomoc('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--target', 'cpu', '--out', big);
    expect(c.code, c.err).toBe(0);
    const m = JSON.parse(readFileSync(path.join(big, 'manifest.json'), 'utf8'));
    m.program.limits.maxComputeWorkgroupStorageSize = 2 ** 30;
    writeFileSync(path.join(big, 'manifest.json'), JSON.stringify(m));
    const other = await serveBundle(big, 0);
    try {
      const page = await browser.newPage();
      await page.goto(other.url);
      await page.waitForFunction(() => document.getElementById('gpu')!.textContent !== 'Checking WebGPU…', null, { timeout: 60_000 });
      await page.click('#sample');
      await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().data === 'moby-dick', null, { timeout: 60_000 });
      await page.click('#start');
      await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().message !== '', null, { timeout: 60_000 });
      expect(await messageOf(page)).toMatch(/maxComputeWorkgroupStorageSize: needs 1073741824, has \d+/);
      await page.close();
    } finally {
      await other.close();
    }
  }, 300_000);

  it('a sample from a bundle without an inference program is a message naming it, and training still works', async () => {
    const old = path.join(root, 'old');
    cpSync(bundle, old, { recursive: true });
    // A manifest as bundles were written before they carried the inference program.
    const m = JSON.parse(readFileSync(path.join(old, 'manifest.json'), 'utf8'));
    delete m.inference;
    writeFileSync(path.join(old, 'manifest.json'), JSON.stringify(m));
    const other = await serveBundle(old, 0);
    try {
      const page = await browser.newPage();
      await page.goto(other.url);
      await page.waitForFunction(() => document.getElementById('gpu')!.textContent !== 'Checking WebGPU…', null, { timeout: 60_000 });
      const none = "this bundle carries no inference program, so the page cannot sample text from it: compile it again with lomoc compile (a model must name its logits with output('logits', ...))";
      expect(await page.textContent('#samples-info')).toBe(none);
      expect((await sampleOn(page, greedy)).message).toBe(none);
      await page.click('#sample');
      await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().data === 'moby-dick', null, { timeout: 60_000 });
      await setRun(page, { ...run, steps: '1' });
      await page.click('#start');
      await page.waitForFunction(() => {
        const s = (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state();
        return s.step >= 1 && !s.running;
      }, null, { timeout: 120_000 });
      expect((await state(page)).message).toBe('');
      await page.close();
    } finally {
      await other.close();
    }
  }, 300_000);

  it('a loss-scaling bundle (f16 packed): the page shows the scale and the steps skipped, and trains the losses of lomoc train', async () => {
    const scaled = path.join(root, 'scaled');
    const c = await lomoc('compile', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--optimizer', 'lomo', '--target', 'cpu', '--dtype', 'f16', '--clip-norm', '1',
      '--loss-scale', 'dynamic', '--loss-scale-interval', '2', '--out', scaled);
    expect(c.code, c.err).toBe(0);
    const other = await serveBundle(scaled, 0);
    try {
      const page = await browser.newPage();
      await page.goto(other.url);
      await page.waitForFunction(() => document.getElementById('gpu')!.textContent !== 'Checking WebGPU…', null, { timeout: 60_000 });
      expect(await page.textContent('#title')).toBe('gpt tiny · lomo, clip-norm 1, loss scale dynamic (x2 after 2 clean steps)');
      await page.click('#sample');
      await page.waitForFunction(() => (window as unknown as { lomocPage: { state(): PageState } }).lomocPage.state().data === 'moby-dick', null, { timeout: 60_000 });
      await setRun(page, { lr: '0.05', steps: '3', 'eval-every': '0', seed: '3' });
      const got = await trainTo(page, 3);
      expect(got.message).toBe('');
      // 65536 overflows the f16 seed: step 1 is skipped at 32768; steps 2 and 3 are clean, so it doubles.
      expect(got.lossScale).toEqual({ scale: 65536, cleanSteps: 0, skipped: 1 });
      expect(got.stats).toContain(' · loss scale 65536, 1 step skipped');
      const node = await lomoc('train', scaled, '--data', 'moby-dick', '--lr', '0.05', '--seed', '3', '--steps', '3', '--json');
      expect(node.code, node.err).toBe(0);
      expect(got.losses).toEqual((JSON.parse(node.out) as { losses: unknown[] }).losses);
      await page.close();
    } finally {
      await other.close();
    }
  }, 300_000);

  it('loads nothing from outside the bundle folder', () => {
    expect(outside).toEqual([]);
  });
});
