// The lomoc command line: dispatch, help, option errors, the --json contract, and how internal
// errors are reported. Most cases call `main` in-process; one runs the real binary end to end.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { run } from './support/cli.ts';
import { fmtBytes } from '../contract/units.ts';
import { reportError, type Io } from '../cli/report.ts';
import { CompilerBug } from '../compiler/diagnostics.ts';


describe('lomoc cli', () => {
  it('--help and help graph list the commands and the options', async () => {
    const top = await run('--help');
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('usage: lomoc <command> [options]');
    expect(top.stdout).toMatch(/^ {2}graph +Trace a model/m);
    const graph = await run('help', 'graph');
    expect(graph.code).toBe(0);
    for (const opt of ['--preset NAME', '--set KEY=VALUE', '--print', '--json', '--help'])
      expect(graph.stdout).toContain(opt);
    expect((await run('graph', '--help')).stdout).toBe(graph.stdout);
  });

  it('unknown commands and options are clear errors, exit 1', async () => {
    expect(await run('grpah')).toEqual({
      code: 1,
      stdout: '',
      stderr: "error: unknown command 'grpah'; expected one of: graph, plan, run, compile, train, plot, serve, generate, import, export, help (see 'lomoc --help')",
    });
    expect((await run('graph', 'models/mlp.ts', '--presett', 'tiny')).stderr).toBe(
      "error: lomoc graph: unknown option '--presett'; run 'lomoc help graph' for its options",
    );
    expect((await run('graph', 'models/mlp.ts', '--preset')).stderr).toBe(
      "error: lomoc graph: option '--preset' expects a value (NAME)",
    );
    expect((await run('graph')).stderr).toBe(
      "error: lomoc graph: expected <model.ts>, got nothing; run 'lomoc help graph' for its options",
    );
    expect((await run('graph', 'models/mlp.ts', '--json=yes')).stderr).toBe(
      "error: lomoc graph: option '--json' takes no value, got 'yes'",
    );
  });

  it('graph prints the size table with every stage timed', async () => {
    const r = await run('graph', 'models/mlp.ts');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('model       mlp\n');
    expect(r.stdout).toContain('params      484\n');
    expect(r.stdout).toContain('param bytes 1,936 (1.89 KiB in f32)\n');
    for (const stage of ['load model', 'trace', 'verify', 'differentiate', 'verify (with backward)', 'total'])
      expect(r.stdout).toMatch(new RegExp(`^${stage.replace(/[()]/g, '\\$&')} +\\d+\\.\\d$`, 'm'));
  });

  it('--print shows the forward and backward graph', async () => {
    const r = await run('graph', 'models/mlp.ts', '--print');
    expect(r.stdout).toContain('graph mlp {');
    expect(r.stdout).toContain('  # forward');
    expect(r.stdout).toContain('  # backward');
    expect(r.stdout).toMatch(/grad 'head\.w' = %\d+/);
  });

  it('--set overrides a preset key', async () => {
    const r = await run('graph', 'models/mlp.ts', '--set', 'layers=3', '--set', 'hidden=32', '--json');
    const j = JSON.parse(r.stdout);
    expect(j.config).toMatchObject({ layers: 3, hidden: 32 });
    expect(j.params).toBe(8 * 32 + 32 + 2 * (32 * 32 + 32) + 32 * 4 + 4);
  });

  it('the real binary prints exactly one JSON object for --json', () => {
    const r = spawnSync(process.execPath, ['bin/lomoc.js', 'graph', 'models/gpt.ts', '--preset', 'tiny', '--json'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).toEqual(['model', 'preset', 'params', 'paramBytes', 'nodes', 'timings', 'warnings', 'config']);
    expect(j).toMatchObject({ model: 'gpt', preset: 'tiny', params: 7232, paramBytes: 7232 * 4, warnings: [] });
    expect(j.nodes.forward).toBeGreaterThan(0);
    expect(j.nodes.backward).toBeGreaterThan(0);
    expect(Object.keys(j.timings)).toEqual(['load', 'trace', 'verify', 'differentiate', 'verifyBackward', 'total']);
  });

  it('an unexpected exception is an internal compiler error, exit 2, stack only with LOMOC_DEBUG=1', () => {
    const lines: string[] = [];
    const io: Io = { out: () => {}, err: (t) => lines.push(t) };
    expect(reportError(io, new TypeError('x is undefined'), {})).toBe(2);
    expect(lines).toEqual([
      'internal compiler error: x is undefined (this is a bug in lomoc, not in your model)',
      'please report it, with the command line and the model file',
      '(set LOMOC_DEBUG=1 to see the stack trace)',
    ]);
    lines.length = 0;
    expect(reportError(io, new CompilerBug('bad IR'), { LOMOC_DEBUG: '1' })).toBe(2);
    expect(lines[0]).toBe('internal compiler error: bad IR (this is a bug in lomoc, not in your model)');
    expect(lines[2]).toMatch(/^CompilerBug: internal compiler error: bad IR[^]*\n {4}at /);
  });

  it('bytes print in binary units', () => {
    expect([fmtBytes(512), fmtBytes(28_928), fmtBytes(497_759_232), fmtBytes(26_953_662_464)]).toEqual([
      '512 B',
      '28.25 KiB',
      '474.70 MiB',
      '25.10 GiB',
    ]);
  });
});
