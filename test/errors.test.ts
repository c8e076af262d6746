// Each kind of user mistake gives its error at the user's file:line:col. The broken models are
// real files under test/fixtures/errors/, so their lines and columns are stable; every test
// compares the whole message, notes included.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compileGraph } from '../cli/graph.ts';
import { LomocError } from '../compiler/diagnostics.ts';
import { param } from '../compiler/dsl/index.ts';

const fx = (name: string): string => `test/fixtures/errors/${name}.ts`;

/** The message of the LomocError that compiling `file` throws. */
async function errorOf(file: string, preset?: string, sets: string[] = []): Promise<string> {
  const err = await compileGraph(file, preset, sets).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${file} should fail to compile`).toBeInstanceOf(LomocError);
  return (err as LomocError).message;
}

/** Runs the real `lomoc` binary, as a user would. */
function lomoc(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/lomoc.js', ...args], { encoding: 'utf8', env: { ...process.env, LOMOC_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('user mistakes point at the user\'s line', () => {
  it('matmul: mismatched inner dimensions, with a note where the right operand was made', async () => {
    expect(await errorOf(fx('matmul-shapes'))).toBe(
      'test/fixtures/errors/matmul-shapes.ts:11:15: error: matmul: inner dimensions must match, got [2, 8] and [16, 4]\n' +
        '  note: test/fixtures/errors/matmul-shapes.ts:10:15: the right operand was created here',
    );
  });

  it('matmul inside a user helper: the note names the call of the helper', async () => {
    expect(await errorOf(fx('helper-shapes'))).toBe(
      'test/fixtures/errors/helper-shapes.ts:6:10: error: matmul: inner dimensions must match, got [2, 8] and [4, 3]\n' +
        '  note: test/fixtures/errors/helper-shapes.ts:6:20: the right operand was created here\n' +
        '  note: test/fixtures/errors/helper-shapes.ts:12:15: called from here',
    );
  });

  it('embedding: float token ids where i32 is needed', async () => {
    expect(await errorOf(fx('embedding-dtype'))).toBe(
      'test/fixtures/errors/embedding-dtype.ts:12:15: error: embedding: token ids must be an i32 tensor, got f32\n' +
        '  note: test/fixtures/errors/embedding-dtype.ts:9:20: the right operand was created here',
    );
  });

  it('crossEntropy: float targets where i32 is needed', async () => {
    expect(await errorOf(fx('cross-entropy-dtype'))).toBe(
      'test/fixtures/errors/cross-entropy-dtype.ts:12:17: error: crossEntropy: the targets must be an i32 tensor, got f32\n' +
        '  note: test/fixtures/errors/cross-entropy-dtype.ts:10:20: the right operand was created here',
    );
  });

  it('param declared twice with different shapes, with a note at the first declaration', async () => {
    expect(await errorOf(fx('param-twice'))).toBe(
      "test/fixtures/errors/param-twice.ts:11:18: error: param 'mlp.w': declared twice with different shapes, expected [4, 8], got [8, 4]\n" +
        '  note: test/fixtures/errors/param-twice.ts:10:16: first declared here',
    );
  });

  it('a loss that is not a scalar', async () => {
    expect(await errorOf(fx('loss-not-scalar'))).toBe(
      "test/fixtures/errors/loss-not-scalar.ts:12:12: error: model 'loss-not-scalar': the loss must be a scalar, got shape [2]\n" +
        '  note: reduce it to a scalar, for example with mean(...)',
    );
  });

  it('a param that does not reach the loss is a warning, and the graph still compiles', async () => {
    const { summary } = await compileGraph(fx('unused-param'));
    expect(summary.warnings).toEqual([
      "test/fixtures/errors/unused-param.ts:12:5: warning: param 'head.b' does not reach the loss; its gradient is zero",
    ]);
    expect(summary.nodes.backward).toBeGreaterThan(0);
  });

  it('an unknown preset names the presets there are', async () => {
    expect(await errorOf(fx('unused-param'), 'huge')).toBe(
      "test/fixtures/errors/unused-param.ts:6:16: error: model 'unused-param': unknown preset 'huge', expected one of: tiny, wide",
    );
  });

  it('an unknown config key in --set names the keys there are', async () => {
    expect(await errorOf(fx('unused-param'), 'tiny', ['clases=5'])).toBe(
      "test/fixtures/errors/unused-param.ts:6:16: error: model 'unused-param': unknown config key 'clases', expected one of: batch, classes",
    );
  });

  it('a config value of the wrong type', async () => {
    expect(await errorOf(fx('unused-param'), 'tiny', ['classes=many'])).toBe(
      "test/fixtures/errors/unused-param.ts:6:16: error: model 'unused-param': config key 'classes' expects a number, got string many",
    );
  });

  it("the build function's own TypeError points at the user's line that threw", async () => {
    expect(await errorOf(fx('build-throws'))).toBe(
      "test/fixtures/errors/build-throws.ts:8:15: error: model 'build-throws': the build function threw: Cannot read properties of undefined (reading 'width')",
    );
  });

  it('a DSL call outside a model, at the top level of a model file', async () => {
    expect(await errorOf(fx('outside-model'))).toBe(
      'test/fixtures/errors/outside-model.ts:4:16: error: param: called outside a model; DSL calls run only inside model(name, build)',
    );
  });

  it('a DSL call outside a model, from a test', () => {
    expect(() => param('w', [2])).toThrow(
      /^test\/errors\.test\.ts:\d+:\d+: error: param: called outside a model; DSL calls run only inside model\(name, build\)$/,
    );
  });

  it('a file that exports no model', async () => {
    expect(await errorOf(fx('no-model'))).toBe(
      'test/fixtures/errors/no-model.ts:1:1: error: cannot load model: expected a default export made by model(name, build, { presets }), found a default export that is an object\n' +
        "  note: write `export default model('name', (cfg) => loss, { presets: { tiny: {...} } })`",
    );
  });

  it('a model file that does not exist', async () => {
    expect(await errorOf(fx('does-not-exist'))).toBe(
      "error: cannot load model: expected a model file (.ts), found no file at 'test/fixtures/errors/does-not-exist.ts'",
    );
  });
});

describe('the lomoc binary reports user mistakes without a stack trace', () => {
  it('matmul shapes: exit 1, the diagnostic on stderr, nothing on stdout', () => {
    const r = lomoc('graph', fx('matmul-shapes'));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'test/fixtures/errors/matmul-shapes.ts:11:15: error: matmul: inner dimensions must match, got [2, 8] and [16, 4]\n' +
        '  note: test/fixtures/errors/matmul-shapes.ts:10:15: the right operand was created here\n',
    );
    expect(r.stderr).not.toContain('    at ');
  });

  it("build function's TypeError: exit 1, the user's line, no stack", () => {
    const r = lomoc('graph', fx('build-throws'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "test/fixtures/errors/build-throws.ts:8:15: error: model 'build-throws': the build function threw: Cannot read properties of undefined (reading 'width')\n",
    );
    expect(r.stderr).not.toContain('    at ');
  });

  it('unknown config key through --set: exit 1', () => {
    const r = lomoc('graph', fx('unused-param'), '--set', 'clases=5');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "test/fixtures/errors/unused-param.ts:6:16: error: model 'unused-param': unknown config key 'clases', expected one of: batch, classes\n",
    );
  });

  it('a warning goes to stderr in the compiler format; the command still succeeds', () => {
    const r = lomoc('graph', fx('unused-param'), '--json');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      "test/fixtures/errors/unused-param.ts:12:5: warning: param 'head.b' does not reach the loss; its gradient is zero\n",
    );
    expect(JSON.parse(r.stdout).warnings).toHaveLength(1);
  });
});
