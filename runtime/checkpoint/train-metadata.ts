// The `__metadata__` of a checkpoint that `lomoc train` writes, checked field by field (zod)
// before any of it is used: safetensors metadata is strings only, so numbers and JSON travel as
// text, and a file edited by hand or by another tool may hold anything there. Every error names
// the file and the field. Invariant: what passes is a run that could have written it: `step`
// steps trained, one finite loss recorded for each of steps 1..step, validation points within them.
import { z } from 'zod';
import { SafetensorsError } from './safetensors.ts';
import type { LossScaleState } from '../../contract/loss-scale.ts';

export const checkpointFormat = 'lomoc-checkpoint/1';

export interface LossPoint {
  readonly step: number;
  readonly loss: number;
}

export interface TrainMetadata {
  readonly format: typeof checkpointFormat;
  readonly step: number;
  readonly dataPosition: number;
  readonly seed?: number;
  /** The run's identity (runIdentity in cli/train.ts): option name -> value. */
  readonly run: Readonly<Record<string, string>>;
  readonly compile?: unknown;
  readonly losses: readonly LossPoint[];
  readonly val: readonly LossPoint[];
  /** The loss scaler's state after `step` (runs with --loss-scale only). */
  readonly lossScale?: LossScaleState;
}

/** A whole number written as decimal text: `7`, never `7.0`, `1e3`, `-1` or ` 7`. */
const wholeText = (what: string, max: number) =>
  z.string().refine((s) => /^(0|[1-9]\d*)$/.test(s) && Number(s) <= max, { message: `expected ${what} in 0..${max}, written as digits` }).transform(Number);

/** JSON text holding a value of `schema`. */
const jsonText = <T extends z.ZodType>(what: string, schema: T) =>
  z.string().transform((s, ctx): z.output<T> => {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected ${what} as JSON text, got ${JSON.stringify(s.length > 40 ? s.slice(0, 40) + '...' : s)}` });
      return z.NEVER;
    }
    const r = schema.safeParse(v);
    if (!r.success) {
      const issue = r.error.issues[0];
      const at = issue.path.length ? ` (at ${issue.path.join('.')})` : '';
      ctx.addIssue({ code: 'custom', message: `expected ${what}${at}: ${issue.message}` });
      return z.NEVER;
    }
    return r.data;
  });

const point = z.object({ step: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), loss: z.number() }).strict();

export const trainMetadataSchema = z.object({
  format: z.literal(checkpointFormat),
  step: wholeText('a step count', Number.MAX_SAFE_INTEGER),
  dataPosition: wholeText('a position in the data', Number.MAX_SAFE_INTEGER),
  seed: wholeText('a seed', 0xffffffff).optional(),
  run: jsonText('an object of strings', z.record(z.string(), z.string())).default({}),
  compile: jsonText('an object', z.record(z.string(), z.unknown())).optional(),
  losses: jsonText('an array of {step, loss} with finite losses', z.array(point)).default([]),
  val: jsonText('an array of {step, loss} with finite losses', z.array(point)).default([]),
  lossScale: jsonText('the loss scale state {scale, cleanSteps, skipped}', z.object({
    scale: z.number().positive().max(Number.MAX_VALUE),
    cleanSteps: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    skipped: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  }).strict()).optional(),
});

/**
 * The checked `run` field alone (the run's identity), to compare with this run before the rest is
 * read: a checkpoint of another run is refused naming the differences, whatever else it holds.
 */
export function runOf(metadata: Readonly<Record<string, string>>, source: string): Readonly<Record<string, string>> {
  return parseFields(trainMetadataSchema.pick({ run: true }), metadata, source).run;
}

function parseFields<S extends z.ZodType>(schema: S, metadata: Readonly<Record<string, string>>, source: string): z.output<S> {
  const r = schema.safeParse({ ...metadata });
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = String(issue.path[0] ?? '(all)');
  throw new SafetensorsError(`${source}: __metadata__.${field}: ${!Object.hasOwn(metadata, field) ? 'missing' : issue.message}`);
}

/** The checked metadata of `source`; a SafetensorsError naming the field otherwise. */
export function parseTrainMetadata(metadata: Readonly<Record<string, string>>, source: string): TrainMetadata {
  const fail = (field: string, msg: string): never => {
    throw new SafetensorsError(`${source}: __metadata__.${field}: ${msg}`);
  };
  const m = parseFields(trainMetadataSchema, metadata, source);
  if (m.dataPosition !== m.step) fail('dataPosition', `${m.dataPosition} does not match step ${m.step}`);
  if (m.losses.length !== m.step) fail('losses', `${m.losses.length} losses recorded, expected one for each of the ${m.step} steps`);
  m.losses.forEach((p, i) => p.step !== i + 1 && fail('losses', `entry ${i} is for step ${p.step}, expected ${i + 1}`));
  m.val.forEach((p, i) => {
    if (p.step > m.step) fail('val', `entry ${i} is for step ${p.step}, after the checkpoint's step ${m.step}`);
    if (i > 0 && p.step <= m.val[i - 1].step) fail('val', `entry ${i} is for step ${p.step}, not after entry ${i - 1}'s step ${m.val[i - 1].step}`);
  });
  return m as TrainMetadata;
}
