// One training run in the page: the bundle's trainer, the loop with pause and resume, validation,
// and checkpoints in exactly the format `lomoc train` writes and reads (runtime/train/run-record.ts),
// so a run moves between the browser and Node in both directions. Errors never lose the run: the
// trainer and its step count stay as they were, and saving still works.
import { decodeSafetensors, encodeSafetensors, SafetensorsError, toFloat32, type TensorInput } from '../checkpoint/safetensors.ts';
import { trainBatch, unigramEntropy, valBatches, type Batch } from '../train/data.ts';
import { checkpointFormat, identityDiff, runIdentity, statePrefix, type RunFields } from '../train/run-record.ts';
import { lossScaleStateOf, lossScaleText, type LossScaleSpec, type LossScaleState } from '../../contract/loss-scale.ts';
import { lrAt, type Schedule } from '../train/schedule.ts';
import type { Tokens, TokenizerName } from './text.ts';

/** What the page needs of the bundle's index.js. */
export interface Entry {
  readonly model: string;
  readonly preset: string;
  readonly optimizer: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly inputs: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly number[] }>>;
  readonly params: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly number[] }>>;
  readonly planBytes: number;
  createTrainer(options: { gpu: GPU; seed: number }): Promise<Trainer>;
  createGenerator(options: { device: GPUDevice; params: Record<string, ArrayLike<number>> } | { gpu: GPU; seed: number }): Promise<Generator>;
}
/** What the page needs of the bundle's generator (index.js createGenerator). */
export interface Generator {
  generate(prompt: readonly number[], options: { maxTokens: number; temperature: number; topK: number; topP: number; seed: number }): AsyncGenerator<number>;
  writeParams(p: Record<string, ArrayLike<number>>): void;
  destroy(): void;
  readonly deviceBytes: number;
}
export interface Trainer {
  step(batch: Batch, hyper: { lr: number; weightDecay: number; step?: number; lossScale?: number }): Promise<number | undefined>;
  readParams(): Promise<Record<string, Float32Array>>;
  readState(): Promise<Record<string, Float32Array>>;
  writeParams(p: Record<string, ArrayLike<number>>): void;
  writeState(s: Record<string, ArrayLike<number>>): void;
  destroy(): void;
  readonly deviceBytes: number;
  readonly adapter: string;
  /** The device it made (with the inference program's limits too): the page samples on it. */
  readonly device: GPUDevice;
  /** The loss scaling state after the last step; null where the bundle scales no loss. */
  readonly lossScale: LossScaleState | null;
  /** Whether the last step overflowed and skipped its updates. */
  readonly skippedLast: boolean;
  restoreLossScale(state: LossScaleState): void;
}

export interface RunOptions {
  readonly lr: number;
  readonly schedule: Schedule;
  readonly warmup: number;
  readonly weightDecay: number;
  readonly steps: number;
  readonly evalEvery: number;
  readonly seed: number;
}

export interface Point {
  readonly step: number;
  readonly loss: number;
}

/** The bundle's step options as manifest.json records them. */
export interface BundleStep {
  readonly optimizer: string;
  readonly dtype: string;
  readonly checkpoint: string;
  readonly clipNorm: number | null;
  readonly clipValue: number | null;
  /** K micro-batches per update (absent: 1); the inputs already hold all K x batch rows. */
  readonly accumulate?: number;
  /** Absent: exact. */
  readonly clipMode?: 'exact' | 'previous';
  /** Absent: no loss scaling. */
  readonly lossScale?: LossScaleSpec;
}

export interface Progress {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly ms: number;
  readonly tokensPerSecond: number;
  /** The step overflowed in f16: its updates were skipped and the loss scale halved. */
  readonly skipped?: boolean;
}

/** " · loss scale 32768, 2 steps skipped": the stats line's part for a bundle that scales the loss (f16); empty otherwise. */
export function lossScaleStats(t: Pick<Trainer, 'lossScale' | 'skippedLast'>): string {
  const st = t.lossScale;
  if (!st) return '';
  const last = t.skippedLast ? ' (the last step overflowed in f16: its updates skipped, the scale halved)' : '';
  return ` · loss scale ${st.scale}, ${st.skipped} step${st.skipped === 1 ? '' : 's'} skipped${last}`;
}

export class Session {
  step = 0;
  losses: Point[] = [];
  val: Point[] = [];
  running = false;
  private stopRequested = false;
  /** Steps and readbacks of the trainer in turn: a sample reads the params between two steps, never inside one. */
  private turn: Promise<unknown> = Promise.resolve();
  readonly entropy: number;
  private readonly evalSet: Batch[];
  readonly batch: number;
  readonly seq: number;

  constructor(
    readonly entry: Entry,
    readonly bundleStep: BundleStep,
    readonly trainer: Trainer,
    readonly tokens: Tokens,
    readonly tokenizer: TokenizerName,
    readonly run: RunOptions,
    /** The optimizer state's shapes (manifest.json's program.state), as checkpoints store them. */
    readonly stateShapes: Readonly<Record<string, readonly number[]>>,
  ) {
    [this.batch, this.seq] = entry.inputs.tokens.shape;
    this.entropy = unigramEntropy(tokens.train);
    this.evalSet = valBatches(tokens.val, this.batch, this.seq);
  }

  /** The identity `lomoc train --resume` checks (the same fields, the same text). */
  identity(): Record<string, string> {
    const s = this.bundleStep;
    const fields: RunFields = {
      model: this.entry.model, config: this.entry.config, optimizer: s.optimizer, checkpoint: s.checkpoint, clipNorm: s.clipNorm, clipValue: s.clipValue,
      dtype: s.dtype, lr: this.run.lr, schedule: this.run.schedule, warmup: this.run.warmup, weightDecay: this.run.weightDecay,
      data: this.tokens.data, tokenizer: this.tokenizer, seed: this.run.seed, steps: this.run.steps, accumulate: s.accumulate,
      ...(s.clipMode && s.clipMode !== 'exact' ? { clipMode: s.clipMode } : {}),
      ...(s.lossScale ? { lossScale: lossScaleText(s.lossScale) } : {}),
    };
    return runIdentity(fields);
  }

  /**
   * Validation loss: the training step with lr 0 and weight decay 0 (params unchanged; state
   * restored), with a given loss scale of 1 that leaves the scaler's state alone, as lomoc train's.
   */
  async evaluate(step: number): Promise<number> {
    const saved = Object.keys(this.stateShapes).length ? await this.trainer.readState() : undefined;
    let sum = 0;
    const scale = this.trainer.lossScale ? { lossScale: 1 } : {};
    for (const b of this.evalSet) sum += (await this.trainer.step(b, { lr: 0, weightDecay: 0, step: Math.max(step, 1), ...scale }))!;
    if (saved) this.trainer.writeState(saved);
    return sum / this.evalSet.length;
  }

  /** Runs `fn` when no step of this session is running, and no step starts before it ends. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.turn.then(fn);
    this.turn = next.catch(() => undefined);
    return next;
  }

  /** The params as trained so far, read between two steps. */
  readParams(): Promise<Record<string, Float32Array>> {
    return this.exclusive(() => this.trainer.readParams());
  }

  /**
   * Trains until `run.steps` or until pause() is called; each step and validation is reported, and
   * `after` (a sample every k steps) is awaited after each step before the next one starts.
   */
  async train(on: { step(p: Progress): void; val(p: Point): void; after?(step: number): Promise<void> }): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopRequested = false;
    try {
      while (this.step < this.run.steps && !this.stopRequested) {
        const s = this.step + 1;
        const lr = lrAt(this.run, s);
        const b = trainBatch(this.tokens.train, this.batch, this.seq, this.run.seed, s - 1);
        const t0 = performance.now();
        const loss = (await this.exclusive(() => this.trainer.step(b, { lr, weightDecay: this.run.weightDecay, step: s })))!;
        const ms = performance.now() - t0;
        this.step = s;
        this.losses.push({ step: s, loss });
        on.step({ step: s, loss, lr, ms, tokensPerSecond: (this.batch * this.seq * 1000) / ms, ...(this.trainer.skippedLast ? { skipped: true } : {}) });
        if ((this.run.evalEvery && s % this.run.evalEvery === 0) || s === this.run.steps) {
          const v = await this.exclusive(() => this.evaluate(s));
          this.val.push({ step: s, loss: v });
          on.val({ step: s, loss: v });
        }
        await on.after?.(s);
      }
    } finally {
      this.running = false;
    }
  }

  pause(): void {
    this.stopRequested = true;
  }

  /** The checkpoint `lomoc train --save` would write at this step, as safetensors bytes. */
  async checkpoint(): Promise<Uint8Array> {
    const params = await this.trainer.readParams();
    const state = await this.trainer.readState();
    const tensors: Record<string, TensorInput> = {};
    for (const [name, p] of Object.entries(this.entry.params)) tensors[name] = { shape: p.shape, data: params[name] };
    for (const [name, shape] of Object.entries(this.stateShapes)) tensors[statePrefix + name] = { shape, data: state[name] };
    return encodeSafetensors(tensors, {
      format: checkpointFormat, step: String(this.step), dataPosition: String(this.step), seed: String(this.run.seed), run: JSON.stringify(this.identity()),
      compile: JSON.stringify({ ...this.bundleStep, config: this.entry.config, bundle: 'page' }),
      losses: JSON.stringify(this.losses), val: JSON.stringify(this.val),
      ...(this.trainer.lossScale ? { lossScale: JSON.stringify(this.trainer.lossScale) } : {}),
    });
  }

  /** Loads a checkpoint this run may continue from; an error names every difference and changes nothing. */
  async restore(name: string, bytes: Uint8Array): Promise<void> {
    let c;
    try {
      c = decodeSafetensors(bytes);
    } catch (e) {
      throw new SessionError(`${name}: ${e instanceof SafetensorsError ? e.message : String(e)}`);
    }
    if (c.metadata.format !== checkpointFormat)
      throw new SessionError(`${name} is not a lomoc checkpoint (metadata format ${JSON.stringify(c.metadata.format ?? null)}, expected '${checkpointFormat}')`);
    let theirs: Record<string, string>;
    try {
      theirs = JSON.parse(c.metadata.run ?? '{}') as Record<string, string>;
    } catch {
      throw new SessionError(`${name}: its metadata field 'run' is not JSON`);
    }
    const diff = identityDiff(this.identity(), theirs);
    if (diff.length) throw new SessionError(`${name} was written by another run: ${diff.join('; ')}`);
    const get = (key: string, shape: readonly number[]) => {
      const t = c.tensors[key];
      if (!t) throw new SessionError(`${name} lacks tensor '${key}'`);
      if (t.dtype !== 'F32' || t.shape.join() !== shape.join()) throw new SessionError(`${name}: tensor '${key}' is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${shape.join(', ')}]`);
      return toFloat32(key, t);
    };
    const params = Object.fromEntries(Object.entries(this.entry.params).map(([k, p]) => [k, get(k, p.shape)]));
    const state = Object.fromEntries(Object.entries(this.stateShapes).map(([k, shape]) => [k, get(statePrefix + k, shape)]));
    const step = Number(c.metadata.step);
    if (!Number.isSafeInteger(step) || step < 0 || step > this.run.steps) throw new SessionError(`${name}: its step ${c.metadata.step} is not a step of this run (0 to ${this.run.steps})`);
    // Loss scaling resumes exactly, as lomoc train's --resume: the scale and its clean-step count come from the file.
    let scale: LossScaleState | undefined;
    if (this.trainer.lossScale) {
      const text = c.metadata.lossScale;
      if (text === undefined)
        throw new SessionError(`${name}: __metadata__.lossScale: missing; this bundle uses --loss-scale, and a resume needs the scale and clean-step count its checkpoint stores`);
      scale = lossScaleStateOf(parseJson(text));
      if (!scale) throw new SessionError(`${name}: __metadata__.lossScale: expected the loss scale state {scale, cleanSteps, skipped}, got ${JSON.stringify(text.slice(0, 80))}`);
    }
    this.trainer.writeParams(params);
    if (scale) this.trainer.restoreLossScale(scale);
    this.trainer.writeState(state);
    this.step = step;
    this.losses = JSON.parse(c.metadata.losses ?? '[]') as Point[];
    this.val = JSON.parse(c.metadata.val ?? '[]') as Point[];
  }
}

/** JSON text's value, or undefined where it is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class SessionError extends Error {
  override name = 'SessionError';
}
