// What a Hugging Face model family's table says: how its config.json becomes a lomoc model config
// and back, and which HF tensor fills which lomoc params in which layout. Pure data and small
// functions on Float32Arrays; reading and writing files is runtime/checkpoint/hf-folder.ts's job.
import { LomocError } from '../../compiler/diagnostics.ts';
import type { Config } from '../../compiler/dsl/model.ts';

/** How a lomoc param sits in an HF tensor: the same layout, transposed ([out, in] vs [in, out]), or a column range of the last axis. */
export interface Part {
  readonly param: string;
  readonly shape: readonly number[];
  readonly layout: 'same' | 'transpose';
  /** Columns [begin, end) of the HF tensor's last axis (GPT-2's c_attn packs q, k and v). */
  readonly cols?: readonly [number, number];
}

/** One HF tensor and the lomoc params it fills. */
export interface HfTensorSpec {
  readonly hf: string;
  readonly shape: readonly number[];
  readonly parts: readonly Part[];
}

export interface HfFamily {
  /** config.json's model_type. */
  readonly modelType: string;
  /** The lomoc model (its model(name, ...)) and the file that declares it. */
  readonly model: string;
  readonly modelFile: string;
  /** The lomoc config for config.json; `file` names it in errors. */
  readonly fromHf: (hf: Readonly<Record<string, unknown>>, file: string, run: { batch: number; seq?: number }) => Config;
  /** config.json for a lomoc config. */
  readonly toHf: (cfg: Config) => Record<string, unknown>;
  /** Every HF tensor the model's params need, in HF's order. */
  readonly tensors: (cfg: Config) => readonly HfTensorSpec[];
  /** The name as the table spells it (e.g. without GPT-2's optional `transformer.` prefix). */
  readonly canonical: (name: string) => string;
  /** Tensors in HF files that are not params (causal-mask buffers, a tied head's copy). */
  readonly ignored: (canonical: string, cfg: Config) => boolean;
}

/** A positive integer key of config.json, or an error naming the file and the key. */
export function intKey(hf: Readonly<Record<string, unknown>>, key: string, file: string, fallback?: number): number {
  const v = hf[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new LomocError(`${file}: key '${key}' must be a positive integer, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return v;
}
export function numKey(hf: Readonly<Record<string, unknown>>, key: string, file: string, fallback: number): number {
  const v = hf[key] ?? fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new LomocError(`${file}: key '${key}' must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}
/** A key lomoc supports only at one value (or absent/null). */
export function onlyKey(hf: Readonly<Record<string, unknown>>, key: string, file: string, allowed: readonly unknown[], why: string): void {
  const v = hf[key];
  if (v !== undefined && v !== null && !allowed.includes(v))
    throw new LomocError(`${file}: key '${key}' is ${JSON.stringify(v)}; lomoc supports ${allowed.map((a) => JSON.stringify(a)).join(' or ')} (${why})`);
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The lomoc params held in one HF tensor's values (laid out as spec.shape). */
export function splitHf(spec: HfTensorSpec, data: Float32Array): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const only = spec.parts[0];
  // One param in HF's own layout (most tensors): the values as they are, no copy.
  if (spec.parts.length === 1 && only.layout === 'same' && !only.cols) return { [only.param]: data };
  const cols = spec.shape[spec.shape.length - 1];
  const rows = data.length / cols;
  for (const p of spec.parts) {
    const [c0, c1] = p.cols ?? [0, cols];
    const w = c1 - c0;
    const v = new Float32Array(rows * w);
    // [rows, cols] -> [rows, w] (same) or [w, rows] (transposed).
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < w; c++) v[p.layout === 'same' ? r * w + c : c * rows + r] = data[r * cols + c0 + c];
    out[p.param] = v;
  }
  return out;
}

/** One HF tensor's values from the lomoc params it holds: the inverse of splitHf. */
export function joinHf(spec: HfTensorSpec, params: Readonly<Record<string, Float32Array>>): Float32Array {
  const out = new Float32Array(numel(spec.shape));
  const cols = spec.shape[spec.shape.length - 1];
  const rows = out.length / cols;
  for (const p of spec.parts) {
    const v = params[p.param];
    if (!v) throw new LomocError(`param '${p.param}' (for Hugging Face tensor '${spec.hf}') is missing`);
    const [c0, c1] = p.cols ?? [0, cols];
    const w = c1 - c0;
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < w; c++) out[r * cols + c0 + c] = v[p.layout === 'same' ? r * w + c : c * rows + r];
  }
  return out;
}
