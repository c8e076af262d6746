// Messages that point at the right thing: each names what the user called, at the user's line,
// with the value that is wrong; user text is escaped, never echoed raw to the terminal; a bad
// byte in a data file is named with its value and offset. Every test compares the whole message.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadText, utf8Problem } from '../../cli/train-data.ts';
import { formatDiagnostic, LomocError, printable } from '../../compiler/diagnostics.ts';
import { traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import * as bad from './fixtures/bad-models.ts';

const fx = 'test/hardening/fixtures/bad-models.ts';

function errorOf(def: ModelDef): string {
  let err: unknown;
  try {
    traceModel(def, {});
  } catch (e) {
    err = e;
  }
  expect(err, `${def.name} should fail to trace`).toBeInstanceOf(LomocError);
  return (err as LomocError).message;
}

describe('DSL composites report what the user called', () => {
  const cases: [string, ModelDef, string][] = [
    ['reshape to a negative dim names the dim', bad.reshapeNegative,
      `${fx}:6:69: error: reshape: dimension 0 of the new shape must be a positive integer or -1, got -2 in [-2, -4]`],
    ['reshape with two inferred dims', bad.reshapeTwoInferred,
      `${fx}:7:76: error: reshape: at most one dimension of the new shape may be -1, got [-1, -1]`],
    ['reshape to another element count', bad.reshapeCount,
      `${fx}:8:63: error: reshape: the new shape must hold the same number of elements (8), got [3, -1]`],
    ['mergeHeads on a rank-3 tensor names mergeHeads and rank 4, not transpose', bad.mergeHeadsRank3,
      `${fx}:9:70: error: mergeHeads: expected [batch, heads, seq, headDim] (rank 4), got [2, 3, 4]`],
    ['splitHeads with 0 heads', bad.splitHeadsZero, `${fx}:10:68: error: splitHeads: heads must be a positive integer, got number 0`],
    ['splitHeads with negative heads (divides the width, yet no reshape is blamed)', bad.splitHeadsNegative,
      `${fx}:11:76: error: splitHeads: heads must be a positive integer, got number -2`],
    ['slice on an axis the tensor lacks', bad.sliceAxis, `${fx}:12:57: error: slice: axis must be an integer in [-2, 2) for [2, 3], got number 2`],
    ['transpose with no perm on a vector', bad.transposeRank1,
      `${fx}:13:67: error: transpose: with no perm the operand must have rank >= 2 (the last two axes swap), got [3]`],
    ['constant with a negative shape', bad.constantNegative, `${fx}:14:92: error: constant: shape must be an array of positive integers, got [-2]`],
    ['broadcastTo a negative shape', bad.broadcastNegative, `${fx}:15:73: error: broadcastTo: shape must be an array of positive integers, got [-3]`],
  ];
  for (const [name, def, message] of cases) it(name, () => expect(errorOf(def)).toBe(message));
});

describe('a build function that throws a non-Error', () => {
  it('an object: at the model, rendered as a literal', () =>
    expect(errorOf(bad.throwsObject)).toBe(
      `${fx}:16:29: error: model 'throws-object': the build function threw { a: 1, b: [ 1, 2 ] }, not an Error (so no line of its own is known)`,
    ));
  it('a string with escape sequences: quoted, escapes shown, not sent', () =>
    expect(errorOf(bad.throwsString)).toBe(
      `${fx}:17:29: error: model 'throws-string': the build function threw 'no \\x1B[31mred\\x1B[0m here', not an Error (so no line of its own is known)`,
    ));
});

describe('control characters in names are escaped', () => {
  it('a param name with ESC, BEL and CR', () =>
    expect(errorOf(bad.escapeParam)).toBe(`${fx}:18:61: error: param 'w\\x1b[2J\\x07\\r': shape must be an array of positive integers, got [-1]`));
  it('a block name with an OSC title sequence, in the message and the note', () =>
    expect(errorOf(bad.escapeBlock)).toBe(
      `${fx}:19:102: error: block 'b\\x1b]0;owned\\x07': declared twice\n  note: ${fx}:19:58: first declared here`,
    ));
  it('a model name with CR and a cursor move', () =>
    expect(errorOf(bad.escapeModel)).toBe(`${fx}:20:59: error: model 'm\\rspoof\\x1b[1A': the loss must be a scalar, got shape [2]\n  note: reduce it to a scalar, for example with mean(...)`));
  it('file names and notes are escaped too; line breaks of the message itself stay', () =>
    expect(
      formatDiagnostic({
        severity: 'error',
        loc: { file: 'a\x1b[31m.ts', line: 1, col: 2 },
        message: 'first\nsecond \x07',
        notes: [{ loc: { file: 'b\r.ts', line: 3, col: 4 }, message: 'x\u202ey' }],
      }),
    ).toBe('a\\x1b[31m.ts:1:2: error: first\nsecond \\x07\n  note: b\\r.ts:3:4: x\\u202ey'));
  it('printable: no control character survives, printable text is unchanged', () => {
    const control = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
    const text = fc.array(fc.oneof(fc.integer({ min: 0, max: 0xa0 }), fc.integer({ min: 0x2020, max: 0x2070 })), { maxLength: 30 })
      .map((cs) => String.fromCharCode(...cs));
    fc.assert(
      fc.property(text, (s) => !control.test(printable(s)) && (control.test(s) || printable(s) === s)),
      { numRuns: 300 },
    );
  });
});

describe('a data file that is not UTF-8: the right byte at the right offset', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-utf8-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const messageFor = (bytes: number[]): string => {
    const file = path.join(dir, 'data.txt');
    writeFileSync(file, Uint8Array.from(bytes));
    try {
      loadText(file);
    } catch (e) {
      expect(e).toBeInstanceOf(LomocError);
      return (e as LomocError).message.replace(file, 'FILE');
    }
    throw new Error('loadText accepted it');
  };
  // 1 MiB of ASCII first: the old locator bisected prefixes and cut a valid character in two.
  const ascii = (n: number) => Array.from({ length: n }, () => 0x61);
  const euro = [0xe2, 0x82, 0xac];
  const cases: [string, number[], string][] = [
    ['a stray continuation byte after valid multi-byte text', [...euro, ...euro, 0x80], 'invalid byte 0x80 at offset 6: a continuation byte with no lead byte'],
    ['0xff deep in the file', [...ascii(1 << 20), ...euro, 0xff], `invalid byte 0xff at offset ${(1 << 20) + 3}: never used in UTF-8`],
    ['a sequence cut by an ASCII byte', [0x61, 0xe2, 0x82, 0x41], 'invalid byte 0x41 at offset 3: byte 3 of the sequence that 0xe2 at offset 1 starts must be in 0x80..0xbf'],
    ['an overlong form', [0xc0, 0xaf], 'invalid byte 0xc0 at offset 0: never used in UTF-8'],
    ['a surrogate', [0x61, 0xed, 0xa0, 0x80], 'invalid byte 0xa0 at offset 2: byte 2 of the sequence that 0xed at offset 1 starts must be in 0x80..0x9f'],
    ['a character cut by the end of the file', [0x61, 0xf0, 0x9f, 0x98], 'the text ends inside a character: byte 0xf0 at offset 1 starts a 4-byte sequence, and the text has 3 bytes left'],
  ];
  for (const [name, bytes, what] of cases)
    it(name, () => expect(messageFor(bytes)).toBe(`error: lomoc train: --data 'FILE' is not UTF-8 text (${what})`));

  it('utf8Problem agrees with the fatal TextDecoder on random bytes', () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (b) => {
        let valid = true;
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(b);
        } catch {
          valid = false;
        }
        expect(utf8Problem(b) === undefined).toBe(valid);
      }),
      { numRuns: 3000 },
    ));
});

describe('an adapter that cannot run the program', () => {
  const fake = (limits: Record<string, number>) =>
    ({ info: { description: 'Fake GPU', vendor: 'acme' }, limits, features: new Set<string>() }) as unknown as GPUAdapter;
  const program = { limits: { maxStorageBuffersPerShaderStage: 8, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupStorageSize: 16384 }, arenas: [2 ** 30], features: [] };
  const roomy = {
    maxStorageBuffersPerShaderStage: 8, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupSizeY: 1024,
    maxComputeWorkgroupStorageSize: 32768, maxStorageBufferBindingSize: 2 ** 31,
  };
  it('a real adapter lacking maxBufferSize: the missing limit is named, the software-driver script is not suggested', async () => {
    const { acquireFrom } = await import('../../runtime/webgpu/device.ts');
    await expect(acquireFrom([{ backend: 'vulkan', request: async () => fake(roomy) }], program, 'run setup-gpu.sh')).rejects.toThrow(
      /^no WebGPU adapter can run this \(vulkan: Fake GPU \(acme\) cannot run it \(maxBufferSize: needs 1073741824, the adapter reports no such limit\)\)$/,
    );
  });
  it('an adapter too small names the limit and its value; no adapter at all suggests the script', async () => {
    const { acquireFrom } = await import('../../runtime/webgpu/device.ts');
    await expect(acquireFrom([{ backend: 'vulkan', request: async () => fake({ ...roomy, maxBufferSize: 2 ** 28 }) }], program, 'run setup-gpu.sh')).rejects.toThrow(
      /^no WebGPU adapter can run this \(vulkan: Fake GPU \(acme\) cannot run it \(maxBufferSize: needs 1073741824, has 268435456 \(768.00 MiB short\)\)\)$/,
    );
    await expect(acquireFrom([{ backend: 'vulkan', request: async () => null }], program, 'run setup-gpu.sh')).rejects.toThrow(
      /^no WebGPU adapter can run this \(vulkan: no adapter\); run setup-gpu\.sh$/,
    );
  });
});
