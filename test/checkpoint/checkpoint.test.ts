// Checkpoints in safetensors: the round trip, a corpus of broken files each rejected with a
// whole-message error naming what is wrong, and SIGKILL at random moments during saves never
// leaving a corrupt or missing file.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint, requireTensor, saveCheckpoint } from '../../runtime/checkpoint/node.ts';
import { decodeSafetensors, encodeSafetensors, toFloat32 } from '../../runtime/checkpoint/safetensors.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-ckpt-'));

/** A file from a header object and a data length (bytes of zeros). */
function fileOf(header: unknown, dataBytes: number, headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  return out;
}

describe('safetensors', () => {
  it('round-trips tensors and metadata (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), fc.boolean()), { maxLength: 5 }),
        fc.dictionary(fc.string().filter((k) => k !== '__proto__'), fc.string(), { maxKeys: 3 }),
        (specs, metadata) => {
          const tensors = Object.fromEntries(
            specs.map(([shape, isFloat], i) => {
              const n = shape.reduce((a, b) => a * b, 1);
              const data = isFloat ? Float32Array.from({ length: n }, (_, j) => j * 0.5 - i) : Int32Array.from({ length: n }, (_, j) => j - i);
              return [`t${i}.w`, { shape, data }];
            }),
          );
          const bytes = encodeSafetensors(tensors, metadata);
          expect(new DataView(bytes.buffer).getBigUint64(0, true) % 8n).toBe(0n);
          const d = decodeSafetensors(bytes);
          expect(d.metadata).toEqual(metadata);
          expect(Object.keys(d.tensors)).toEqual(Object.keys(tensors));
          for (const [name, t] of Object.entries(tensors)) {
            expect(d.tensors[name].shape).toEqual(t.shape);
            expect(d.tensors[name].dtype).toBe(t.data instanceof Float32Array ? 'F32' : 'I32');
            const back = t.data instanceof Float32Array ? toFloat32(name, d.tensors[name]) : new Int32Array(d.tensors[name].data.buffer);
            expect(back).toEqual(t.data);
          }
        },
      ),
    );
  });

  it('saveCheckpoint and loadCheckpoint: the file, no temporary left behind', () => {
    const dir = tmp();
    const file = join(dir, 'checkpoint.safetensors');
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]);
    saveCheckpoint(file, { w: { shape: [2, 3], data: w } }, { step: '7' });
    const c = loadCheckpoint(file);
    expect(c.metadata).toEqual({ step: '7' });
    expect(requireTensor(c, 'w', file, [2, 3])).toEqual(w);
    expect(readdirSync(dir)).toEqual(['checkpoint.safetensors']);
    // The header is what other tools read.
    const raw = readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    expect(JSON.parse(raw.subarray(8, 8 + n).toString())).toEqual({
      __metadata__: { step: '7' },
      w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
    });
  });

  it('a corpus of broken files: each a whole-message error', () => {
    const good = encodeSafetensors({ a: { shape: [2], data: Float32Array.of(1, 2) }, b: { shape: [3], data: Int32Array.of(1, 2, 3) } }, { step: '1' });
    const e = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });
    const cases: [string, Uint8Array, string][] = [
      ['empty', new Uint8Array(0), 'f: the file is 0 bytes, too short for the 8-byte header length'],
      ['truncated length', good.slice(0, 5), 'f: the file is 5 bytes, too short for the 8-byte header length'],
      ['truncated header', good.slice(0, 20), `f: the header length ${new DataView(good.buffer).getBigUint64(0, true)} runs past the end of the file (12 bytes after the length): truncated?`],
      ['truncated data', good.slice(0, good.length - 4), "f: tensor 'b': data_offsets [8, 20] run past the end of the data (16 bytes): truncated?"],
      ['huge header length', fileOf('{}', 0, 2 ** 40), 'f: the header length 1099511627776 exceeds the limit of 100000000 bytes (not a safetensors file?)'],
      ['header length 0', fileOf('', 0, 0), 'f: the header length 0 is too short for a JSON object'],
      ['bad JSON', fileOf('{"a": ', 0), 'f: the header is not valid UTF-8 JSON ('],
      ['not UTF-8', (() => { const f = fileOf('{"\u00e9":1}', 0); f[10] = 0xff; return f; })(), 'f: the header is not valid UTF-8 JSON ('],
      ['header an array', fileOf([], 0), 'f: the header must be a JSON object'],
      ['metadata not strings', fileOf({ __metadata__: { step: 3 } }, 0), 'f: __metadata__.step must be a string, got 3'],
      ['metadata an array', fileOf({ __metadata__: ['x'] }, 0), 'f: __metadata__ must be an object of strings'],
      ['entry not an object', fileOf({ a: 3 }, 0), "f: tensor 'a': the entry must be an object with dtype, shape and data_offsets"],
      ['wrong dtype', fileOf({ a: e('F33', [1], [0, 4]) }, 4), "f: tensor 'a': unknown dtype \"F33\" (expected one of BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64)"],
      ['bad shape', fileOf({ a: e('F32', [-1], [0, 4]) }, 4), "f: tensor 'a': shape must be an array of integers >= 0, got [-1]"],
      ['bad offsets', fileOf({ a: e('F32', [1], [0]) }, 4), "f: tensor 'a': data_offsets must be [begin, end], two integers >= 0, got [0]"],
      ['offsets reversed', fileOf({ a: e('F32', [1], [4, 0]) }, 4), "f: tensor 'a': data_offsets [4, 0] ends before it begins"],
      ['offsets out of range', fileOf({ a: e('F32', [2], [0, 8]) }, 4), "f: tensor 'a': data_offsets [0, 8] run past the end of the data (4 bytes): truncated?"],
      ['shape/bytes mismatch', fileOf({ a: e('F32', [3], [0, 8]) }, 8), "f: tensor 'a': shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] hold 8"],
      ['overlapping', fileOf({ a: e('F32', [2], [0, 8]), b: e('F32', [2], [4, 12]) }, 12), "f: tensors 'a' [0, 8] and 'b' [4, 12] overlap"],
    ];
    for (const [kind, bytes, message] of cases) {
      let got: unknown;
      try {
        decodeSafetensors(bytes, 'f');
      } catch (err) {
        got = err;
      }
      expect(got, kind).toBeInstanceOf(Error);
      const msg = (got as Error).message;
      if (message.endsWith('(')) expect(msg.startsWith(message), `${kind}: ${msg}`).toBe(true);
      else expect(msg, kind).toBe(message);
    }
  });

  it('missing, mis-shaped and wrongly typed tensors, and a missing file', () => {
    const c = decodeSafetensors(encodeSafetensors({ a: { shape: [2], data: Float32Array.of(1, 2) }, i: { shape: [1], data: Int32Array.of(1) } }), 'f');
    expect(() => requireTensor(c, 'b', 'f')).toThrow(/^f: missing tensor 'b'$/);
    expect(() => requireTensor(c, 'a', 'f', [3])).toThrow(/^f: tensor 'a' has shape \[2\], expected \[3\]$/);
    expect(() => requireTensor(c, 'i', 'f')).toThrow(/^f: tensor 'i' is I32, expected F32$/);
    const missing = join(tmp(), 'nope.safetensors');
    expect(() => loadCheckpoint(missing)).toThrow(new RegExp(`^${missing}: no such checkpoint file$`));
  });

  it('SIGKILL during saves never leaves a corrupt or missing checkpoint (50 kills)', async () => {
    const dir = tmp();
    const child = join(import.meta.dirname, 'save-loop.ts');
    // 5 lanes of 10 kills each, every lane saving to its own file: 50 kills at random moments in
    // the time of 10 child start-ups.
    const lanes = 5;
    const killsPerLane = 10;
    const lane = async (l: number) => {
      const file = join(dir, `lane${l}.safetensors`);
      let lastSaved = 0;
      for (let k = 0; k < killsPerLane; k++) {
        const p = spawn(process.execPath, ['--import', 'tsx', child, file], { stdio: ['ignore', 'pipe', 'inherit'] });
        let saved = 0;
        let buf = '';
        const firstSave = new Promise<void>((resolve, reject) => {
          p.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            for (const m of buf.matchAll(/saved (\d+)\n/g)) saved = Math.max(saved, Number(m[1]));
            buf = buf.slice(buf.lastIndexOf('\n') + 1);
            if (saved > 0) resolve();
          });
          p.on('exit', (code, sig) => reject(new Error(`the child exited (${code ?? sig}) before saving`)));
        });
        await firstSave;
        // Somewhere in the middle of a later save.
        await new Promise((r) => setTimeout(r, Math.random() * 40));
        const exited = new Promise((r) => p.on('exit', r));
        p.kill('SIGKILL');
        await exited;
        const c = loadCheckpoint(file);
        const step = Number(c.metadata.step);
        // At least what the child reported saved; at most one past it (the save whose report was lost).
        expect(step).toBeGreaterThanOrEqual(Math.max(saved, lastSaved));
        expect(step).toBeLessThanOrEqual(saved + 1);
        const a = requireTensor(c, 'a', file, [512, 512]);
        expect(a.every((x) => x === step)).toBe(true);
        expect(new Int32Array(c.tensors.b.data.buffer).every((x) => x === -step)).toBe(true);
        lastSaved = step;
      }
      expect(lastSaved).toBeGreaterThan(killsPerLane);
      // The next save removes the temporary files the killed saves left.
      saveCheckpoint(file, { a: { shape: [1], data: Float32Array.of(0) } }, { step: '0' });
    };
    await Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)));
    expect(readdirSync(dir).sort()).toEqual(Array.from({ length: lanes }, (_, l) => `lane${l}.safetensors`));
  }, 120_000);
});
