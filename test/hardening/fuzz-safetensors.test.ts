// Fuzzing safetensors checkpoints, an untrusted input: a real checkpoint (params, optimizer state,
// lomoc train's metadata) mutated at random in its header length, its header JSON (dtypes,
// shapes, offsets, duplicate and prototype keys) and its metadata fields, or truncated, must
// decode or be refused with a SafetensorsError naming what is wrong, never another exception and
// never a hang. LOMOC_FUZZ_RUNS=200000 for a long run.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, toFloat32 } from '../../runtime/checkpoint/safetensors.ts';
import { parseTrainMetadata } from '../../runtime/checkpoint/train-metadata.ts';
import { fuzzRuns, fuzzTimeout } from './tiny-bundle.ts';

const metadata = {
  format: 'lomoc-checkpoint/1', step: '3', dataPosition: '3', seed: '0', run: JSON.stringify({ model: 'gpt', lr: '0.01' }),
  compile: JSON.stringify({ optimizer: 'adamw' }), losses: JSON.stringify([1, 2, 3].map((step) => ({ step, loss: 4 - step / 10 }))), val: '[{"step":3,"loss":3.8}]',
};
const good = encodeSafetensors(
  [
    ['w', { shape: [3, 4], data: new Float32Array(12).fill(0.5) }],
    ['b', { shape: [4], data: new Float32Array(4).fill(-1) }],
    ['ids', { shape: [2], data: Int32Array.of(7, 8) }],
    ['optimizer.m.w', { shape: [3, 4], data: new Float32Array(12) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
  ],
  metadata,
);
const headerLength = Number(new DataView(good.buffer).getBigUint64(0, true));
const header = JSON.parse(new TextDecoder().decode(good.subarray(8, 8 + headerLength))) as Record<string, any>;
const data = good.subarray(8 + headerLength);

function fileOf(headerText: string, body: Uint8Array, length?: bigint): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

/** 'ok' or the clear error's message; any other exception fails the property. */
function outcome(bytes: Uint8Array): string {
  try {
    const d = decodeSafetensors(bytes, 'f');
    for (const [name, t] of Object.entries(d.tensors)) if (t.dtype === 'F32') toFloat32(name, t);
    parseTrainMetadata(d.metadata, 'f');
    return 'ok';
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    expect(e.message.startsWith('f: ') || e.message.startsWith('tensor ')).toBe(true);
    expect(e.message).not.toMatch(/\[object /);
    return e.message;
  }
}

const names = [...Object.keys(header), '__proto__', 'toString', 'constructor', 'x'];
const extremes = [0, -1, 1, 4, 7, 8, 12, 48, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, 1.5, -0.5];
const json: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...extremes) },
  { weight: 2, arbitrary: fc.constantFrom('F32', 'F16', 'BF16', 'I32', 'U8', 'F64', 'bool', '', 'toString', null, true, [], {}, [0], [0, 0], [4, 0], [0, 48], [2 ** 53, 2 ** 53 + 4], [3, 4], [0, 4], [1e9, 1e9]) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const metaValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', '0', '3', '-5', '1.5', '1e9', '1000000000', '4294967296', '9007199254740993', 'not json', '{', '[]', '{}', '[1,2,3]', '[{"step":1,"loss":null}]', '{"a":1}', 'null'),
  fc.string(),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  fc.constantFrom(3, null, [], {}),
);
const edit = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('field' as const), name: fc.constantFrom(...names), field: fc.constantFrom('dtype', 'shape', 'data_offsets', 'extra'), value: json }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('meta' as const), field: fc.constantFrom(...Object.keys(metadata), '__proto__', 'toString'), value: metaValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('entry' as const), name: fc.constantFrom(...names, '__metadata__'), value: json }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), name: fc.constantFrom(...names, '__metadata__') }) },
);
type Edit = typeof edit extends fc.Arbitrary<infer E> ? E : never;

const own = (o: Record<string, unknown>, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
function applyEdit(h: Record<string, any>, e: Edit): void {
  if (e.kind === 'field') {
    const t = Object.hasOwn(h, e.name) ? h[e.name] : own(h, e.name, {})[e.name];
    if (typeof t === 'object' && t !== null) own(t, e.field, structuredClone(e.value));
  } else if (e.kind === 'meta') {
    const m = h.__metadata__;
    if (typeof m === 'object' && m !== null) own(m, e.field, structuredClone(e.value));
  } else if (e.kind === 'entry') own(h, e.name, structuredClone(e.value));
  else delete h[e.name];
}

describe('fuzz: safetensors headers and metadata', () => {
  it('the unmutated checkpoint decodes and its metadata passes', () => {
    expect(outcome(good)).toBe('ok');
  });

  it('mutated headers and metadata decode or give a clear error', () => {
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { freq: 6 }), fc.option(fc.constantFrom('dup-tensor', 'dup-meta'), { freq: 6 }), (edits, cut, dup) => {
        const h = structuredClone(header);
        for (const e of edits) applyEdit(h, e);
        let text = JSON.stringify(h);
        if (dup === 'dup-tensor') text = text.replace(/^\{/, `{"w":${JSON.stringify(header.w)},`);
        if (dup === 'dup-meta') text = text.replace('"__metadata__":{', '"__metadata__":{"step":"1",');
        const bytes = fileOf(text, data);
        outcome(cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1)));
      }),
      { numRuns: fuzzRuns(3000) },
    );
  }, fuzzTimeout());

  it('random header lengths, flipped bytes and random files give a clear error or decode', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 2n, 7n, 8n, BigInt(headerLength - 1), BigInt(headerLength + 1), BigInt(good.length))),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.boolean(),
        (length, flips, junk, random) => {
          if (random) return void outcome(junk);
          const bytes = good.slice();
          new DataView(bytes.buffer).setBigUint64(0, length, true);
          for (const [at, b] of flips) bytes[8 + (at % (bytes.length - 8))] = b;
          outcome(bytes);
        },
      ),
      { numRuns: fuzzRuns(2000) },
    );
  }, fuzzTimeout());
});
