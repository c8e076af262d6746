// Fuzzing the third untrusted input, the command line: random argument vectors built from each
// command's own options (and unknown ones), with values from a vocabulary of edge cases (negative,
// fractional, huge, non-finite, empty, control characters, other options' values). Every vector
// either parses into a request or fails with a LomocError in the compiler's format: never an
// internal error, never a TypeError or RangeError. `plan` and `graph` vectors also run whole
// through main(): exit 0 or 1, never 2. LOMOC_FUZZ_RUNS=n runs n cases of each property.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs, type CommandSpec, type OptionValue } from '../../cli/args.ts';
import { compileSpec } from '../../cli/compile.ts';
import { main } from '../../cli/main.ts';
import { planRequest, planSpec } from '../../cli/plan.ts';
import { runRequest } from '../../cli/run-request.ts';
import { runSpec } from '../../cli/run-request.ts';
import { trainRequest, trainSpec } from '../../cli/train-request.ts';
import { LomocError } from '../../compiler/diagnostics.ts';

const runs = Number(process.env.LOMOC_FUZZ_RUNS ?? 0) || undefined;

const values = fc.oneof(
  fc.constantFrom('0', '1', '-1', '1.5', '1e20', '1e999', '-0', 'NaN', 'Infinity', '0x10', '4294967296', '9007199254740993', '', ' ', 'abc',
    'auto', 'cpu', 'gpu', 'webgpu', 'f32', 'f16', 'bf16', 'f64', 'none', 'blocks', 'sqrt', 'budget=1GiB', 'budget=-1', 'budget=', 'sgd', 'adamw', 'lomo', 'all',
    'batch=2', 'batch=0', 'vocab=256', 'seq=-3', 'beta1=0.5', 'beta1=2', 'eps=', '=1', 'constant', 'cosine', 'linear', 'moby-dick', 'bytes', 'gpt2',
    'on', 'off', 'exact', 'previous', 'dynamic', 'packed', 'native', 'nearest', 'stochastic', '64KiB', '20s', 'blocks,chunks=2', 'adalomo', '__proto__', 'constructor', 'toString', '\u001b[31mred', 'a\rb', '\u0007', '..', '/', '-', '--', '--steps'),
  fc.integer({ min: -5, max: 100 }).map(String),
  fc.double({ noNaN: false }).map(String),
  fc.string({ maxLength: 8 }),
);

/** An argument vector for `spec`: its own options (sometimes with =value, sometimes twice), a few unknown ones, positionals. */
function argv(spec: CommandSpec, positional: string, required: readonly string[] = []): fc.Arbitrary<string[]> {
  const names = [...Object.keys(spec.options), 'nope', 'stepz', 'h'];
  const option = fc.tuple(fc.constantFrom(...names), values, fc.integer({ min: 0, max: 3 })).map(([name, v, form]) => {
    const spelled = name.length === 1 ? `-${name}` : `--${name}`;
    if (spec.options[name]?.type === 'boolean' && form !== 0) return [spelled];
    return form === 0 ? [`${spelled}=${v}`] : form === 1 ? [spelled] : [spelled, v];
  });
  return fc.tuple(fc.array(option, { maxLength: 3 }), fc.array(values, { maxLength: 2 })).map(([opts, extra]) => [positional, ...required, ...opts.flat(), ...extra]);
}

/** Parses `args` for `spec` and builds its request: a LomocError or a request, nothing else. */
function parsesOrNames(spec: CommandSpec, build: (p: readonly string[], v: Readonly<Record<string, OptionValue>>) => unknown, args: string[]): boolean {
  try {
    const { positionals, values: v } = parseCommandArgs(spec, args);
    if (v.help) return true;
    build(positionals, v);
    return true;
  } catch (e) {
    if (!(e instanceof LomocError)) throw new Error(`${spec.name} ${JSON.stringify(args)}: not a LomocError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    expect(e.message).toMatch(/^(.+:\d+:\d+: )?error: /);
    return false;
  }
}

const commands: [CommandSpec, (p: readonly string[], v: Readonly<Record<string, OptionValue>>) => unknown][] = [
  [trainSpec, trainRequest],
  [runSpec, runRequest],
  [planSpec, planRequest],
  [compileSpec, (p, v) => (parseCommandArgs(compileSpec, []), [p, v])],
];

describe('fuzz: command lines', () => {
  for (const [spec, build] of commands) {
    it(`lomoc ${spec.name}: every argument vector parses or is a LomocError`, () => {
      const seen = { ok: 0, refused: 0 };
      fc.assert(fc.property(argv(spec, 'models/mlp.ts', spec === trainSpec ? ['--steps', '2', '--data', 'moby-dick'] : spec === runSpec ? ['--steps', '2'] : []), (args) => {
        seen[parsesOrNames(spec, build, args) ? 'ok' : 'refused']++;
      }), { numRuns: runs ?? 750 });
      // Both outcomes occur: the vectors reach the request builders, not only the parser's first check.
      expect(seen.ok).toBeGreaterThan(10);
      expect(seen.refused).toBeGreaterThan(10);
    });
  }

  it('lomoc plan and graph, run whole: exit 0 or 1 with a diagnostic, never an internal error', async () => {
    const codes: Record<number, number> = {};
    const quiet = (spec: CommandSpec) => argv({ ...spec, options: Object.fromEntries(Object.entries(spec.options).filter(([k]) => k !== 'timeline')) }, 'models/mlp.ts');
    await fc.assert(
      fc.asyncProperty(fc.oneof(quiet(planSpec).map((a) => ['plan', ...a]), fc.constant(['graph', 'models/mlp.ts'])), async (args) => {
        const err: string[] = [];
        const code = await main(args, { out: () => undefined, err: (t) => err.push(t) });
        codes[code] = (codes[code] ?? 0) + 1;
        expect(code, `${JSON.stringify(args)}: ${err.join('\n')}`).toBeLessThan(2);
        if (code === 1) expect(err.join('\n')).toMatch(/^(.+:\d+:\d+: )?error: /);
      }),
      { numRuns: runs ? Math.ceil(runs / 10) : 60 },
    );
    expect(codes[0]).toBeGreaterThan(0);
  }, 600_000);
});
