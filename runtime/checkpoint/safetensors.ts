// The safetensors format, encoded and decoded by hand (no dependency; works in Node and browsers):
// an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON (padded with spaces to
// a multiple of 8), then the data. The header maps each tensor name to
// { dtype, shape, data_offsets: [begin, end] } (offsets relative to the start of the data) and
// may hold "__metadata__", an object of string values. Decoding checks everything before any
// byte is used: a header length that fits the file, valid JSON, known dtypes, integer shapes,
// offsets in range, shapes that match their byte counts, no two tensors sharing bytes (zero-size
// ones hold none, so they can neither overlap nor hide an overlap), and no key given twice (which
// JSON.parse would resolve silently by dropping one). Records keyed by tensor names have no
// prototype, so a tensor named `__proto__` or `toString` is data like any other.
import { firstDuplicateKey } from './duplicate-keys.ts';

export type Dtype = 'BOOL' | 'U8' | 'I8' | 'I16' | 'U16' | 'F16' | 'BF16' | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

export const dtypeBytes: Readonly<Record<Dtype, number>> = {
  BOOL: 1, U8: 1, I8: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

/** The largest header accepted (the reference implementation's limit: 100 MB). */
export const maxHeaderBytes = 100_000_000;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** One tensor: its dtype, shape, and raw little-endian bytes. */
export interface SafeTensor {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** A tensor to encode: F32 from a Float32Array, I32 from an Int32Array, or explicit dtype and bytes. */
export type TensorInput =
  | { readonly shape: readonly number[]; readonly data: Float32Array | Int32Array }
  | { readonly dtype: Dtype; readonly shape: readonly number[]; readonly data: Uint8Array };

export interface Decoded {
  readonly tensors: Record<string, SafeTensor>;
  readonly metadata: Record<string, string>;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function asSafe(name: string, t: TensorInput): SafeTensor {
  let dtype: Dtype;
  let data: Uint8Array;
  if ('dtype' in t) {
    dtype = t.dtype;
    data = t.data;
  } else {
    dtype = t.data instanceof Float32Array ? 'F32' : 'I32';
    data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }
  if (!(dtype in dtypeBytes)) throw new SafetensorsError(`tensor '${name}': unknown dtype '${dtype}'`);
  if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor '${name}': shape [${t.shape.join(', ')}] must hold integers >= 0`);
  const want = numel(t.shape) * dtypeBytes[dtype];
  if (data.byteLength !== want)
    throw new SafetensorsError(`tensor '${name}': shape [${t.shape.join(', ')}] of ${dtype} needs ${want} bytes, got ${data.byteLength}`);
  return { dtype, shape: [...t.shape], data };
}

/** Tensors to encode: by name, or as [name, tensor] entries (where a name given twice is refused, not overwritten). */
export type TensorsInput = Readonly<Record<string, TensorInput>> | readonly (readonly [string, TensorInput])[];

/** A record without a prototype: every key is data. */
export const dict = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

/** The bytes of a safetensors file holding `tensors` (in the given order) and `metadata`. */
export function encodeSafetensors(tensors: TensorsInput, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  if (!littleEndian) throw new SafetensorsError('safetensors needs a little-endian host');
  const header = dict<unknown>();
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw new SafetensorsError(`__metadata__.${k} must be a string, got ${typeof v}`);
  if (Object.keys(metadata).length) header.__metadata__ = Object.assign(dict<string>(), metadata);
  const safe: SafeTensor[] = [];
  let offset = 0;
  const entries = Array.isArray(tensors) ? (tensors as readonly (readonly [string, TensorInput])[]) : Object.entries(tensors as Readonly<Record<string, TensorInput>>);
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError("a tensor cannot be named '__metadata__'");
    if (Object.hasOwn(header, name)) throw new SafetensorsError(`tensor '${name}' is given twice: one would overwrite the other in the file`);
    const s = asSafe(name, t);
    header[name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + s.data.byteLength] };
    offset += s.data.byteLength;
    safe.push(s);
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const s of safe) {
    out.set(s.data, at);
    at += s.data.byteLength;
  }
  return out;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** One tensor's entry in a header: where its bytes lie, relative to the start of the data. */
export interface HeaderEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface Header {
  readonly entries: readonly HeaderEntry[];
  readonly metadata: Record<string, string>;
  /** Bytes before the data: 8 + the header length. */
  readonly dataStart: number;
}

/** The header length in the first 8 bytes, checked against the file's size. */
export function headerLength(first8: Uint8Array, fileBytes: number, source = 'safetensors'): number {
  const fail = (msg: string) => new SafetensorsError(`${source}: ${msg}`);
  if (!littleEndian) throw fail('safetensors needs a little-endian host');
  if (fileBytes < 8) throw fail(`the file is ${fileBytes} bytes, too short for the 8-byte header length`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(maxHeaderBytes)) throw fail(`the header length ${n} exceeds the limit of ${maxHeaderBytes} bytes (not a safetensors file?)`);
  if (n > BigInt(fileBytes - 8)) throw fail(`the header length ${n} runs past the end of the file (${fileBytes - 8} bytes after the length): truncated?`);
  if (n < 2n) throw fail(`the header length ${n} is too short for a JSON object`);
  return Number(n);
}

/**
 * Parses and checks a header alone (`prefix` holds at least its first 8 + N bytes), so a reader can
 * take each tensor's bytes from the file by offset without reading the whole file.
 */
export function parseHeader(prefix: Uint8Array, fileBytes: number, source = 'safetensors'): Header {
  const fail = (msg: string) => new SafetensorsError(`${source}: ${msg}`);
  const headerLen = headerLength(prefix, fileBytes, source);
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + headerLen));
    header = JSON.parse(text);
  } catch (e) {
    throw fail(`the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) throw fail('the header must be a JSON object');
  const dataStart = 8 + headerLen;
  const twice = firstDuplicateKey(new TextDecoder().decode(prefix.subarray(8, 8 + headerLen)));
  if (twice) throw fail(`${twice.path.length ? `${twice.path.join('.')}: ` : ''}the key '${twice.key}' appears twice (one would silently replace the other)`);
  const dataLen = fileBytes - dataStart;
  const metadata = dict<string>();
  if (Object.hasOwn(header, '__metadata__')) {
    const m = header.__metadata__;
    if (!isObject(m)) throw fail('__metadata__ must be an object of strings');
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') throw fail(`__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
      metadata[k] = v;
    }
  }
  const entries: HeaderEntry[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const at = `tensor '${name}'`;
    if (!isObject(entry)) throw fail(`${at}: the entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string' || !(dtype in dtypeBytes))
      throw fail(`${at}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(dtypeBytes).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw fail(`${at}: shape must be an array of integers >= 0, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0))
      throw fail(`${at}: data_offsets must be [begin, end], two integers >= 0, got ${JSON.stringify(offsets)}`);
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw fail(`${at}: data_offsets [${begin}, ${end}] ends before it begins`);
    if (end > dataLen) throw fail(`${at}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes): truncated?`);
    const want = numel(shape as number[]) * dtypeBytes[dtype as Dtype];
    if (end - begin !== want)
      throw fail(`${at}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${want} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    entries.push({ name, dtype: dtype as Dtype, shape: shape as number[], begin, end });
  }
  // A zero-size tensor holds no bytes to share; sorted by start, the span reaching furthest so far
  // overlaps every later one that begins inside it.
  const spans = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  let reach = spans[0];
  for (const b of spans.slice(1)) {
    if (b.begin < reach.end) throw fail(`tensors '${reach.name}' [${reach.begin}, ${reach.end}] and '${b.name}' [${b.begin}, ${b.end}] overlap`);
    if (b.end > reach.end) reach = b;
  }
  return { entries, metadata, dataStart };
}

/** Parses and checks a safetensors file; every error names `source` and the tensor or field at fault. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): Decoded {
  const { entries, metadata, dataStart } = parseHeader(bytes, bytes.byteLength, source);
  const tensors = dict<SafeTensor>();
  // Copies with their own buffers (a Node Buffer's slice is a view into a shared pool).
  for (const e of entries) tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: new Uint8Array(bytes.subarray(dataStart + e.begin, dataStart + e.end)) };
  return { tensors, metadata };
}

/** The header bytes alone (length, padded JSON) for tensors laid out in order; the data follows. */
export function encodeHeader(entries: readonly { name: string; dtype: Dtype; shape: readonly number[] }[], metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const header = dict<unknown>();
  if (Object.keys(metadata).length) header.__metadata__ = Object.assign(dict<string>(), metadata);
  let offset = 0;
  for (const e of entries) {
    if (e.name === '__metadata__' || Object.hasOwn(header, e.name)) throw new SafetensorsError(`tensor '${e.name}' is given twice or reserved: one would overwrite the other in the file`);
    const bytes = numel(e.shape) * dtypeBytes[e.dtype];
    header[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + Math.ceil(json.length / 8) * 8).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(out.length - 8), true);
  out.set(json, 8);
  return out;
}

/** An F32 tensor's values (a copy); an error naming the tensor for any other dtype. */
export function toFloat32(name: string, t: SafeTensor): Float32Array {
  if (t.dtype !== 'F32') throw new SafetensorsError(`tensor '${name}' is ${t.dtype}, expected F32`);
  return new Float32Array(new Uint8Array(t.data).buffer);
}
