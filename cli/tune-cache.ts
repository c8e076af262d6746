// The tuner's cache on disk: per adapter (vendor, architecture, device, description: Dawn's
// description carries the driver and its version) and kernel target, the matmul tile that won for
// each shape, in $LOMOC_CACHE_DIR, else $XDG_CACHE_HOME/lomoc, else ~/.cache/lomoc. A cache is an
// optimisation only: a missing, corrupt or unwritable one is a warning and never fails a command;
// a write is a temp file renamed over the old one, so a reader never sees half a file.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { matmulCandidates, type MatmulTile, type TargetName } from '../compiler/codegen/wgsl/target.ts';
import type { AdapterInfoLike } from '../contract/adapter-kind.ts';

/** The adapter fields a tuning result belongs to. */
export interface AdapterIdentity {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
}

export const adapterIdentity = (info: AdapterInfoLike): AdapterIdentity => ({
  vendor: info.vendor ?? '',
  architecture: info.architecture ?? '',
  device: info.device ?? '',
  description: info.description ?? '',
});

/** One shape's result: the winner, its time and the target tile's (ms per dispatch, best of the repetitions). */
export interface TunedShape {
  readonly tile: MatmulTile;
  readonly ms: number;
  readonly defaultMs: number;
}

const tileSchema = z.object({
  wgX: z.number(), wgY: z.number(), tm: z.number(), tn: z.number(), layout: z.enum(['interleaved', 'blocked']), vec4: z.boolean().optional(),
}).strict();
const fileSchema = z.object({
  format: z.literal('lomoc-tune'),
  version: z.literal(1),
  adapter: z.object({ vendor: z.string(), architecture: z.string(), device: z.string(), description: z.string() }),
  target: z.enum(['cpu', 'gpu']),
  shapes: z.record(z.string(), z.object({ tile: tileSchema, ms: z.number(), defaultMs: z.number() })),
});

/** The folder: $LOMOC_CACHE_DIR, $XDG_CACHE_HOME/lomoc, or ~/.cache/lomoc. */
export function tuneCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOMOC_CACHE_DIR) return env.LOMOC_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'lomoc');
}

/** tune-<target>-<12 hex digits of the adapter's identity>.json in `dir`. */
export function tuneCachePath(dir: string, adapter: AdapterIdentity, target: TargetName): string {
  const hash = createHash('sha256').update(JSON.stringify([adapter.vendor, adapter.architecture, adapter.device, adapter.description])).digest('hex');
  return path.join(dir, `tune-${target}-${hash.slice(0, 12)}.json`);
}

const sameTile = (a: MatmulTile, b: MatmulTile) =>
  a.wgX === b.wgX && a.wgY === b.wgY && a.tm === b.tm && a.tn === b.tn && a.layout === b.layout && (a.vec4 ?? true) === (b.vec4 ?? true);

/**
 * The cached shapes for this adapter and target; {} when there is no file. A file that does not
 * parse, belongs to another adapter, or names a tile that is no longer a candidate (an older
 * lomoc's) is reported through `warn` and its shapes (or that shape) are ignored.
 */
export function readTuneCache(file: string, adapter: AdapterIdentity, target: TargetName, warn: (message: string) => void): Record<string, TunedShape> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warn(`tuning cache ${file}: cannot be read (${(e as Error).message}); tuning again`);
    return {};
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    warn(`tuning cache ${file}: not JSON (${(e as Error).message}); ignored, tuning again`);
    return {};
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    warn(`tuning cache ${file}: ${issue.path.join('.') || 'the file'}: ${issue.message}; ignored, tuning again`);
    return {};
  }
  const c = parsed.data;
  if (c.target !== target || JSON.stringify(adapterIdentity(c.adapter)) !== JSON.stringify(adapter)) {
    warn(`tuning cache ${file}: written for another adapter or target; ignored, tuning again`);
    return {};
  }
  const out: Record<string, TunedShape> = {};
  for (const [key, shape] of Object.entries(c.shapes)) {
    if (matmulCandidates[target].some((t) => sameTile(t, shape.tile))) out[key] = shape;
    else warn(`tuning cache ${file}: shape ${key}: tile ${JSON.stringify(shape.tile)} is not a ${target} candidate; tuning it again`);
  }
  return out;
}

/** Writes `shapes` (temp file, then rename); a failure is reported through `warn`, never thrown. */
export function writeTuneCache(file: string, adapter: AdapterIdentity, target: TargetName, shapes: Readonly<Record<string, TunedShape>>, warn: (message: string) => void): void {
  const body = { format: 'lomoc-tune', version: 1, adapter, target, shapes } satisfies z.input<typeof fileSchema>;
  const temp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(temp, `${JSON.stringify(body, null, 1)}\n`);
    fs.renameSync(temp, file);
  } catch (e) {
    try {
      fs.rmSync(temp, { force: true });
    } catch {
      // the warning below says the write failed; a stray temp file is all that is left
    }
    warn(`tuning cache ${file}: cannot be written (${(e as Error).message}); the results are used but not kept`);
  }
}
