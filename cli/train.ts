// `lomoc train <model.ts|bundle-dir>`: compile the training step to WGSL (or load a bundle that
// `lomoc compile` wrote, whose manifest fixes the step's options) and train it on WebGPU on real text
// (Moby Dick, the State of the Union addresses, or a UTF-8 file), tokenised with GPT-2's BPE or
// as bytes. Shows a live bar on a terminal and a line per step elsewhere (cli/train-progress.ts),
// evaluates a held-out validation split every k steps, logs JSON lines (which `lomoc plot` draws),
// draws the loss curve to an SVG, and saves checkpoints in safetensors that
// `--resume` continues exactly (the same batches, losses and parameters as a run never stopped).
//
// Validation loss runs the training program itself with lr = 0 and weight decay = 0, which leaves
// every parameter bit for bit as it was (p - 0 * u = p); AdamW's moments (and any other optimizer
// state) would still move, so the state is read before the validation batches and written back
// after them.
import { mkdirSync, appendFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compileProgram, idRanges } from '../compiler/compile-program.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import { loadModel } from '../compiler/load-model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import type { StepConfig } from '../compiler/pipeline.ts';
import { loadCheckpoint, saveCheckpoint } from '../runtime/checkpoint/node.ts';
import { conversionOf, floatValues } from '../runtime/checkpoint/float-tensor.ts';
import type { Decoded } from '../runtime/checkpoint/safetensors.ts';
import { SafetensorsError, toFloat32, type TensorInput } from '../runtime/checkpoint/safetensors.ts';
import { BundleError } from '../runtime/bundle/load-bundle.ts';
import type { Manifest } from '../contract/manifest.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import type { StepProgram, StorageDType } from '../contract/program.ts';
import { NoAdapterError } from '../runtime/webgpu/device.ts';
import { DeviceLostError } from '../runtime/webgpu/guard.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { createTrainer, dataInputs, type Trainer } from '../runtime/webgpu/trainer.ts';
import { optimizerSpec, optionChecks, parseCommandArgs, resolveTarget, stepConfigFrom, stepOptionSpecs, targetChoice, type CommandSpec, type OptionValue, type TargetChoice } from './args.ts';
import { fmtBytes } from './graph.ts';
import { lossCurveSvg, type Point } from './loss-svg.ts';
import { printWarnings, type Io } from './report.ts';
import { createProgress } from './train-progress.ts';
import { lrAt, type Schedule } from '../runtime/train/schedule.ts';
import { checkpointFormat, identityDiff, runIdentity as runIdentityOf, statePrefix } from '../runtime/train/run-record.ts';
import { loadText, split, tokenize, tokenizerVocab, trainBatch, unigramEntropy, valBatches, type TokenizerName } from './train-data.ts';

export const trainSpec: CommandSpec = {
  name: 'train',
  summary: 'Train a model on real text on WebGPU, with validation, logs, a loss curve and checkpoints.',
  positionals: [{ name: 'model.ts|bundle-dir', help: 'a model file whose default export is model(...) with i32 inputs tokens and targets [batch, seq], or a bundle folder written by lomoc compile' }],
  options: {
    ...stepOptionSpecs,
    optimizer: optimizerSpec,
    lr: { type: 'string', value: 'X', help: 'peak learning rate (default 0.01)' },
    'lr-schedule': { type: 'string', value: 'NAME', help: 'constant, linear or cosine decay to 0 over --steps (default constant)' },
    warmup: { type: 'string', value: 'N', help: 'rise linearly to --lr over the first N steps, then the schedule over the rest (default 0)' },
    'weight-decay': { type: 'string', value: 'X', help: 'weight decay (default 0)' },
    data: { type: 'string', value: 'NAME|FILE', help: 'moby-dick (default), sotu, or a UTF-8 text file' },
    tokenizer: { type: 'string', value: 'NAME', help: "bytes (default; vocab 256) or gpt2 (GPT-2's BPE, vocab 50257)" },
    steps: { type: 'string', value: 'N', help: 'train until step N (required)' },
    'eval-every': { type: 'string', value: 'K', help: 'validation loss every K steps and at the end (default: at the end only)' },
    save: { type: 'string', value: 'DIR', help: 'write DIR/checkpoint.safetensors (and the log and loss curve there)' },
    'save-every': { type: 'string', value: 'K', help: 'with --save: a checkpoint every K steps (default: at the end only)' },
    resume: { type: 'string', value: 'DIR', help: 'continue from DIR/checkpoint.safetensors, exactly (same options required)' },
    init: { type: 'string', value: 'FILE', help: 'start from the weights in a safetensors file, by name' },
    'stop-at': { type: 'string', value: 'N', help: 'stop after step N as if interrupted (the schedule still runs over --steps)' },
    log: { type: 'string', value: 'FILE', help: 'JSON-lines log (default DIR/log.jsonl with --save)' },
    plot: { type: 'string', value: 'FILE', help: 'loss curve SVG (default DIR/loss.svg with --save)' },
    seed: { type: 'string', value: 'N', help: 'seed of the param init and the batch stream (default 0)' },
    json: { type: 'boolean', help: 'print one JSON object on stdout at the end instead of progress lines' },
  },
  examples: [
    'lomoc train models/gpt.ts --preset small --data moby-dick --tokenizer bytes --optimizer adamw --lr 0.003 --steps 150 --eval-every 50 --save out/moby',
    'lomoc train models/gpt.ts --preset small --steps 300 --resume out/moby',
    'lomoc train out/gpt-small --data moby-dick --steps 150',
    'lomoc train models/gpt.ts --preset small --set vocab=50257 --tokenizer gpt2 --data sotu --optimizer lomo --steps 100 --init out/moby/checkpoint.safetensors',
  ],
};


export interface TrainRequest {
  readonly file: string;
  /** The step options given on the command line (a bundle fixes them all: giving one is an error). */
  readonly stepOptions?: readonly string[];
  readonly step: StepConfig;
  /** Kernel shapes for a model file: auto picks from the adapter (targetForAdapter). */
  readonly target: TargetChoice;
  readonly checkpointText: string;
  readonly lr: number;
  readonly schedule: Schedule;
  /** Steps of linear warmup before the schedule (0: none). */
  readonly warmup: number;
  readonly weightDecay: number;
  readonly data: string;
  readonly tokenizer: TokenizerName;
  readonly steps: number;
  readonly stopAt: number;
  readonly evalEvery?: number;
  readonly save?: string;
  readonly saveEvery?: number;
  readonly resume?: string;
  readonly init?: string;
  readonly log?: string;
  readonly plot?: string;
  readonly seed: number;
  readonly json: boolean;
}

const { integer, number, oneOf, error: optionError } = optionChecks('train');

/** The options that change the compiled step: a bundle was compiled with them and fixes them. */
const bundleFixed = ['optimizer', 'checkpoint', 'clip-norm', 'clip-value', 'dtype', 'batch', 'seq', 'set', 'preset', 'target'] as const;

/** What the bundle fixed an option to, for the error. */
function bundleValue(m: Manifest, option: (typeof bundleFixed)[number]): string {
  const cfg = (k: string) => (k in m.config ? String(m.config[k]) : '(none)');
  switch (option) {
    case 'optimizer': return `optimizer ${m.step.optimizer}`;
    case 'checkpoint': return `checkpoint ${m.step.checkpoint}`;
    case 'clip-norm': return `clip-norm ${m.step.clipNorm ?? '(none)'}`;
    case 'clip-value': return `clip-value ${m.step.clipValue ?? '(none)'}`;
    case 'dtype': return `dtype ${m.step.dtype}`;
    case 'batch': return `batch ${cfg('batch')}`;
    case 'seq': return `seq ${cfg('seq')}`;
    case 'set': return `config ${Object.entries(m.config).map(([k, v]) => `${k}=${v}`).join(' ')}`;
    case 'preset': return `preset ${m.preset}`;
    case 'target': return `target ${m.step.target}`;
  }
}

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/** The compiled step to train: compiled from a model file now, or loaded from a bundle folder. */
interface Source {
  readonly name: string;
  readonly preset: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly program: StepProgram;
  readonly checkpointDetail: string;
  /** The smallest id range of tokens and targets, where the compiler knows it. */
  readonly idRange: number;
  /** The step options in the checkpoint's identity and metadata. */
  readonly step: TrainRequest['step'];
  readonly checkpointText: string;
  readonly bundle?: string;
  /** The kernel target and why, for the adapter line: "gpu (auto: hardware adapter)". */
  readonly target: string;
}

async function trainSource(req: TrainRequest, io: Io): Promise<Source> {
  if (!isDir(req.file)) {
    const def = await loadModel(req.file);
    // The adapter first: the kernel shapes depend on it.
    const { target, how } = resolveTarget(req.target, req.target === 'auto' ? (await probeAdapter())?.adapter : undefined);
    const c = compileProgram(def, { ...req.step, target });
    printWarnings(io, c.warnings);
    const ranges = idRanges(c.step);
    return {
      name: def.name, preset: req.step.preset ?? def.defaultPreset, config: c.config, program: c.program, checkpointDetail: c.checkpointDetail,
      idRange: Math.min(ranges.tokens ?? Infinity, ranges.targets ?? Infinity), step: req.step, checkpointText: req.checkpointText,
      target: `${target} (${how})`,
    };
  }
  let b;
  try {
    b = await loadBundleDir(req.file);
  } catch (e) {
    if (e instanceof BundleError) throw new LomocError(`lomoc train: ${e.message}`);
    throw e;
  }
  const m = b.manifest;
  const given = req.stepOptions ?? [];
  if (given.length) {
    const o = given[0] as (typeof bundleFixed)[number];
    throw new LomocError(`lomoc train: option '--${o}' cannot be given with a bundle: the bundle ${req.file} fixes it (compiled with ${bundleValue(m, o)}); compile another bundle to change it`);
  }
  return {
    name: m.model, preset: m.preset, config: m.config, program: b.program, checkpointDetail: m.step.checkpoint, idRange: Infinity,
    step: { preset: m.preset, sets: [], optimizer: m.step.optimizer, checkpoint: { kind: 'none' }, clipNorm: m.step.clipNorm ?? undefined, clipValue: m.step.clipValue ?? undefined, dtype: m.step.dtype },
    checkpointText: m.step.checkpoint, bundle: req.file, target: `${m.step.target} (the bundle's)`,
  };
}

export function trainRequest(positionals: readonly string[], values: Readonly<Record<string, OptionValue>>): TrainRequest {
  const str = (k: string) => values[k] as string | undefined;
  if (str('steps') === undefined) throw new LomocError("lomoc train: option '--steps N' is required");
  const checkpointText = str('checkpoint') ?? 'none';
  const steps = integer(str('steps')!, 'steps', 1);
  const stopAt = str('stop-at') === undefined ? steps : integer(str('stop-at')!, 'stop-at', 1);
  if (stopAt > steps) throw optionError('stop-at', `a step at most --steps (${steps})`, str('stop-at')!);
  const warmup = str('warmup') === undefined ? 0 : integer(str('warmup')!, 'warmup', 0);
  if (warmup > steps) throw optionError('warmup', `a number of steps at most --steps (${steps})`, str('warmup')!);
  if (str('save-every') !== undefined && str('save') === undefined) throw new LomocError("lomoc train: option '--save-every' needs '--save DIR'");
  return {
    file: positionals[0],
    stepOptions: bundleFixed.filter((k) => values[k] !== undefined),
    step: stepConfigFrom('train', values),
    checkpointText,
    target: targetChoice('train', str('target')),
    lr: str('lr') === undefined ? 0.01 : number(str('lr')!, 'lr'),
    schedule: oneOf<Schedule>(['constant', 'linear', 'cosine'], str('lr-schedule') ?? 'constant', 'lr-schedule'),
    warmup,
    weightDecay: str('weight-decay') === undefined ? 0 : number(str('weight-decay')!, 'weight-decay', true),
    data: str('data') ?? 'moby-dick',
    tokenizer: oneOf<TokenizerName>(['gpt2', 'bytes'], str('tokenizer') ?? 'bytes', 'tokenizer'),
    steps,
    stopAt,
    evalEvery: str('eval-every') === undefined ? undefined : integer(str('eval-every')!, 'eval-every', 1),
    save: str('save'),
    saveEvery: str('save-every') === undefined ? undefined : integer(str('save-every')!, 'save-every', 1),
    resume: str('resume'),
    init: str('init'),
    log: str('log') ?? (str('save') !== undefined ? join(str('save')!, 'log.jsonl') : undefined),
    plot: str('plot') ?? (str('save') !== undefined ? join(str('save')!, 'loss.svg') : undefined),
    seed: str('seed') === undefined ? 0 : integer(str('seed')!, 'seed', 0),
    json: values.json === true,
  };
}

export { lrAt } from '../runtime/train/schedule.ts';

export interface TrainResult {
  readonly adapter: string;
  readonly model: string;
  readonly preset: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly optimizer: OptimizerName;
  readonly tokens: { readonly train: number; readonly val: number };
  readonly unigramEntropy: number;
  /** Training loss of each step run by this process (resumed runs: from the step after the checkpoint). */
  readonly losses: readonly Point[];
  readonly val: readonly Point[];
  readonly params: Record<string, Float32Array>;
  readonly deviceBytes: number;
  readonly tokensPerSecond: number;
  readonly files: { readonly checkpoint?: string; readonly log?: string; readonly plot?: string };
}

const format = checkpointFormat;

/** What a resumed run must share with its checkpoint for the continuation to be exact. */
function runIdentity(req: TrainRequest, src: Source): Record<string, string> {
  const s = src.step;
  return runIdentityOf({
    model: src.name, config: src.config, optimizer: s.optimizer, checkpoint: src.checkpointText, clipNorm: s.clipNorm, clipValue: s.clipValue,
    dtype: s.dtype, lr: req.lr, schedule: req.schedule, warmup: req.warmup, weightDecay: req.weightDecay, data: req.data,
    tokenizer: req.tokenizer, seed: req.seed, steps: req.steps,
  });
}

/** --init: every param found with its shape is written; missing and unexpected ones are warnings, mis-shaped ones an error. */
function initFrom(file: string, ckpt: Decoded, trainer: Trainer, params: readonly { name: string; shape: readonly number[]; dtype: StorageDType }[], io: Io): number {
  const names = new Set(params.map((p) => p.name));
  const missing: string[] = [];
  const bad: string[] = [];
  const values: Record<string, Float32Array> = {};
  const converted = new Map<string, string[]>();
  for (const p of params) {
    const t = ckpt.tensors[p.name];
    if (!t) {
      missing.push(p.name);
      continue;
    }
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) bad.push(`'${p.name}' is [${t.shape.join(', ')}] in the file, the model's is [${p.shape.join(', ')}]`);
    else if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') bad.push(`'${p.name}' is ${t.dtype} in the file, expected F32, F16 or BF16`);
    else {
      values[p.name] = floatValues(p.name, t);
      const how = conversionOf(t, p.dtype);
      if (how) converted.set(how, [...(converted.get(how) ?? []), p.name]);
    }
  }
  const unexpected = Object.keys(ckpt.tensors).filter((n) => !names.has(n) && !n.startsWith(statePrefix));
  if (bad.length) throw new LomocError(`lomoc train: --init ${file}: ${bad.length} mis-shaped tensor${bad.length > 1 ? 's' : ''}: ${bad.join('; ')}`);
  if (missing.length) io.err(`warning: --init ${file}: ${missing.length} param${missing.length > 1 ? 's' : ''} not in the file keep their initial values: ${missing.join(', ')}`);
  if (unexpected.length) io.err(`warning: --init ${file}: ${unexpected.length} tensor${unexpected.length > 1 ? 's' : ''} in the file match no param and are ignored: ${unexpected.join(', ')}`);
  for (const [how, names] of converted)
    io.err(`note: --init ${file}: ${names.length} tensor${names.length > 1 ? 's' : ''} converted from ${how} (the run's --dtype): ${names.join(', ')}`);
  trainer.writeParams(values);
  return Object.keys(values).length;
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

export async function trainSteps(req: TrainRequest, io: Io): Promise<TrainResult> {
  const say = (t: string) => req.json || io.out(t);
  const c = await trainSource(req, io);
  const def = { name: c.name };
  const preset = c.preset;
  const slots = dataInputs(c.program);
  const tok = slots.find((s) => s.name === 'tokens');
  const tgt = slots.find((s) => s.name === 'targets');
  if (!tok || !tgt || slots.length !== 2 || tok.dtype !== 'i32' || tgt.dtype !== 'i32' || tok.shape.length !== 2 || tok.shape.join() !== tgt.shape.join())
    throw new LomocError(`lomoc train: model '${def.name}' must take exactly two i32 inputs 'tokens' and 'targets' of shape [batch, seq]; it takes ${slots.map((s) => `'${s.name}' ${s.dtype} [${s.shape.join(', ')}]`).join(', ')}`);
  const [batch, seq] = tok.shape;
  const need = tokenizerVocab[req.tokenizer];
  const range = c.idRange;
  const vocabKey = 'vocab' in c.config ? Number(c.config.vocab) : undefined;
  if (vocabKey !== undefined ? vocabKey !== need : range < need)
    throw new LomocError(`lomoc train: the ${req.tokenizer} tokenizer gives ${need} ids, but model '${def.name}' (preset ${preset}) has vocab ${vocabKey ?? range}: add --set vocab=${need}`);

  const text = loadText(req.data);
  const ids = await tokenize(text, req.tokenizer);
  const { train, val } = split(ids, seq, req.data);
  if (train.length < seq + 1) throw new LomocError(`lomoc train: --data '${req.data}' leaves ${train.length} training tokens: too few for one window of ${seq + 1}`);
  const entropy = unigramEntropy(train);
  const evalSet = valBatches(val, batch, seq);

  let resumed: Decoded | undefined;
  let resumeFile: string | undefined;
  const identity = runIdentity(req, c);
  if (req.resume) {
    resumeFile = join(req.resume, 'checkpoint.safetensors');
    try {
      resumed = loadCheckpoint(resumeFile);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new LomocError(`lomoc train: --resume: ${e.message}`);
      throw e;
    }
    const m = resumed.metadata;
    if (m.format !== format) throw new LomocError(`lomoc train: --resume: ${resumeFile} is not a lomoc checkpoint (metadata format ${JSON.stringify(m.format)}, expected '${format}')`);
    const theirs = JSON.parse(m.run ?? '{}') as Record<string, string>;
    const diff = identityDiff(identity, theirs);
    if (diff.length) throw new LomocError(`lomoc train: --resume: this run differs from the one that wrote ${resumeFile}: ${diff.join('; ')}`);
  }

  let acquired;
  try {
    acquired = await acquireDevice(c.program);
  } catch (e) {
    if (e instanceof NoAdapterError) throw new LomocError(`lomoc train: ${e.message}`);
    throw e;
  }
  const trainer = await createTrainer({ device: acquired, program: c.program, seed: req.seed });
  try {
    let start = 0;
    let losses: Point[] = [];
    let valPoints: Point[] = [];
    if (resumed) {
      const src = resumeFile!;
      const get = (name: string, shape: readonly number[]) => {
        const t = resumed!.tensors[name];
        if (!t) throw new LomocError(`lomoc train: --resume: ${src} lacks tensor '${name}'`);
        if (t.dtype !== 'F32' || t.shape.join() !== shape.join())
          throw new LomocError(`lomoc train: --resume: tensor '${name}' in ${src} is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${shape.join(', ')}]`);
        return toFloat32(name, t);
      };
      trainer.writeParams(Object.fromEntries(c.program.params.map((p) => [p.name, get(p.name, p.shape)])));
      trainer.writeState(Object.fromEntries(c.program.state.map((s) => [s.name, get(statePrefix + s.name, s.shape)])));
      start = Number(resumed.metadata.step);
      if (Number(resumed.metadata.dataPosition) !== start) throw new LomocError(`lomoc train: --resume: ${src}: data position ${resumed.metadata.dataPosition} does not match step ${start}`);
      losses = JSON.parse(resumed.metadata.losses ?? '[]') as Point[];
      valPoints = JSON.parse(resumed.metadata.val ?? '[]') as Point[];
    } else if (req.init) {
      let ckpt: Decoded;
      try {
        ckpt = loadCheckpoint(req.init);
      } catch (e) {
        if (e instanceof SafetensorsError) throw new LomocError(`lomoc train: --init: ${e.message}`);
        throw e;
      }
      const n = initFrom(req.init, ckpt, trainer, c.program.params, io);
      say(`init        ${n} of ${c.program.params.length} params from ${req.init}`);
    }
    const thisRun: Point[] = [];

    say(`adapter     ${acquired.description}; kernel target ${c.target}`);
    say(`model       ${def.name}, preset ${preset} (${Object.entries(c.config).map(([k, v]) => `${k}=${v}`).join(' ')})${c.bundle ? `, bundle ${c.bundle}` : ''}`);
    say(`step        ${c.step.optimizer}, lr ${req.lr} (${req.schedule}${req.warmup ? `, warmup ${req.warmup}` : ''})${req.weightDecay ? `, weight decay ${req.weightDecay}` : ''}${c.step.clipNorm ? `, clip-norm ${c.step.clipNorm}` : ''}${c.step.dtype && c.step.dtype !== 'f32' ? `, ${c.step.dtype} storage` : ''}, checkpoint ${c.checkpointDetail}`);
    say(`data        ${req.data}, ${req.tokenizer} tokenizer: ${train.length.toLocaleString('en-US')} training tokens, ${val.length.toLocaleString('en-US')} validation tokens (the last 10%)`);
    say(`baseline    unigram entropy of the training tokens: ${entropy.toFixed(4)} nats/token (uniform over ${need}: ${Math.log(need).toFixed(4)})`);
    say(`device      ${fmtBytes(trainer.deviceBytes)} allocated (plan peak ${fmtBytes(trainer.planBytes)})`);
    if (resumed) say(`resume      from step ${start} (${resumeFile})`);

    const evaluate = async (step: number) => {
      const saved = c.program.state.length ? await trainer.readState() : undefined;
      let sum = 0;
      for (const b of evalSet) sum += (await trainer.step(b, { lr: 0, weightDecay: 0, step: Math.max(step, 1) }))!;
      if (saved) trainer.writeState(saved);
      return sum / evalSet.length;
    };
    const log = (entry: Record<string, unknown>) => req.log && appendFileSync(req.log, JSON.stringify(entry) + '\n');
    if (req.log) mkdirSync(join(req.log, '..'), { recursive: true });
    // A new run starts its log anew (a folder reused for another run must not mix two runs); a
    // resumed run appends to the log of the run it continues.
    if (req.log && !resumed) writeFileSync(req.log, '');
    if (req.save) mkdirSync(req.save, { recursive: true });
    const checkpointFile = req.save ? join(req.save, 'checkpoint.safetensors') : undefined;
    // What `lomoc plot` labels the run with; paths absolute so --concat can match a fine-tune's
    // --init with the checkpoint another log wrote.
    log({
      event: 'start', model: def.name, preset, config: c.config, optimizer: c.step.optimizer, lr: req.lr, schedule: req.schedule, warmup: req.warmup,
      ...(c.step.clipNorm ? { clipNorm: c.step.clipNorm } : {}), ...(c.step.clipValue ? { clipValue: c.step.clipValue } : {}), ...(c.step.dtype && c.step.dtype !== 'f32' ? { dtype: c.step.dtype } : {}),
      weightDecay: req.weightDecay, data: req.data, tokenizer: req.tokenizer, steps: req.steps, seed: req.seed, unigramEntropy: entropy,
      deviceBytes: trainer.deviceBytes, planBytes: trainer.planBytes, ...(req.init && !resumed ? { init: resolve(req.init) } : {}), ...(resumed ? { resumedFrom: start } : {}),
    });
    const save = async (step: number) => {
      const params = await trainer.readParams();
      const state = await trainer.readState();
      const tensors: Record<string, TensorInput> = {};
      for (const p of c.program.params) tensors[p.name] = { shape: p.shape, data: params[p.name] };
      for (const s of c.program.state) tensors[statePrefix + s.name] = { shape: s.shape, data: state[s.name] };
      saveCheckpoint(checkpointFile!, tensors, {
        format, step: String(step), dataPosition: String(step), seed: String(req.seed), run: JSON.stringify(identity),
        compile: JSON.stringify({ ...c.step, checkpoint: c.checkpointText, config: c.config, ...(c.bundle ? { bundle: c.bundle } : {}) }),
        losses: JSON.stringify(losses), val: JSON.stringify(valPoints),
      });
      log({ event: 'checkpoint', step, file: resolve(checkpointFile!) });
    };

    const tokensPerStep = batch * seq;
    let trainMs = 0;
    const progress = createProgress(io, { total: req.steps, start, json: req.json });
    try {
    for (let s = start + 1; s <= req.stopAt; s++) {
      const lr = lrAt(req, s);
      const b = trainBatch(train, batch, seq, req.seed, s - 1);
      const t0 = performance.now();
      const loss = (await trainer.step(b, { lr, weightDecay: req.weightDecay, step: s }))!;
      const ms = performance.now() - t0;
      trainMs += ms;
      losses.push({ step: s, loss });
      thisRun.push({ step: s, loss });
      const tps = (tokensPerStep * 1000) / ms;
      log({ step: s, loss, lr, ms: round(ms, 2), tokensPerSecond: round(tps, 1), deviceBytes: trainer.deviceBytes });
      progress.step({ step: s, loss, lr, ms, tokensPerSecond: tps, deviceBytes: trainer.deviceBytes });
      if (!Number.isFinite(loss)) throw new LomocError(`lomoc train: the loss is ${loss} at step ${s}: lower --lr or add --clip-norm`);
      const last = s === req.stopAt;
      if ((req.evalEvery && s % req.evalEvery === 0) || last) {
        const v = await evaluate(s);
        valPoints.push({ step: s, loss: v });
        log({ step: s, valLoss: v });
        progress.line(`  validation loss ${v.toFixed(4)} at step ${s} (unigram entropy ${entropy.toFixed(4)})`);
      }
      if (checkpointFile && ((req.saveEvery && s % req.saveEvery === 0) || last)) await save(s);
    }
    } finally {
      progress.stop();
    }
    log({ event: 'end', step: req.stopAt, deviceBytes: trainer.deviceBytes });
    if (req.plot) {
      mkdirSync(join(req.plot, '..'), { recursive: true });
      writeFileSync(req.plot, lossCurveSvg(losses, valPoints, { title: `${def.name} ${preset}, ${c.step.optimizer}, ${req.data} (${req.tokenizer})`, baseline: entropy }));
    }
    const ran = req.stopAt - start;
    return {
      adapter: `${acquired.description}; kernel target ${c.target}`,
      model: def.name,
      preset,
      config: c.config,
      optimizer: c.step.optimizer,
      tokens: { train: train.length, val: val.length },
      unigramEntropy: entropy,
      losses: thisRun,
      val: valPoints,
      params: await trainer.readParams(),
      deviceBytes: trainer.deviceBytes,
      tokensPerSecond: ran > 0 ? (tokensPerStep * ran * 1000) / trainMs : 0,
      files: { checkpoint: checkpointFile, log: req.log, plot: req.plot },
    };
  } catch (e) {
    if (e instanceof DeviceLostError) throw new LomocError(`lomoc train: ${e.message}`);
    throw e;
  } finally {
    trainer.destroy();
    acquired.device.destroy();
  }
}

export async function runTrain(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(trainSpec, argv);
  const req = trainRequest(positionals, values);
  const r = await trainSteps(req, io);
  if (req.json) {
    const { params: _params, ...rest } = r;
    io.out(JSON.stringify({ ...rest, tokensPerSecond: round(r.tokensPerSecond, 1) }));
  } else {
    const files = Object.entries(r.files).filter(([, f]) => f).map(([k, f]) => `${k} ${f}`);
    io.out(`\n${r.losses.length} steps, ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} tokens/s${files.length ? `; wrote ${files.join(', ')}` : ''}`);
  }
  return 0;
}
