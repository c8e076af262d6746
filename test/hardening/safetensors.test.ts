// Checkpoints are untrusted input too: the header's keys, offsets and the training metadata are
// checked before any of it is used. Each case names what main did with it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../../runtime/checkpoint/node.ts';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../../runtime/checkpoint/safetensors.ts';
import { parseTrainMetadata, runOf } from '../../runtime/checkpoint/train-metadata.ts';
import { run } from '../support/cli.ts';

/** A file from header JSON text and a data length (bytes of zeros). */
function fileOf(header: string | object, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}
const error = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return (e as Error).message;
  }
  return 'accepted';
};
const e = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });
const f32 = (...xs: number[]) => ({ shape: [xs.length], data: Float32Array.from(xs) });

describe('safetensors headers', () => {
  it('a key given twice is refused (JSON.parse on main kept the last silently)', () => {
    const t = JSON.stringify(e('F32', [1], [0, 4]));
    expect(error(() => decodeSafetensors(fileOf(`{"a":${t},"a":${JSON.stringify(e('F32', [1], [4, 8]))}}`, 8), 'f'))).toBe(
      "f: the key 'a' appears twice (one would silently replace the other)",
    );
    expect(error(() => decodeSafetensors(fileOf(`{"__metadata__":{"step":"1","step":"2"},"a":${t}}`, 4), 'f'))).toBe(
      "f: __metadata__: the key 'step' appears twice (one would silently replace the other)",
    );
    // Escapes spell the same key differently: still the same key.
    expect(error(() => decodeSafetensors(fileOf(`{"ab":${t},"a\\u0062":${t}}`, 4), 'f'))).toBe("f: the key 'ab' appears twice (one would silently replace the other)");
  });

  it('the writer refuses a name given twice instead of overwriting (a param named optimizer.m.w on main)', () => {
    expect(error(() => encodeSafetensors([['optimizer.m.w', f32(1)], ['w', f32(2)], ['optimizer.m.w', f32(3)]]))).toBe(
      "tensor 'optimizer.m.w' is given twice: one would overwrite the other in the file",
    );
    const dir = mkdtempSync(join(tmpdir(), 'lomoc-hardening-st-'));
    expect(error(() => saveCheckpoint(join(dir, 'c.safetensors'), [['a', f32(1)], ['a', f32(1)]]))).toBe("tensor 'a' is given twice: one would overwrite the other in the file");
  });

  it('zero-size tensors neither overlap nor hide an overlap (main missed a [0, 8] and b [6, 14] around z [4, 4])', () => {
    const header = { a: e('F32', [2], [0, 8]), z: e('F32', [0], [4, 4]), b: e('F32', [2], [6, 14]) };
    expect(error(() => decodeSafetensors(fileOf(header, 16), 'f'))).toBe("f: tensors 'a' [0, 8] and 'b' [6, 14] overlap");
    const ok = decodeSafetensors(fileOf({ a: e('F32', [2], [0, 8]), z: e('F32', [0, 3], [4, 4]), b: e('F32', [2], [8, 16]) }, 16), 'f');
    expect(Object.keys(ok.tensors)).toEqual(['a', 'z', 'b']);
    expect(ok.tensors.z.data.byteLength).toBe(0);
    // A long tensor overlaps a later one that is not its neighbour in offset order.
    expect(error(() => decodeSafetensors(fileOf({ a: e('U8', [16], [0, 16]), b: e('U8', [2], [2, 4]), c: e('U8', [2], [10, 12]) }, 16), 'f'))).toBe(
      "f: tensors 'a' [0, 16] and 'b' [2, 4] overlap",
    );
    expect(error(() => decodeSafetensors(fileOf({ z: e('F32', [0], [20, 20]) }, 16), 'f'))).toBe("f: tensor 'z': data_offsets [20, 20] run past the end of the data (16 bytes): truncated?");
  });

  it('tensors named like Object.prototype members are data (main: a `__proto__` tensor vanished on write and on read)', () => {
    const names = ['__proto__', 'toString', 'constructor', 'hasOwnProperty'];
    const d = decodeSafetensors(encodeSafetensors(names.map((n, i) => [n, f32(i)] as const)), 'f');
    expect(Object.keys(d.tensors)).toEqual(names);
    names.forEach((n, i) => expect(new Float32Array(d.tensors[n].data.slice().buffer)).toEqual(Float32Array.of(i)));
    const raw = decodeSafetensors(fileOf('{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), 'f');
    expect(Object.keys(raw.tensors)).toEqual(['__proto__']);
    const meta = decodeSafetensors(fileOf('{"__metadata__":{"__proto__":"x","toString":"y"}}', 0), 'f').metadata;
    expect(Object.entries(meta)).toEqual([['__proto__', 'x'], ['toString', 'y']]);
  });
});

const good = { format: 'lomoc-checkpoint/1', step: '2', dataPosition: '2', seed: '0', run: '{"lr":"0.01"}', losses: '[{"step":1,"loss":3.5},{"step":2,"loss":3.25}]', val: '[{"step":2,"loss":3.4}]' };
const meta = (change: Record<string, string | undefined>) => error(() => parseTrainMetadata(JSON.parse(JSON.stringify({ ...good, ...change })), 'f'));

describe('training metadata (__metadata__) is checked field by field', () => {
  it('a well-formed one reads back typed', () => {
    expect(parseTrainMetadata(good, 'f')).toEqual({
      format: 'lomoc-checkpoint/1', step: 2, dataPosition: 2, seed: 0, run: { lr: '0.01' },
      losses: [{ step: 1, loss: 3.5 }, { step: 2, loss: 3.25 }], val: [{ step: 2, loss: 3.4 }],
    });
    expect(runOf(good, 'f')).toEqual({ lr: '0.01' });
  });

  it('step: a whole number written as digits (main: -5, 1.5 and 1e9 resumed)', () => {
    const msg = 'f: __metadata__.step: expected a step count in 0..9007199254740991, written as digits';
    for (const step of ['-5', '1.5', '1e3', ' 2', '02', '', '9007199254740992']) expect(meta({ step }), step).toBe(msg);
    expect(meta({ step: undefined })).toBe('f: __metadata__.step: missing');
    expect(meta({ step: '1000000000', dataPosition: '1000000000' })).toBe('f: __metadata__.losses: 2 losses recorded, expected one for each of the 1000000000 steps');
    expect(meta({ dataPosition: '3' })).toBe('f: __metadata__.dataPosition: 3 does not match step 2');
    expect(meta({ seed: '4294967296' })).toBe('f: __metadata__.seed: expected a seed in 0..4294967295, written as digits');
  });

  it('run: JSON text of an object of strings (main: JSON.parse threw a raw SyntaxError)', () => {
    expect(meta({ run: 'not json' })).toBe('f: __metadata__.run: expected an object of strings as JSON text, got "not json"');
    expect(meta({ run: '[1]' })).toBe('f: __metadata__.run: expected an object of strings: Invalid input: expected record, received array');
    expect(meta({ run: '{"lr":0.01}' })).toBe('f: __metadata__.run: expected an object of strings (at lr): Invalid input: expected string, received number');
    expect(error(() => runOf({ run: '{' }, 'f'))).toBe('f: __metadata__.run: expected an object of strings as JSON text, got "{"');
  });

  it('losses and val: arrays of {step, loss}, one loss for each step trained', () => {
    const what = 'expected an array of {step, loss} with finite losses';
    expect(meta({ losses: '{"a":1}' })).toBe(`f: __metadata__.losses: ${what}: Invalid input: expected array, received object`);
    expect(meta({ losses: '[3.5, 3.25]' })).toBe(`f: __metadata__.losses: ${what} (at 0): Invalid input: expected object, received number`);
    expect(meta({ losses: '[{"step":1,"loss":null},{"step":2,"loss":1}]' })).toBe(`f: __metadata__.losses: ${what} (at 0.loss): Invalid input: expected number, received null`);
    expect(meta({ losses: '[{"step":1,"loss":1},{"step":3,"loss":1}]' })).toBe('f: __metadata__.losses: entry 1 is for step 3, expected 2');
    expect(meta({ val: '[{"step":3,"loss":1}]' })).toBe('f: __metadata__.val: entry 0 is for step 3, after the checkpoint\'s step 2');
    expect(meta({ val: '[{"step":2,"loss":1},{"step":1,"loss":1}]' })).toBe("f: __metadata__.val: entry 1 is for step 1, not after entry 0's step 2");
    expect(meta({ format: 'lomoc-checkpoint/2' })).toBe('f: __metadata__.format: Invalid input: expected "lomoc-checkpoint/1"');
  });

  it('lomoc train --resume reports a bad field as a user error naming it, before any device is acquired', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lomoc-hardening-resume-'));
    const file = join(dir, 'checkpoint.safetensors');
    const config = JSON.stringify({ batch: 2, seq: 8, vocab: 256, width: 16, layers: 2, heads: 2 });
    const run0 = { model: 'gpt', config, optimizer: 'lomo', checkpoint: 'none', 'clip-norm': '', 'clip-value': '', lr: '0.01', 'lr-schedule': 'constant', 'weight-decay': '0', data: 'moby-dick', tokenizer: 'bytes', seed: '0' };
    saveCheckpoint(file, {}, { ...good, run: JSON.stringify(run0), step: '-5' });
    const argv = ['train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--steps', '4', '--resume', dir];
    expect(await run(...argv)).toEqual({ code: 1, stdout: '', stderr: `error: lomoc train: --resume: ${file}: __metadata__.step: expected a step count in 0..9007199254740991, written as digits` });
    saveCheckpoint(file, {}, { format: 'lomoc-checkpoint/1', run: '{"model": gpt}' });
    expect(await run(...argv)).toEqual({ code: 1, stdout: '', stderr: `error: lomoc train: --resume: ${file}: __metadata__.run: expected an object of strings as JSON text, got "{\\"model\\": gpt}"` });
  }, 60_000);
});
