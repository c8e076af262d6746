// Hugging Face model folders on disk (Node only): config.json plus model.safetensors, or shards
// model-0000k-of-0000n.safetensors named by model.safetensors.index.json. Opening reads only the
// headers; each tensor's bytes are read from its shard by offset when asked for, so loading a 7B
// checkpoint holds one tensor at a time in host memory, never the file. Writing goes to a
// temporary sibling folder that is renamed into place: an export is whole or absent.
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fromF16bits } from '../../contract/f16.ts';
import { dtypeBytes, encodeHeader, headerLength, parseHeader, SafetensorsError, type Dtype } from './safetensors.ts';

export class HfFolderError extends Error {
  override name = 'HfFolderError';
}

/** Where one tensor's bytes lie: the shard file and the absolute byte range in it. */
export interface HfTensorEntry {
  readonly name: string;
  readonly file: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly bytes: number;
}

export interface HfFolder {
  readonly dir: string;
  readonly configFile: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** The weight files, in order: one, or the shards the index names. */
  readonly files: readonly string[];
  readonly tensors: ReadonlyMap<string, HfTensorEntry>;
}

export const floatDtypes = ['F32', 'F16', 'BF16'] as const;
const shardName = /^model-(\d+)-of-(\d+)\.safetensors$/;
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HfFolderError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new HfFolderError(`${file}: expected a JSON object`);
  return v;
}

function readHeader(file: string): { entries: HfTensorEntry[]; metadata: Record<string, string> } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const first = new Uint8Array(8);
    readSync(fd, first, 0, Math.min(8, size), 0);
    const n = headerLength(first, size, file);
    const prefix = new Uint8Array(8 + n);
    readSync(fd, prefix, 0, 8 + n, 0);
    const h = parseHeader(prefix, size, file);
    const entries = h.entries.map((e) => ({ name: e.name, file, dtype: e.dtype, shape: e.shape, offset: h.dataStart + e.begin, bytes: e.end - e.begin }));
    return { entries, metadata: h.metadata };
  } catch (e) {
    if (e instanceof SafetensorsError) throw new HfFolderError(e.message);
    throw e;
  } finally {
    closeSync(fd);
  }
}

/** The shards an index names, checked against the folder: none missing, none unnamed, every tensor where the index says. */
function shardsFromIndex(dir: string, indexFile: string): { files: string[]; entries: HfTensorEntry[] } {
  const index = readJson(indexFile);
  const map = index.weight_map;
  if (!isObject(map) || !Object.values(map).every((f) => typeof f === 'string'))
    throw new HfFolderError(`${indexFile}: expected "weight_map", an object from tensor names to shard files`);
  const byShard = new Map<string, string[]>();
  for (const [t, f] of Object.entries(map as Record<string, string>)) byShard.set(f, [...(byShard.get(f) ?? []), t]);
  for (const [f, names] of byShard)
    if (!existsSync(join(dir, f))) throw new HfFolderError(`${indexFile}: shard '${f}' (holding '${names[0]}'${names.length > 1 ? ` and ${names.length - 1} more` : ''}) is missing from ${dir}`);
  const unnamed = readdirSync(dir).filter((f) => shardName.test(f) && !byShard.has(f));
  if (unnamed.length) throw new HfFolderError(`${indexFile}: shard '${unnamed[0]}' in ${dir} is not named in the index's weight_map`);
  const files = [...byShard.keys()].sort();
  const entries: HfTensorEntry[] = [];
  for (const f of files) {
    const shard = readHeader(join(dir, f));
    for (const e of shard.entries) {
      const want = (map as Record<string, string>)[e.name];
      if (want !== f) throw new HfFolderError(`${indexFile}: tensor '${e.name}' is in shard '${f}', but the index ${want ? `puts it in '${want}'` : 'does not name it'}`);
      entries.push(e);
    }
    const found = new Set(shard.entries.map((e) => e.name));
    const lost = byShard.get(f)!.find((n) => !found.has(n));
    if (lost) throw new HfFolderError(`${indexFile}: tensor '${lost}' is named for shard '${f}', which does not hold it`);
  }
  return { files: files.map((f) => join(dir, f)), entries };
}

/** Reads config.json and every weight file's header (no tensor data). */
export function openHfFolder(dir: string): HfFolder {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new HfFolderError(`${dir}: no such folder`);
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) throw new HfFolderError(`${dir}: no config.json (a Hugging Face model folder holds config.json and model.safetensors)`);
  const config = readJson(configFile);
  const indexFile = join(dir, 'model.safetensors.index.json');
  const single = join(dir, 'model.safetensors');
  let found: { files: string[]; entries: HfTensorEntry[] };
  if (existsSync(indexFile)) found = shardsFromIndex(dir, indexFile);
  else if (existsSync(single)) found = { files: [single], entries: readHeader(single).entries };
  else throw new HfFolderError(`${dir}: no model.safetensors or model.safetensors.index.json (only safetensors weights are read, not pytorch_model.bin)`);
  return { dir, configFile, config, files: found.files, tensors: new Map(found.entries.map((e) => [e.name, e])) };
}

/** One tensor's values as f32, read from its file by offset; F16 and BF16 widen exactly. */
export function readTensorF32(e: HfTensorEntry): Float32Array {
  if (!(floatDtypes as readonly string[]).includes(e.dtype))
    throw new HfFolderError(`${e.file}: tensor '${e.name}' is ${e.dtype}; expected one of ${floatDtypes.join(', ')}`);
  const raw = new Uint8Array(e.bytes);
  const fd = openSync(e.file, 'r');
  try {
    let at = 0;
    while (at < e.bytes) {
      const n = readSync(fd, raw, at, e.bytes - at, e.offset + at);
      if (n === 0) throw new HfFolderError(`${e.file}: tensor '${e.name}' ends past the end of the file: truncated?`);
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  if (e.dtype === 'F32') return new Float32Array(raw.buffer);
  const half = new Uint16Array(raw.buffer);
  const out = new Float32Array(half.length);
  if (e.dtype === 'BF16') {
    // bf16 is the top half of an f32: shifting it back is exact.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
  } else for (let i = 0; i < half.length; i++) out[i] = fromF16bits(half[i]);
  return out;
}

/** A tensor to write: its bytes are produced when its shard is written, one tensor at a time. */
export interface HfTensorOut {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: () => Uint8Array;
}

const byteSize = (t: { dtype: Dtype; shape: readonly number[] }) => t.shape.reduce((a, b) => a * b, 1) * dtypeBytes[t.dtype];

/** Splits tensors in order into shards of at most maxShardBytes (a tensor larger than that gets a shard of its own). */
export function shardTensors<T extends { dtype: Dtype; shape: readonly number[] }>(tensors: readonly T[], maxShardBytes: number): T[][] {
  const shards: T[][] = [];
  let size = 0;
  for (const t of tensors) {
    const b = byteSize(t);
    if (!shards.length || (size + b > maxShardBytes && size > 0)) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += b;
  }
  return shards.length ? shards : [[]];
}

function writeFile(file: string, parts: Iterable<Uint8Array>): void {
  const fd = openSync(file, 'wx', 0o644);
  try {
    for (const p of parts) for (let at = 0; at < p.byteLength; ) at += writeSync(fd, p, at, p.byteLength - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a Hugging Face folder at `out`: config.json, then model.safetensors, or shards with
 * model.safetensors.index.json past maxShardBytes. Refuses a non-empty `out`; builds everything
 * in a temporary sibling and renames it into place, removing the temporary on any failure.
 */
export function writeHfFolder(out: string, config: Readonly<Record<string, unknown>>, tensors: readonly HfTensorOut[], maxShardBytes: number): string[] {
  const st = statSync(out, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new HfFolderError(`${out}: exists and is not a folder; refusing to overwrite it`);
  if (st && readdirSync(out).length) throw new HfFolderError(`${out}: the folder is not empty; refusing to overwrite it (choose a new --out)`);
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
  mkdirSync(dirname(out), { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeFile(join(tmp, 'config.json'), [new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n')]);
    const shards = shardTensors(tensors, maxShardBytes);
    const names = shards.length === 1 ? ['model.safetensors'] : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => {
      const header = encodeHeader(shard, { format: 'pt' });
      writeFile(join(tmp, names[i]), (function* () {
        yield header;
        for (const t of shard) {
          const d = t.data();
          if (d.byteLength !== byteSize(t)) throw new HfFolderError(`tensor '${t.name}': ${d.byteLength} bytes for ${t.dtype} [${t.shape.join(', ')}], expected ${byteSize(t)}`);
          yield d;
        }
      })());
      for (const t of shard) weightMap[t.name] = names[i];
    });
    if (shards.length > 1) {
      const total = tensors.reduce((a, t) => a + byteSize(t), 0);
      writeFile(join(tmp, 'model.safetensors.index.json'), [new TextEncoder().encode(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n')]);
    }
    if (st) rmdirSync(out); // empty: checked above
    renameSync(tmp, out);
    return ['config.json', ...names, ...(shards.length > 1 ? ['model.safetensors.index.json'] : [])];
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
