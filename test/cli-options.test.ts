// The one option rule (cli/option-checks.ts) and the one step-option table (cli/step-options.ts):
// integers are integers within stated ranges, numbers are finite, a value below its range says
// so, contradictions name both options, and each rule reads the same on every command. Then the
// small things built on them, without a GPU: --steps 0 --save, --lr 0, train --device cpu,
// run --device cpu --save, and a dumped batch that replays to the same losses.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { run } from './support/cli.ts';
import { resolveTarget } from '../cli/args.ts';
import { maxSeed, maxSteps, optionChecks } from '../cli/option-checks.ts';
import { checkpointText } from '../cli/step-options.ts';
import { loadText, split, tokenize, trainBatch } from '../cli/train-data.ts';
import { loadModel } from '../compiler/load-model.ts';
import { parseCheckpointPolicy, type CheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { loadCheckpoint } from '../runtime/checkpoint/node.ts';
import { toFloat32 } from '../runtime/checkpoint/safetensors.ts';
import { initialParams } from '../runtime/webgpu/init.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-options-'));
const gpt = ['models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256'];
const failsWith = async (argv: string[], message: string) => expect(await run(...argv), argv.join(' ')).toEqual({ code: 1, stdout: '', stderr: `error: ${message}` });

describe('option values: one rule on every command', () => {
  it('integers: not integers, past the range, or below it, each a whole message naming the option and the range', async () => {
    const cases: [string[], string][] = [
      [['train', ...gpt, '--steps', '1.5'], `lomoc train: option '--steps' expects an integer from 0 to ${maxSteps}, got '1.5'`],
      [['train', ...gpt, '--steps', '1e20'], `lomoc train: option '--steps' expects an integer from 0 to ${maxSteps}, got '1e20'`],
      [['train', ...gpt, '--steps', '100000000000000000000'], `lomoc train: option '--steps' expects an integer from 0 to ${maxSteps}, got '100000000000000000000'`],
      [['train', ...gpt, '--steps', '-1'], "lomoc train: option '--steps' must be >= 0, got '-1'"],
      [['train', ...gpt, '--steps', '2', '--seed', '4294967296'], `lomoc train: option '--seed' expects an integer from 0 to ${maxSeed}, got '4294967296'`],
      [['train', ...gpt, '--steps', '2', '--seed', '-3'], "lomoc train: option '--seed' must be >= 0, got '-3'"],
      [['train', ...gpt, '--steps', '2', '--eval-every', '0'], "lomoc train: option '--eval-every' must be positive, got '0'"],
      [['run', 'models/mlp.ts', '--steps', '-1'], "lomoc run: option '--steps' must be positive, got '-1'"],
      [['run', 'models/mlp.ts', '--steps', '2', '--seed', '4294967296'], `lomoc run: option '--seed' expects an integer from 0 to ${maxSeed}, got '4294967296'`],
      [['plan', 'models/mlp.ts', '--batch', '-4'], "lomoc plan: option '--batch' must be positive, got '-4'"],
      [['compile', 'models/mlp.ts', '--out', 'x', '--seq', '0x10'], "lomoc compile: option '--seq' expects an integer from 1 to 2147483647, got '0x10'"],
    ];
    for (const [argv, message] of cases) await failsWith(argv, message);
  });

  it('numbers: finite decimals; negative says "must be"; lr and weight decay may be 0, clip thresholds may not', async () => {
    const cases: [string[], string][] = [
      [['train', ...gpt, '--steps', '2', '--lr', '-1'], "lomoc train: option '--lr' must be >= 0, got '-1'"],
      [['train', ...gpt, '--steps', '2', '--lr', 'Infinity'], "lomoc train: option '--lr' expects a finite number >= 0, got 'Infinity'"],
      [['train', ...gpt, '--steps', '2', '--lr', '1e999'], "lomoc train: option '--lr' expects a finite number >= 0, got '1e999'"],
      [['train', ...gpt, '--steps', '2', '--lr', '0x1'], "lomoc train: option '--lr' expects a finite number >= 0, got '0x1'"],
      [['run', 'models/mlp.ts', '--steps', '2', '--weight-decay', '-0.5'], "lomoc run: option '--weight-decay' must be >= 0, got '-0.5'"],
      [['plan', 'models/mlp.ts', '--clip-value', '-2'], "lomoc plan: option '--clip-value' must be positive, got '-2'"],
      [['compile', 'models/mlp.ts', '--out', 'x', '--clip-norm', 'NaN'], "lomoc compile: option '--clip-norm' expects a finite number above 0, got 'NaN'"],
    ];
    for (const [argv, message] of cases) await failsWith(argv, message);
  });

  it('integer(): accepts exactly the decimal integers in [min, max], as their value (property)', () => {
    const check = optionChecks('x');
    const texts = fc.oneof(fc.integer({ min: -50, max: 5000 }).map(String), fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
      fc.double({ noNaN: false }).map(String), fc.string({ maxLength: 6 }));
    fc.assert(
      fc.property(texts, fc.integer({ min: 0, max: 2 }), fc.integer({ min: 10, max: 4000 }), (text, min, max) => {
        const ok = /^-?[0-9]+$/.test(text) && Number(text) >= min && Number(text) <= max;
        let got: number | undefined;
        let message = '';
        try {
          got = check.integer(text, 'n', min, max);
        } catch (e) {
          message = (e as Error).message;
        }
        if (ok) expect(got).toBe(Number(text));
        else if (/^-?[0-9]+$/.test(text) && Number(text) < min) expect(message).toBe(`error: lomoc x: option '--n' must be ${min === 1 ? 'positive' : `>= ${min}`}, got '${text}'`);
        else expect(message).toBe(`error: lomoc x: option '--n' expects an integer from ${min} to ${max}, got '${text}'`);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('contradictions name both options', () => {
  it('a config key set twice, by --batch/--seq and --set or by two --set: on every command that compiles a step', async () => {
    for (const cmd of [['plan', 'models/gpt.ts'], ['run', 'models/gpt.ts', '--steps', '1'], ['train', 'models/gpt.ts', '--steps', '1'], ['compile', 'models/gpt.ts', '--out', 'x']]) {
      const name = cmd[0];
      await failsWith([...cmd, '--batch', '4', '--set', 'batch=8'], `lomoc ${name}: options '--batch 4' and '--set batch=8' both set the config key 'batch'; give it once`);
      await failsWith([...cmd, '--set', 'batch=4', '--set', 'batch=9'], `lomoc ${name}: options '--set batch=4' and '--set batch=9' both set the config key 'batch'; give it once`);
      await failsWith([...cmd, '--set', 'seq=4', '--seq', '4'], `lomoc ${name}: options '--seq 4' and '--set seq=4' both set the config key 'seq'; give it once`);
    }
    await failsWith(['graph', 'models/gpt.ts', '--set', 'width=4', '--set', 'width=8'], "lomoc graph: options '--set width=4' and '--set width=8' both set the config key 'width'; give it once");
  });

  it('options that exclude each other, and a single-valued option given twice', async () => {
    await failsWith(['train', ...gpt, '--steps', '2', '--resume', 'a', '--init', 'b.safetensors'],
      "lomoc train: options '--resume' and '--init' cannot be combined: a resumed run continues from its checkpoint's weights");
    await failsWith(['train', ...gpt, '--steps', '2', '--batch-file', 'a', '--dump-batch', 'b'],
      "lomoc train: options '--batch-file' and '--dump-batch' cannot be combined: the batches of a batch file are already in a file");
    await failsWith(['train', ...gpt, '--steps', '2', '--steps', '3'], "lomoc train: option '--steps' given twice");
    await failsWith(['run', 'models/mlp.ts', '--steps', '2', '--target', 'cpu', '--target', 'gpu'], "lomoc run: option '--target' given twice");
    await failsWith(['train', ...gpt, '--steps', '2', '--device', 'tpu'], "lomoc train: option '--device' expects webgpu or cpu, got 'tpu'");
  });

  it('--device cpu cannot train a bundle (it holds no graph), naming why', async () => {
    const out = join(tmp(), 'b');
    expect((await run('compile', ...gpt, '--out', out)).code).toBe(0);
    await failsWith(['train', out, '--steps', '1', '--device', 'cpu'],
      "lomoc train: option '--device cpu' cannot be given with a bundle: the reference executor runs the compiler's graph, which a bundle does not hold; give the model file");
  });
});

describe('--target: one meaning on every command', () => {
  it('auto takes the adapter\'s target where the command looks at one, else the stated default gpu, and says which', () => {
    expect(resolveTarget('cpu', { info: { description: 'NVIDIA H200' } })).toEqual({ target: 'cpu', how: '--target' });
    expect(resolveTarget('auto', { info: { vendor: 'mesa', device: 'llvmpipe (LLVM 19.1.7, 256 bits)' } })).toEqual({ target: 'cpu', how: 'auto: software adapter' });
    expect(resolveTarget('auto', { info: { vendor: 'nvidia', description: 'NVIDIA H200' } })).toEqual({ target: 'gpu', how: 'auto: hardware adapter' });
    expect(resolveTarget('auto', undefined)).toEqual({ target: 'gpu', how: 'auto: no adapter found; the default, gpu' });
    expect(resolveTarget('auto', 'lomoc plan asks no adapter')).toEqual({ target: 'gpu', how: 'auto: lomoc plan asks no adapter; the default, gpu' });
  });

  it('plan: the target line says what auto chose; --json carries it; --target cpu plans for cpu', async () => {
    const auto = await run('plan', 'models/mlp.ts', '--optimizer', 'lomo');
    expect(auto.stdout).toMatch(/^target {6}planned for the gpu kernel target \(auto: lomoc plan asks no adapter; the default, gpu\)/m);
    expect(JSON.parse((await run('plan', 'models/mlp.ts', '--optimizer', 'lomo', '--json')).stdout).target).toBe('gpu');
    expect(JSON.parse((await run('plan', 'models/mlp.ts', '--optimizer', 'lomo', '--target', 'cpu', '--json')).stdout).target).toBe('cpu');
    const cpu = await run('plan', 'models/mlp.ts', '--optimizer', 'lomo', '--target', 'cpu');
    expect(cpu.stdout).toMatch(/^target {6}planned for the cpu kernel target \(--target\)/m);
  });

  it('train --device cpu: the reference executor looks at no adapter, and the device line says so', async () => {
    const r = await run('train', ...gpt, '--steps', '0', '--device', 'cpu');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^device {6}none: the reference executor keeps every value on the host \(plan peak [\d.]+ KiB for kernel target gpu \(auto: the reference executor asks no adapter; the default, gpu\)\)$/m);
  });
});

describe('--checkpoint: one record', () => {
  it('the canonical text parses back to the same policy, and equal budgets get equal texts (property)', () => {
    const policy: fc.Arbitrary<CheckpointPolicy> = fc.oneof(
      fc.constantFrom<CheckpointPolicy>({ kind: 'none' }, { kind: 'blocks' }, { kind: 'sqrt' }),
      fc.integer({ min: 1, max: 2 ** 44 }).map((bytes) => ({ kind: 'budget' as const, bytes })),
    );
    fc.assert(fc.property(policy, (p) => {
      expect(parseCheckpointPolicy(checkpointText(p))).toEqual(p);
    }), { numRuns: 500 });
    expect(checkpointText(parseCheckpointPolicy('budget=15GiB'))).toBe('budget=15GiB');
    expect(checkpointText(parseCheckpointPolicy('budget=16106127360'))).toBe('budget=15GiB');
    expect(checkpointText(parseCheckpointPolicy('budget=1.5GiB'))).toBe('budget=1536MiB');
  });
});

describe('the small things, on the reference executor', () => {
  it('--steps 0 --save writes the initial weights; --lr 0 trains without moving them (lomo)', async () => {
    const [a, b] = [tmp(), tmp()];
    const zero = await run('train', ...gpt, '--steps', '0', '--seed', '5', '--device', 'cpu', '--save', a, '--json');
    expect(zero.stderr).toBe('');
    expect(JSON.parse(zero.stdout)).toMatchObject({ losses: [], val: [{ step: 0 }] });
    const saved = loadCheckpoint(join(a, 'checkpoint.safetensors'));
    expect(saved.metadata.step).toBe('0');
    const def = await loadModel('models/gpt.ts');
    const g = compileStep(def, { preset: 'tiny', sets: ['vocab=256'], optimizer: 'lomo' }).step;
    const init = initialParams({ params: g.params.map((p) => ({ name: p.name, shape: g.values[p.value].shape, init: p.init })) }, 5);
    expect(Object.keys(saved.tensors).sort()).toEqual(Object.keys(init).sort());
    for (const [name, v] of Object.entries(init)) expect(toFloat32(name, saved.tensors[name])).toEqual(Float32Array.from(v));

    const still = await run('train', ...gpt, '--steps', '2', '--seed', '5', '--lr', '0', '--device', 'cpu', '--save', b, '--json');
    expect(still.stderr).toBe('');
    const moved = loadCheckpoint(join(b, 'checkpoint.safetensors'));
    for (const name of Object.keys(init)) expect(Buffer.from(moved.tensors[name].data).equals(Buffer.from(saved.tensors[name].data)), name).toBe(true);
  });

  it('--dump-batch writes each step\'s batch as drawn; --batch-file replays it to the same losses, bit for bit, from another corpus', async () => {
    const dir = tmp();
    const file = join(dir, 'batches.jsonl');
    const opts = [...gpt, '--steps', '3', '--seed', '2', '--device', 'cpu', '--optimizer', 'adamw', '--json'];
    const first = await run('train', ...opts, '--dump-batch', file);
    expect(first.stderr).toBe('');
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3]);
    const { train } = split(await tokenize(loadText('moby-dick'), 'bytes'), 8, 'moby-dick');
    for (const l of lines) {
      const b = trainBatch(train, 2, 8, 2, l.step - 1);
      expect(l.tokens.flat()).toEqual([...b.tokens]);
      expect(l.targets.flat()).toEqual([...b.targets]);
    }
    const replay = await run('train', ...opts, '--batch-file', file, '--data', 'sotu');
    expect(replay.stderr).toBe('');
    const losses = (r: { stdout: string }) => JSON.parse(r.stdout).losses;
    expect(losses(replay)).toEqual(losses(first));
    // The corpus is not what fed it: without the file, sotu gives other losses.
    expect(losses(await run('train', ...opts, '--data', 'sotu'))).not.toEqual(losses(first));
  });

  it('--batch-file mistakes: whole messages naming the file and the line', async () => {
    const dir = tmp();
    const f = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    const row = (v: number) => Array.from({ length: 8 }, () => v);
    const ok = (step: number) => JSON.stringify({ step, tokens: [row(1), row(2)], targets: [row(2), row(3)] });
    const base = ['train', ...gpt, '--steps', '2', '--device', 'cpu', '--batch-file'];
    const cases: [string, string][] = [
      [f('one.jsonl', ok(1) + '\n'), `lomoc train: --batch-file '${join(dir, 'one.jsonl')}' has no batch for step 2 (it holds steps 1)`],
      [f('text.jsonl', 'hello\n'), `lomoc train: --batch-file '${join(dir, 'text.jsonl')}': line 1: expected a JSON object {"step": N, "tokens": [[ids]], "targets": [[ids]]}, got text that is not JSON`],
      [f('shape.jsonl', JSON.stringify({ step: 1, tokens: [row(1)], targets: [row(1)] })), `lomoc train: --batch-file '${join(dir, 'shape.jsonl')}': line 1: tokens must be [2, 8] (the model's batch and seq), got [1, 8]`],
      [f('vocab.jsonl', JSON.stringify({ step: 1, tokens: [row(1), row(256)], targets: [row(1), row(1)] })), `lomoc train: --batch-file '${join(dir, 'vocab.jsonl')}': line 1: tokens holds id 256, outside the model's vocabulary (0 to 255)`],
      [f('twice.jsonl', `${ok(1)}\n${ok(1)}\n`), `lomoc train: --batch-file '${join(dir, 'twice.jsonl')}': line 2: a second batch for step 1`],
      [f('neg.jsonl', JSON.stringify({ step: 1, tokens: [row(-1), row(1)], targets: [row(1), row(1)] })), `lomoc train: --batch-file '${join(dir, 'neg.jsonl')}': line 1: tokens.0.0: Too small: expected number to be >=0`],
      [join(dir, 'none.jsonl'), `lomoc train: --batch-file '${join(dir, 'none.jsonl')}': cannot read it (no such file)`],
    ];
    for (const [file, message] of cases) await failsWith([...base, file], message);
  });

  it('--init from a file that holds none of the model\'s params is an error, not a run from scratch', async () => {
    const dir = tmp();
    expect((await run('run', 'models/mlp.ts', '--steps', '1', '--device', 'cpu', '--save', dir)).code).toBe(0);
    const file = join(dir, 'checkpoint.safetensors');
    const names = Object.keys(loadCheckpoint(file).tensors).filter((n) => !n.startsWith('optimizer.'));
    await failsWith(['train', ...gpt, '--steps', '1', '--device', 'cpu', '--init', file],
      `lomoc train: --init ${file}: none of the model's 36 params is in the file (its ${names.length} tensors: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}); is it a checkpoint of another model?`);
  });

  it('run --device cpu --save writes a checkpoint that train --init loads whole', async () => {
    const dir = tmp();
    const r = await run('run', ...gpt, '--steps', '2', '--device', 'cpu', '--save', dir, '--json');
    expect(r.stderr).toBe('');
    const file = join(dir, 'checkpoint.safetensors');
    expect(loadCheckpoint(file).metadata).toMatchObject({ format: 'lomoc-checkpoint/1', step: '2', device: 'cpu' });
    const init = await run('train', ...gpt, '--steps', '0', '--device', 'cpu', '--init', file);
    expect(init.stderr).toBe('');
    expect(init.stdout).toMatch(/^init {8}(\d+) of \1 params from /m);
  });
});
