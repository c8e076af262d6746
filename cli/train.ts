// `lomoc train <model.ts|bundle-dir>`: compile the training step to WGSL (or load a bundle that
// `lomoc compile` wrote, whose manifest fixes the step's options) and train it on WebGPU, or on the
// reference executor with --device cpu, on real text (Moby Dick, the State of the Union addresses,
// or a UTF-8 file), tokenised with GPT-2's BPE or as bytes. Shows a live bar on a terminal and a
// line per step elsewhere (cli/train-progress.ts), evaluates a held-out validation split every k
// steps, logs JSON lines (which `lomoc plot` draws), draws the loss curve to an SVG, and saves
// checkpoints in safetensors that `--resume` continues exactly (the same batches, losses and
// parameters as a run never stopped). This file is the loop; train-request.ts the options,
// train-source.ts the step and its device, train-checkpoint.ts resume and save.
//
// Validation loss runs the training program itself with lr = 0 and weight decay = 0, which leaves
// every parameter bit for bit as it was (p - 0 * u = p); AdamW's moments (and any other optimizer
// state) would still move, so the state is read before the validation batches and written back
// after them.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import { defaultRounding, type OptimizerName } from '../compiler/passes/optimizer-step.ts';
import { fmtBytes } from '../contract/units.ts';
import { parseCommandArgs } from './args.ts';
import { batchDumper, readBatchFile } from './batch-file.ts';
import { lossCurveSvg, type Point } from './loss-svg.ts';
import type { Io } from './report.ts';
import { checkResume, initFrom, readCheckpoint, restore, runIdentity, writeCheckpoint } from './train-checkpoint.ts';
import { createProgress } from './train-progress.ts';
import { loadText, split, trainBatch, unigramEntropy, valBatches, type Batch } from './train-data.ts';
import { initFromHf, isHfFolder } from './hf-init.ts';
import { checkVocab, textTokenizer } from './hf-tokenizer.ts';
import { lrAt } from '../runtime/train/schedule.ts';
import { trainRequest, trainSpec, type TrainRequest } from './train-request.ts';
import { runtimeFault, trainSource } from './train-source.ts';
import { signalExitCode, signalStopper } from './train-signals.ts';

export { lrAt } from '../runtime/train/schedule.ts';
export { trainRequest, trainSpec, type TrainRequest } from './train-request.ts';

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
  /** Bytes on the device (null on the reference executor). */
  readonly deviceBytes: number | null;
  readonly tokensPerSecond: number;
  readonly files: { readonly checkpoint?: string; readonly log?: string; readonly plot?: string; readonly batches?: string };
  /** The signal that stopped the run before its last step (SIGINT or SIGTERM). */
  readonly interrupted?: NodeJS.Signals;
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** ", accumulate 4 (micro-batches of 2: 8 x 64 = 512 tokens per update)": `rows` is the step's whole batch. */
const accumulated = (k: number | undefined, rows: number, seq: number): string =>
  (k ?? 1) > 1 ? `, accumulate ${k} (micro-batches of ${rows / k!}: ${rows} x ${seq} = ${(rows * seq).toLocaleString('en-US')} tokens per update)` : '';

export async function trainSteps(req: TrainRequest, io: Io): Promise<TrainResult> {
  const say = (t: string) => req.json || io.out(t);
  const c = await trainSource(req, io);
  const slots = c.inputs;
  const tok = slots.find((s) => s.name === 'tokens');
  const tgt = slots.find((s) => s.name === 'targets');
  if (!tok || !tgt || slots.length !== 2 || tok.dtype !== 'i32' || tgt.dtype !== 'i32' || tok.shape.length !== 2 || tok.shape.join() !== tgt.shape.join())
    throw new LomocError(`lomoc train: model '${c.name}' must take exactly two i32 inputs 'tokens' and 'targets' of shape [batch, seq]; it takes ${slots.map((s) => `'${s.name}' ${s.dtype} [${s.shape.join(', ')}]`).join(', ')}`);
  const [batch, seq] = tok.shape;
  const tk = await textTokenizer(req.tokenizer);
  const need = tk.vocab;
  if (tk.name !== 'bytes' && tk.name !== 'gpt2') checkVocab(tk, Number(c.config.vocab ?? c.idRange), c.name);
  const vocabKey = 'vocab' in c.config ? Number(c.config.vocab) : undefined;
  if (vocabKey !== undefined ? vocabKey !== need : c.idRange < need)
    throw new LomocError(`lomoc train: the ${req.tokenizer} tokenizer gives ${need} ids, but model '${c.name}' (preset ${c.preset}) has vocab ${vocabKey ?? c.idRange}: add --set vocab=${need}`);

  const text = loadText(req.data);
  const ids = await tk.encode(text);
  const { train, val } = split(ids, seq, req.data);
  if (train.length < seq + 1) throw new LomocError(`lomoc train: --data '${req.data}' leaves ${train.length} training tokens: too few for one window of ${seq + 1}`);
  const entropy = unigramEntropy(train);
  const evalSet = valBatches(val, batch, seq);

  const identity = runIdentity(req, c);
  const resumeFile = req.resume ? join(req.resume, 'checkpoint.safetensors') : undefined;
  const resumed = resumeFile ? checkResume(resumeFile, identity) : undefined;
  const initCkpt = req.init && !isHfFolder(req.init) ? readCheckpoint(req.init, '--init') : undefined;
  const firstStep = resumed ? Number(resumed.metadata.step) + 1 : 1;
  const fed = req.batchFile ? readBatchFile(req.batchFile, { batch, seq, vocab: need }, firstStep, req.stopAt) : undefined;

  const { runner: trainer, adapter, release } = await c.start(req.seed);
  try {
    let start = 0;
    let losses: Point[] = [];
    let valPoints: Point[] = [];
    if (resumed) ({ step: start, losses, val: valPoints } = restore(resumeFile!, resumed, trainer, c));
    else if (isHfFolder(req.init)) {
      const n = initFromHf(req.init, c.config, c.params, (v) => trainer.writeParams(v), { model: c.name, partial: req.initPartial === true, io });
      say(`init        ${n} of ${c.params.length} params from the Hugging Face folder ${req.init}`);
    } else if (initCkpt) {
      const n = initFrom(req.init!, initCkpt, trainer, c.params, io);
      say(`init        ${n} of ${c.params.length} params from ${req.init}`);
    }
    const thisRun: Point[] = [];
    const deviceLine = trainer.deviceBytes === null ? `none: the reference executor keeps every value on the host (plan peak ${fmtBytes(trainer.planBytes)} for kernel target ${c.target})` : `${fmtBytes(trainer.deviceBytes)} allocated (plan peak ${fmtBytes(trainer.planBytes)})`;

    say(`adapter     ${adapter}`);
    say(`model       ${c.name}, preset ${c.preset} (${Object.entries(c.config).map(([k, v]) => `${k}=${v}`).join(' ')})${c.bundle ? `, bundle ${c.bundle}` : ''}`);
    say(`step        ${c.step.optimizer}, lr ${req.lr} (${req.schedule}${req.warmup ? `, warmup ${req.warmup}` : ''})${req.weightDecay ? `, weight decay ${req.weightDecay}` : ''}${c.step.clipNorm ? `, clip-norm ${c.step.clipNorm}${c.step.clipMode === 'previous' ? ' (previous: one pass, approximate)' : ''}` : ''}${c.step.dtype && c.step.dtype !== 'f32' ? `, ${c.step.dtype} storage` : ''}${typeof c.step.lossScale === 'object' ? `, loss scale ${c.step.lossScale.kind === 'dynamic' ? `dynamic from ${c.step.lossScale.init} (x2 after ${c.step.lossScale.interval} clean steps)` : c.step.lossScale.scale}` : ''}, checkpoint ${c.checkpointDetail}${accumulated(c.step.accumulate, batch, seq)}`);
    say(`data        ${req.batchFile ? `batches from ${req.batchFile}; validation from ` : ''}${req.data}, ${req.tokenizer} tokenizer: ${train.length.toLocaleString('en-US')} training tokens, ${val.length.toLocaleString('en-US')} validation tokens (the last 10%)`);
    say(`baseline    unigram entropy of the training tokens: ${entropy.toFixed(4)} nats/token (uniform over ${need}: ${Math.log(need).toFixed(4)})`);
    say(`device      ${deviceLine}`);
    if (resumed) say(`resume      from step ${start} (${resumeFile})`);

    const evaluate = async (step: number) => {
      const saved = c.state.length ? await trainer.readState() : undefined;
      let sum = 0;
      // A given loss scale leaves the scaler's state alone (lr 0: nothing is updated anyway).
      for (const b of evalSet) sum += (await trainer.step(b, { lr: 0, weightDecay: 0, step: Math.max(step, 1), ...(trainer.lossScaler ? { lossScale: 1 } : {}) }))!;
      if (saved) trainer.writeState(saved);
      return sum / evalSet.length;
    };
    const log = (entry: Record<string, unknown>) => req.log && appendFileSync(req.log, JSON.stringify(entry) + '\n');
    if (req.log) mkdirSync(join(req.log, '..'), { recursive: true });
    // A new run starts its log anew (a folder reused for another run must not mix two runs); a
    // resumed run appends to the log of the run it continues.
    if (req.log && !resumed) writeFileSync(req.log, '');
    if (req.save) mkdirSync(req.save, { recursive: true });
    const dump = req.dumpBatch ? batchDumper(req.dumpBatch, seq) : undefined;
    const checkpointFile = req.save ? join(req.save, 'checkpoint.safetensors') : undefined;
    // What `lomoc plot` labels the run with; paths absolute so --concat can match a fine-tune's
    // --init with the checkpoint another log wrote.
    log({
      event: 'start', model: c.name, preset: c.preset, config: c.config, optimizer: c.step.optimizer, lr: req.lr, schedule: req.schedule, warmup: req.warmup,
      ...(c.step.clipNorm ? { clipNorm: c.step.clipNorm } : {}), ...(c.step.clipMode === 'previous' ? { clipMode: 'previous' } : {}),
      ...(typeof c.step.lossScale === 'object' ? { lossScale: c.step.lossScale } : {}), ...(c.step.clipValue ? { clipValue: c.step.clipValue } : {}), ...(c.step.dtype && c.step.dtype !== 'f32' ? { dtype: c.step.dtype, rounding: c.step.rounding ?? defaultRounding(c.step.dtype, c.step.optimizer, c.step.master) } : {}),
      ...((c.step.accumulate ?? 1) > 1 ? { accumulate: c.step.accumulate } : {}),
      weightDecay: req.weightDecay, data: req.data, tokenizer: req.tokenizer, steps: req.steps, seed: req.seed, unigramEntropy: entropy,
      deviceBytes: trainer.deviceBytes, planBytes: trainer.planBytes, ...(req.device === 'cpu' ? { device: 'cpu' } : {}),
      ...(req.init && !resumed ? { init: resolve(req.init) } : {}), ...(resumed ? { resumedFrom: start } : {}),
    });
    const save = async (step: number) => {
      await writeCheckpoint(checkpointFile!, trainer, c, {
        step: String(step), dataPosition: String(step), seed: String(req.seed), run: JSON.stringify(identity),
        compile: JSON.stringify({ ...c.step, checkpoint: c.checkpointText, checkpointDetail: c.checkpointDetail, config: c.config, ...(c.bundle ? { bundle: c.bundle } : {}) }),
        losses: JSON.stringify(losses), val: JSON.stringify(valPoints),
        ...(trainer.lossScaler ? { lossScale: JSON.stringify(trainer.lossScaler.state) } : {}),
      });
      log({ event: 'checkpoint', step, file: resolve(checkpointFile!) });
    };
    const validate = async (s: number) => {
      const v = await evaluate(s);
      valPoints.push({ step: s, loss: v });
      log({ step: s, valLoss: v });
      return v;
    };

    const tokensPerStep = batch * seq;
    let trainMs = 0;
    const progress = createProgress(io, { total: req.steps, start, json: req.json });
    const stopper = signalStopper((signal) => progress.line(`  ${signal}: stopping after this step${checkpointFile ? ' and saving a checkpoint' : ''} (again to quit at once)`));
    let done = start;
    try {
      for (let s = start + 1; s <= req.stopAt && stopper.signal === undefined; s++) {
        const lr = lrAt(req, s);
        const b: Batch = fed?.get(s) ?? trainBatch(train, batch, seq, req.seed, s - 1);
        dump?.write(s, b);
        const t0 = performance.now();
        const loss = (await trainer.step(b, { lr, weightDecay: req.weightDecay, step: s }))!;
        const ms = performance.now() - t0;
        trainMs += ms;
        losses.push({ step: s, loss });
        thisRun.push({ step: s, loss });
        const tps = (tokensPerStep * 1000) / ms;
        const scaler = trainer.lossScaler;
        log({ step: s, loss, lr, ms: round(ms, 2), tokensPerSecond: round(tps, 1), deviceBytes: trainer.deviceBytes, ...(scaler ? { lossScale: scaler.state.scale, ...(scaler.lastOverflow ? { skipped: true } : {}) } : {}) });
        if (scaler?.lastOverflow) progress.line(`  step ${s}: the gradients overflowed in f16: updates skipped, loss scale halved to ${scaler.state.scale}`);
        progress.step({ step: s, loss, lr, ms, tokensPerSecond: tps, deviceBytes: trainer.deviceBytes ?? 0 });
        if (!Number.isFinite(loss)) throw new LomocError(`lomoc train: the loss is ${loss} at step ${s}: lower --lr or add --clip-norm`);
        const last = s === req.stopAt;
        if ((req.evalEvery && s % req.evalEvery === 0) || last) {
          const v = await validate(s);
          progress.line(`  validation loss ${v.toFixed(4)} at step ${s} (unigram entropy ${entropy.toFixed(4)})`);
        }
        if (checkpointFile && ((req.saveEvery && s % req.saveEvery === 0) || last)) await save(s);
        done = s;
        // A step that never leaves the microtask queue (the reference executor) would keep signals waiting.
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Stopped by a signal: the steps done so far are saved, as at the end of a run.
      if (stopper.signal !== undefined && done < req.stopAt && checkpointFile && done > start && !(req.saveEvery && done % req.saveEvery === 0)) await save(done);
    } finally {
      progress.stop();
      stopper.dispose();
    }
    const interrupted = done < req.stopAt ? stopper.signal : undefined;
    // No step to run (--steps 0, or resumed at --stop-at): the end's validation and checkpoint
    // still happen, so --steps 0 --save writes the initial (or --init) weights.
    if (start >= req.stopAt) {
      const v = await validate(start);
      say(`  validation loss ${v.toFixed(4)} at step ${start} (unigram entropy ${entropy.toFixed(4)})`);
      if (checkpointFile) await save(start);
    }
    log({ event: 'end', step: interrupted ? done : Math.max(start, req.stopAt), deviceBytes: trainer.deviceBytes, ...(interrupted ? { interrupted } : {}) });
    if (req.plot) {
      mkdirSync(join(req.plot, '..'), { recursive: true });
      writeFileSync(req.plot, lossCurveSvg(losses, valPoints, { title: `${c.name} ${c.preset}, ${c.step.optimizer}, ${req.data} (${req.tokenizer})`, baseline: entropy }));
    }
    const ran = done - start;
    return {
      adapter,
      model: c.name,
      preset: c.preset,
      config: c.config,
      optimizer: c.step.optimizer,
      tokens: { train: train.length, val: val.length },
      unigramEntropy: entropy,
      losses: thisRun,
      val: valPoints,
      params: await trainer.readParams(),
      deviceBytes: trainer.deviceBytes,
      tokensPerSecond: ran > 0 ? (tokensPerStep * ran * 1000) / trainMs : 0,
      files: { checkpoint: checkpointFile, log: req.log, plot: req.plot, batches: req.dumpBatch },
      ...(interrupted ? { interrupted } : {}),
    };
  } catch (e) {
    throw runtimeFault(e, c.bundle);
  } finally {
    release();
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
    io.out(`\n${r.interrupted ? `stopped by ${r.interrupted} after ` : ''}${r.losses.length} steps, ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} tokens/s${files.length ? `; wrote ${files.join(', ')}` : ''}`);
  }
  return r.interrupted ? signalExitCode(r.interrupted) : 0;
}
