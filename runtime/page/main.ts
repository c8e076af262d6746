// The page of a bundle (index.html): checks WebGPU, takes text, trains the bundle with start,
// pause and resume, draws the loss, shows the memory plan beside the device's bytes, and saves and
// loads checkpoints in `lomoc train`'s format, and samples text with the bundle's inference
// program (sampler.ts) every k steps and on demand. Every problem is a message on the page; none
// loses the steps already trained. `window.lomocPage.state()` reports the run, for tests.
import { lossChart } from './chart.ts';
import { fmtBytes, memoryTable, type PlanSummary } from './memory.ts';
import { noInference, PageSampler, SampleError, type Sample, type SampleRequest } from './sampler.ts';
import { lossScaleStats, Session, SessionError, type BundleStep, type Entry, type Point, type RunOptions } from './session.ts';
import { decodeText, TextError, tokenizerFor, tokensOf, type Tokens, type TokenizerName } from './text.ts';
import type { Schedule } from '../train/schedule.ts';

interface ManifestLike {
  readonly plan: { readonly peak: number; readonly byCategory: Readonly<Record<string, number>> };
  readonly step: BundleStep;
  readonly program: { readonly state: readonly { readonly name: string; readonly shape: readonly number[] }[] };
  readonly inference?: { readonly context: number; readonly plan: { readonly peak: number } };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const message = $('message');
let lastMessage = '';
function say(text: string): void {
  lastMessage = text;
  message.textContent = text;
  message.hidden = text === '';
}
const input = (id: string) => $<HTMLInputElement>(id);

let entry: Entry | undefined;
let manifest: ManifestLike | undefined;
let tokenizer: TokenizerName | undefined;
let tokens: Tokens | undefined;
let session: Session | undefined;
let gpuOk = false;
let sampler: PageSampler | undefined;
const samples: Sample[] = [];
const compared: PlanSummary[] = [];
const recentMs: number[] = [];
const chart = lossChart($('chart'));

function runOptions(): RunOptions {
  const num = (id: string, what: string, integer: boolean, min: number) => {
    const v = Number(input(id).value);
    if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) throw new SessionError(`${what} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got '${input(id).value}'`);
    return v;
  };
  const steps = num('steps', 'steps', true, 1);
  const warmup = num('warmup', 'warmup steps', true, 0);
  if (warmup > steps) throw new SessionError(`warmup steps (${warmup}) must be at most steps (${steps})`);
  return {
    lr: num('lr', 'the learning rate', false, 0), warmup, weightDecay: num('weight-decay', 'weight decay', false, 0), steps,
    evalEvery: num('eval-every', 'validation every', true, 0), seed: num('seed', 'seed', true, 0), schedule: $<HTMLSelectElement>('schedule').value as Schedule,
  };
}

function sampleRequest(): SampleRequest {
  const num = (id: string, what: string, integer: boolean, min: number) => {
    const v = Number(input(id).value);
    if (input(id).value.trim() === '' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v)))
      throw new SampleError(`${what} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got '${input(id).value}'`);
    return v;
  };
  return { prompt: input('prompt').value, temperature: num('temperature', 'the temperature', false, 0), topK: num('top-k', 'top-k', true, 0), maxTokens: num('max-tokens', 'tokens', true, 1), seed: num('sample-seed', 'the sampler seed', true, 0) };
}

function showSample(x: Sample, req: SampleRequest): void {
  const div = document.createElement('div');
  div.className = 'sample';
  div.dataset.step = String(x.step);
  div.dataset.tokens = x.tokens.join(',');
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `step ${x.step} · temperature ${req.temperature}${req.topK ? `, top-k ${req.topK}` : ''}, seed ${req.seed} · ${x.tokens.length} tokens in ${Math.round(x.ms)} ms (${x.tokensPerSecond.toFixed(1)} tokens/s)`;
  const prompt = document.createElement('span');
  prompt.className = 'prompt';
  prompt.textContent = x.prompt;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = x.text;
  div.append(meta, prompt, text);
  $('samples').append(div);
  $('samples').scrollTop = $('samples').scrollHeight; // the panel scrolls, never the page
}

/** One sample with the weights as trained so far (the initial values before a run starts); problems are messages. */
async function sampleNow(): Promise<void> {
  try {
    if (!sampler) throw new SampleError('the bundle is not loaded yet');
    const req = sampleRequest();
    const s = session;
    const seed = s?.run.seed ?? (Number(input('seed').value) || 0);
    const x = await sampler.sample(req, s ? { step: s.step, trainer: s.trainer, readParams: () => s.readParams(), seed } : { step: 0, seed });
    samples.push(x);
    showSample(x, req);
    showMemory();
  } catch (e) {
    say(e instanceof SampleError ? e.message : `could not sample: ${e instanceof Error ? e.message : String(e)} (training is not affected)`);
  }
}

function showMemory(): void {
  if (!entry || !manifest) return;
  const own: PlanSummary = { label: `${entry.model} ${entry.preset}`, optimizer: entry.optimizer, peak: manifest.plan.peak, byCategory: manifest.plan.byCategory, allocated: session?.trainer.deviceBytes ?? null };
  $('memory').innerHTML = memoryTable([own, ...compared]);
  if (manifest.inference)
    $('samples-info').textContent = `Samples come from the bundle's inference program (context ${manifest.inference.context} tokens; plan ${fmtBytes(manifest.inference.plan.peak)}` +
      `${sampler?.deviceBytes ? `, ${fmtBytes(sampler.deviceBytes)} allocated` : ''}) with the weights as trained so far, copied into its own buffers between two steps.`;
}

function showStats(extra = ''): void {
  const s = session;
  if (!s) return;
  const last = s.losses[s.losses.length - 1];
  const mean = recentMs.length ? recentMs.reduce((a, b) => a + b, 0) / recentMs.length : 0;
  const eta = mean ? Math.round(((s.run.steps - s.step) * mean) / 1000) : undefined;
  const tps = mean ? Math.round((s.batch * s.seq * 1000) / mean) : undefined;
  $('stats').textContent = `step ${s.step}/${s.run.steps}` + (last ? ` · loss ${last.loss.toFixed(4)}` : '') + (tps ? ` · ${tps.toLocaleString('en-US')} tokens/s` : '') +
    (eta !== undefined && s.step < s.run.steps ? ` · ETA ${Math.floor(eta / 60)}m${String(eta % 60).padStart(2, '0')}s` : '') + lossScaleStats(s.trainer) + extra;
  chart.update(s.losses, s.val, s.entropy);
}

function controls(): void {
  const running = session?.running ?? false;
  $<HTMLButtonElement>('start').disabled = !gpuOk || !tokens || running || (session !== undefined && session.step >= session.run.steps);
  $<HTMLButtonElement>('start').textContent = session && session.step > 0 ? 'Resume' : 'Start';
  $<HTMLButtonElement>('pause').disabled = !running;
  $<HTMLButtonElement>('save').disabled = !session || running;
  $<HTMLButtonElement>('sample-now').disabled = !gpuOk || !entry;
  // The run's identity is fixed once it has a trainer: a checkpoint records it.
  for (const id of ['lr', 'warmup', 'schedule', 'weight-decay', 'steps', 'seed']) ($(id) as HTMLInputElement).disabled = session !== undefined;
  for (const id of ['sample', 'file', 'use-paste', 'paste']) ($(id) as HTMLInputElement).disabled = session !== undefined;
}

async function useText(data: string, text: () => Promise<string> | string): Promise<void> {
  try {
    if (!tokenizer) throw new TextError('the bundle is not loaded yet');
    const t = await tokensOf(data, await text(), tokenizer, entry!.inputs.tokens.shape[1]);
    tokens = t;
    say('');
    $('data-info').textContent = `${data}: ${t.total.toLocaleString('en-US')} tokens (${tokenizer}); ${t.train.length.toLocaleString('en-US')} for training, the last ${t.val.length.toLocaleString('en-US')} held out for validation:`;
    const tail = tokenizer === 'bytes' ? new TextDecoder().decode(new Uint8Array(t.val.subarray(0, 400))) : `token ids ${Array.from(t.val.subarray(0, 40)).join(' ')} ...`;
    $('val-preview').textContent = tail;
  } catch (e) {
    say(e instanceof TextError ? e.message : `could not read the text: ${String(e)}`);
  }
  controls();
}

async function fileText(file: File): Promise<string> {
  return decodeText(file.name, new Uint8Array(await file.arrayBuffer()));
}

async function start(): Promise<void> {
  try {
    if (!session) {
      const run = runOptions();
      const trainer = await entry!.createTrainer({ gpu: navigator.gpu, seed: run.seed });
      const shapes = Object.fromEntries(manifest!.program.state.map((s) => [s.name, s.shape]));
      session = new Session(entry!, manifest!.step, trainer, tokens!, tokenizer!, run, shapes);
      showMemory();
    }
    say('');
    controls();
    const s = session;
    const run = s.train({
      step: (p) => {
        recentMs.push(p.ms);
        if (recentMs.length > 10) recentMs.shift();
        showStats();
      },
      val: (p: Point) => showStats(` · validation ${p.loss.toFixed(4)} at step ${p.step}`),
      after: async (step) => {
        const k = Number(input('sample-every').value);
        if (Number.isInteger(k) && k > 0 && step % k === 0) await sampleNow();
      },
    });
    controls();
    await run;
  } catch (e) {
    say(e instanceof SessionError || e instanceof TextError ? e.message : `training stopped: ${e instanceof Error ? e.message : String(e)} (the steps so far are kept: save a checkpoint)`);
  }
  controls();
  showStats();
}

async function save(): Promise<void> {
  try {
    const bytes = await session!.checkpoint();
    const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'checkpoint.safetensors';
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    say(`could not save: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function load(file: File): Promise<void> {
  try {
    if (!tokens) throw new SessionError('choose the text first: a checkpoint continues a run on its text');
    if (!session) {
      const run = runOptions();
      const trainer = await entry!.createTrainer({ gpu: navigator.gpu, seed: run.seed });
      const shapes = Object.fromEntries(manifest!.program.state.map((s) => [s.name, s.shape]));
      const fresh = new Session(entry!, manifest!.step, trainer, tokens, tokenizer!, run, shapes);
      try {
        await fresh.restore(file.name, new Uint8Array(await file.arrayBuffer()));
      } catch (e) {
        trainer.destroy();
        throw e;
      }
      session = fresh;
    } else {
      if (session.running) throw new SessionError('pause before loading a checkpoint');
      await session.restore(file.name, new Uint8Array(await file.arrayBuffer()));
    }
    say('');
    showMemory();
    showStats(` · loaded ${file.name}`);
  } catch (e) {
    say(e instanceof SessionError ? e.message : `could not load ${file.name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  controls();
}

async function compare(): Promise<void> {
  const url = input('compare-url').value.trim();
  try {
    const base = new URL(url.endsWith('/') ? url : url + '/', location.href);
    const r = await fetch(new URL('manifest.json', base));
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const m = (await r.json()) as ManifestLike & { model: string; preset: string };
    compared.push({ label: `${m.model} ${m.preset}`, optimizer: m.step.optimizer, peak: m.plan.peak, byCategory: m.plan.byCategory, allocated: null });
    showMemory();
    say('');
  } catch (e) {
    say(`could not open the bundle at '${url}': ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function checkGpu(): Promise<void> {
  const el = $('gpu');
  if (!('gpu' in navigator) || !navigator.gpu) {
    el.textContent = 'WebGPU is missing: this browser has no navigator.gpu. Use a browser with WebGPU enabled (Chrome or Edge 113+, or a flag in others).';
    return;
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) {
    el.textContent = 'WebGPU is present but no adapter was found: the browser offers no GPU (or its software fallback) to this page.';
    return;
  }
  const info = adapter.info;
  el.textContent = `WebGPU: ${info?.description || info?.vendor || 'an adapter'} (${info?.architecture || 'unknown architecture'}); the bundle needs ${fmtBytes(entry?.planBytes ?? 0)} on the device.`;
  gpuOk = true;
}

async function boot(): Promise<void> {
  try {
    entry = (await import(new URL('./index.js', location.href).href)) as Entry;
    const r = await fetch('manifest.json');
    manifest = (await r.json()) as ManifestLike;
    const st = manifest.step;
    const scale = st.lossScale && (st.lossScale.kind === 'dynamic' ? `, loss scale dynamic (x2 after ${st.lossScale.interval} clean steps)` : `, loss scale ${st.lossScale.scale}`);
    $('title').textContent = `${entry.model} ${entry.preset} · ${entry.optimizer}${st.clipNorm ? `, clip-norm ${st.clipNorm}${st.clipMode === 'previous' ? ' (one pass)' : ''}` : ''}${scale ?? ''}`;
    tokenizer = tokenizerFor(entry.config.vocab);
    sampler = new PageSampler(entry, tokenizer, manifest.inference);
    showMemory();
    if (!manifest.inference) $('samples-info').textContent = noInference;
  } catch (e) {
    say(e instanceof TextError ? e.message : `could not load the bundle: ${e instanceof Error ? e.message : String(e)}`);
  }
  await checkGpu();
  controls();
}

$('sample').addEventListener('click', () => useText('moby-dick', async () => {
  const r = await fetch('data/moby-dick.txt');
  if (!r.ok) throw new TextError(`the sample text is missing from the bundle (data/moby-dick.txt: ${r.status})`);
  return r.text();
}));
input('file').addEventListener('change', () => {
  const f = input('file').files?.[0];
  if (f) void useText(f.name, () => fileText(f));
});
$('use-paste').addEventListener('click', () => useText('pasted', () => $<HTMLTextAreaElement>('paste').value));
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (f && !session) void useText(f.name, () => fileText(f));
});
$('start').addEventListener('click', () => void start());
$('pause').addEventListener('click', () => session?.pause());
$('save').addEventListener('click', () => void save());
input('load').addEventListener('change', () => {
  const f = input('load').files?.[0];
  if (f) void load(f);
  input('load').value = '';
});
$('compare').addEventListener('click', () => void compare());
$('sample-now').addEventListener('click', () => void sampleNow());

(window as unknown as { lomocPage: unknown }).lomocPage = {
  state: () => ({
    step: session?.step ?? 0, losses: session?.losses ?? [], val: session?.val ?? [], running: session?.running ?? false,
    message: lastMessage, deviceBytes: session?.trainer.deviceBytes ?? null, gpu: gpuOk, data: tokens?.data ?? null,
    lossScale: session?.trainer.lossScale ?? null, stats: $('stats').textContent,
    samples: samples.map((x) => ({ step: x.step, tokens: x.tokens, text: x.text, tokensPerSecond: x.tokensPerSecond })),
  }),
};
void boot();
