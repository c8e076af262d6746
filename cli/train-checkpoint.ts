// Checkpoints of `lomoc train` (and `lomoc run --save`): what a resumed run must share with the
// one that wrote its checkpoint, reading one back (--resume, exactly; --init, by name), and
// writing params and optimizer state with the run's metadata.
import type { StorageDType } from '../contract/program.ts';
import { lossScaleText } from '../contract/loss-scale.ts';
import { parseTrainMetadata, runOf } from '../runtime/checkpoint/train-metadata.ts';
import { conversionOf, floatValues } from '../runtime/checkpoint/float-tensor.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import { loadCheckpoint, saveCheckpoint } from '../runtime/checkpoint/node.ts';
import { SafetensorsError, toFloat32, type Decoded, type TensorInput } from '../runtime/checkpoint/safetensors.ts';
import { checkpointFormat, identityDiff, runIdentity as runIdentityOf, statePrefix } from '../runtime/train/run-record.ts';
import type { Point } from './loss-svg.ts';
import type { Io } from './report.ts';
import { defaultRounding } from '../compiler/passes/optimizer-step.ts';
import type { StepRunner } from './reference-trainer.ts';
import type { Source } from './train-source.ts';
import type { TrainRequest } from './train-request.ts';

type Decl = { readonly name: string; readonly shape: readonly number[]; readonly dtype?: StorageDType };

/** What a resumed run must share with its checkpoint for the continuation to be exact (runtime/train/run-record.ts: the page's too). */
export function runIdentity(req: TrainRequest, src: Pick<Source, 'name' | 'config' | 'step' | 'checkpointText'>): Record<string, string> {
  const s = src.step;
  return runIdentityOf({
    model: src.name, config: src.config, optimizer: s.optimizer, checkpoint: src.checkpointText, clipNorm: s.clipNorm, clipValue: s.clipValue,
    dtype: s.dtype, lr: req.lr, schedule: req.schedule, warmup: req.warmup, weightDecay: req.weightDecay, data: req.data,
    tokenizer: req.tokenizer, seed: req.seed, steps: req.steps, hyper: s.hyper,
    ...(s.clipMode && s.clipMode !== 'exact' ? { clipMode: s.clipMode } : {}),
    ...(typeof s.lossScale === 'object' ? { lossScale: lossScaleText(s.lossScale) } : {}),
    ...(s.rounding && s.rounding !== defaultRounding(s.dtype, s.optimizer, s.master) ? { rounding: s.rounding } : {}),
    accumulate: s.accumulate,
  });
}

/** Runs a metadata check; its SafetensorsError becomes the command's error. */
function checked<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc train: --resume: ${e.message}`);
    throw e;
  }
}

/** A safetensors file read for `option`: its own errors become the command's. */
export function readCheckpoint(file: string, option: string): Decoded {
  try {
    return loadCheckpoint(file);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc train: ${option}: ${e.message}`);
    throw e;
  }
}

/** A loaded tensor, or an error naming its first non-finite element: such a param makes every loss NaN, whatever --lr is. */
function finite(what: string, name: string, x: Float32Array): Float32Array {
  const i = x.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw new LomocError(`lomoc train: ${what}: tensor '${name}' holds ${x[i]} at element ${i}; a checkpoint whose values are not all finite cannot be trained from`);
  return x;
}

/** --init: every param found with its shape is written; missing and unexpected ones are warnings, mis-shaped ones an error. */
export function initFrom(file: string, ckpt: Decoded, trainer: Pick<StepRunner, 'writeParams'>, params: readonly Decl[], io: Io): number {
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
      values[p.name] = finite(`--init ${file}`, p.name, floatValues(p.name, t));
      const how = p.dtype === undefined ? undefined : conversionOf(t, p.dtype);
      if (how) converted.set(how, [...(converted.get(how) ?? []), p.name]);
    }
  }
  const unexpected = Object.keys(ckpt.tensors).filter((n) => !names.has(n) && !n.startsWith(statePrefix));
  if (bad.length) throw new LomocError(`lomoc train: --init ${file}: ${bad.length} mis-shaped tensor${bad.length > 1 ? 's' : ''}: ${bad.join('; ')}`);
  // Nothing matched: training would start from scratch while the user asked for these weights.
  if (params.length && missing.length === params.length) {
    const held = Object.keys(ckpt.tensors).filter((n) => !n.startsWith(statePrefix));
    const shown = held.length > 5 ? `${held.slice(0, 5).join(', ')}, ...` : held.join(', ') || 'none';
    throw new LomocError(`lomoc train: --init ${file}: none of the model's ${params.length} params is in the file (its ${held.length} tensor${held.length === 1 ? '' : 's'}: ${shown}); is it a checkpoint of another model?`);
  }
  if (missing.length) io.err(`warning: --init ${file}: ${missing.length} param${missing.length > 1 ? 's' : ''} not in the file keep their initial values: ${missing.join(', ')}`);
  if (unexpected.length) io.err(`warning: --init ${file}: ${unexpected.length} tensor${unexpected.length > 1 ? 's' : ''} in the file match no param and are ignored: ${unexpected.join(', ')}`);
  for (const [how, names] of converted)
    io.err(`note: --init ${file}: ${names.length} tensor${names.length > 1 ? 's' : ''} converted from ${how} (the run's --dtype): ${names.join(', ')}`);
  trainer.writeParams(values);
  return Object.keys(values).length;
}

/** --resume, checked before the device is acquired: the checkpoint must come from this very run. */
export function checkResume(file: string, identity: Record<string, string>): Decoded {
  const resumed = readCheckpoint(file, '--resume');
  const m = resumed.metadata;
  if (m.format !== checkpointFormat) throw new LomocError(`lomoc train: --resume: ${file} is not a lomoc checkpoint (metadata format ${JSON.stringify(m.format)}, expected '${checkpointFormat}')`);
  // Every metadata field is checked (runtime/checkpoint/train-metadata.ts): the run's identity
  // first, so that another run's checkpoint is named as such.
  const theirs = checked(() => runOf(m, file));
  const diff = identityDiff(identity, theirs);
  if (diff.length) throw new LomocError(`lomoc train: --resume: this run differs from the one that wrote ${file}: ${diff.join('; ')}`);
  checked(() => parseTrainMetadata(m, file));
  return resumed;
}

/** Writes the resumed params and state into the trainer; returns the step and the curves so far. */
export function restore(file: string, resumed: Decoded, trainer: Pick<StepRunner, 'writeParams' | 'writeState' | 'lossScaler'>, src: Pick<Source, 'params' | 'state'>) {
  const get = (name: string, shape: readonly number[]) => {
    const t = resumed.tensors[name];
    if (!t) throw new LomocError(`lomoc train: --resume: ${file} lacks tensor '${name}'`);
    if (t.dtype !== 'F32' || t.shape.join() !== shape.join())
      throw new LomocError(`lomoc train: --resume: tensor '${name}' in ${file} is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${shape.join(', ')}]`);
    return finite(`--resume: ${file}`, name, toFloat32(name, t));
  };
  trainer.writeParams(Object.fromEntries(src.params.map((p) => [p.name, get(p.name, p.shape)])));
  trainer.writeState(Object.fromEntries(src.state.map((s) => [s.name, get(statePrefix + s.name, s.shape)])));
  // Checked by parseTrainMetadata: step = data position = the number of losses.
  const meta = checked(() => parseTrainMetadata(resumed.metadata, file));
  // Loss scaling resumes exactly: the scale and its clean-step count come from the checkpoint.
  if (trainer.lossScaler) {
    if (!meta.lossScale)
      throw new LomocError(`lomoc train: --resume: ${file}: __metadata__.lossScale: missing; this run uses --loss-scale, and a resume needs the scale and clean-step count its checkpoint stores`);
    trainer.lossScaler.restore(meta.lossScale);
  }
  return { step: meta.step, losses: [...meta.losses] as Point[], val: [...meta.val] as Point[] };
}

/** Writes the trainer's params and optimizer state (as `optimizer.NAME`) to `file`, with `metadata`. */
export async function writeCheckpoint(file: string, trainer: Pick<StepRunner, 'readParams' | 'readState'>, src: Pick<Source, 'params' | 'state'>, metadata: Record<string, string>): Promise<void> {
  const params = await trainer.readParams();
  const state = await trainer.readState();
  // Entries, not a record: a name given twice is refused by the writer instead of overwriting.
  const tensors: [string, TensorInput][] = [];
  for (const p of src.params) tensors.push([p.name, { shape: p.shape, data: params[p.name] }]);
  for (const s of src.state) tensors.push([statePrefix + s.name, { shape: s.shape, data: state[s.name] }]);
  saveCheckpoint(file, tensors, { format: checkpointFormat, ...metadata });
}
