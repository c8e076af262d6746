// `lomoc run` without a GPU: option errors and --device cpu (the reference executor). The WebGPU
// runs, through the real binary, are in test/gpu/step.test.ts.
import { describe, expect, it } from 'vitest';
import { run } from './support/cli.ts';


describe('lomoc run', () => {
  it('help lists its options', async () => {
    const r = await run('help', 'run');
    expect(r.code).toBe(0);
    for (const opt of ['--optimizer NAME', '--checkpoint POLICY', '--clip-norm N', '--clip-value V', '--lr X', '--steps N', '--device NAME', '--json'])
      expect(r.stdout).toContain(opt);
  });

  it('option mistakes are errors naming the option, exit 1', async () => {
    const cases: [string[], string][] = [
      [[], "error: lomoc run: option '--steps N' is required"],
      [['--steps', '0'], "error: lomoc run: option '--steps' must be positive, got '0'"],
      [['--steps', '2', '--optimizer', 'adam'], "error: lomoc run: option '--optimizer' expects sgd, adamw, lomo or adalomo, got 'adam'"],
      [['--steps', '2', '--checkpoint', 'most'], "error: lomoc run: option '--checkpoint' expects none, blocks, sqrt or budget=SIZE (SIZE like 14GiB), got 'most'"],
      [['--steps', '2', '--lr=-1'], "error: lomoc run: option '--lr' must be >= 0, got '-1'"],
      [['--steps', '2', '--device', 'tpu'], "error: lomoc run: option '--device' expects webgpu or cpu, got 'tpu'"],
    ];
    for (const [argv, message] of cases) expect(await run('run', 'models/mlp.ts', ...argv)).toEqual({ code: 1, stdout: '', stderr: message });
  });

  it('--device cpu trains on the reference executor: the --json contract', async () => {
    const r = await run('run', 'models/mlp.ts', '--steps', '3', '--lr', '0.1', '--device', 'cpu', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.adapter).toBe('cpu: reference executor (f32, one node at a time)');
    expect(out.losses).toHaveLength(3);
    expect(out.tokensPerSecond).toBeGreaterThan(0);
    expect(out.deviceBytes).toBeNull();
    expect(out.planBytes).toBeGreaterThan(0);
  });

  it('the table: adapter, model, a loss per step, speed', async () => {
    const r = await run('run', 'models/mlp.ts', '--steps', '2', '--device', 'cpu');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('adapter     cpu: reference executor (f32, one node at a time)');
    expect(lines[1]).toBe('model       mlp, preset tiny (batch=4 features=8 hidden=16 layers=2 classes=4)');
    expect(lines[2]).toBe('step        lomo, lr 0.01');
    expect(lines[4]).toBe('  step        loss         ms');
    expect(lines[5]).toMatch(/^ {5}1 {5}\d\.\d{5} +\d+\.\d\d$/);
    expect(r.stdout).toMatch(/\nspeed       \d+\.\d\d ms\/step, [\d,]+ tokens\/s \(4 tokens per step, mean of 2 steps\)$/);
  });
});
