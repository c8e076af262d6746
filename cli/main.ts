// The `lomoc` command line: dispatch to one command per file, plus help. `bin/lomoc.js` calls
// `main` and exits with what it returns (0 ok, 1 user error, 2 internal compiler error).
import { readFileSync } from 'node:fs';
import { LomocError } from '../compiler/diagnostics.ts';
import { formatHelp, parseCommandArgs, type CommandSpec } from './args.ts';
import { compileSpec, runCompile } from './compile.ts';
import { graphSpec, runGraph } from './graph.ts';
import { planSpec, runPlan } from './plan.ts';
import { plotSpec, runPlot } from './plot.ts';
import { processIo, reportError, type Io } from './report.ts';
import { runRun, runSpec } from './run.ts';
import { runServe, serveSpec } from './serve.ts';
import { runTrain, trainSpec } from './train.ts';

interface Command {
  readonly spec: CommandSpec;
  readonly run: (argv: readonly string[], io: Io) => Promise<number>;
}

const commands: Readonly<Record<string, Command>> = {
  graph: { spec: graphSpec, run: runGraph },
  plan: { spec: planSpec, run: runPlan },
  run: { spec: runSpec, run: runRun },
  compile: { spec: compileSpec, run: runCompile },
  train: { spec: trainSpec, run: runTrain },
  plot: { spec: plotSpec, run: runPlot },
  serve: { spec: serveSpec, run: runServe },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function mainHelp(): string {
  const w = Math.max(...Object.keys(commands).map((c) => c.length), 'help'.length);
  return [
    'usage: lomoc <command> [options]',
    '',
    'lomoc compiles neural-network training steps written in a TypeScript DSL into static graphs',
    'that train in as little memory as the mathematics allows.',
    '',
    'commands:',
    ...Object.values(commands).map((c) => `  ${c.spec.name.padEnd(w)}  ${c.spec.summary}`),
    `  ${'help'.padEnd(w)}  Show help for a command: lomoc help <command>`,
    '',
    'options:',
    '  -h, --help     show this help',
    '  -v, --version  print the version',
  ].join('\n');
}

function unknownCommand(name: string): LomocError {
  return new LomocError(
    `unknown command '${name}'; expected one of: ${[...Object.keys(commands), 'help'].join(', ')} (see 'lomoc --help')`,
  );
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    io.out(mainHelp());
    return 0;
  }
  if (first === '--version' || first === '-v') {
    io.out(version());
    return 0;
  }
  if (first === 'help') {
    if (rest.length === 0) io.out(mainHelp());
    else if (commands[rest[0]]) io.out(formatHelp(commands[rest[0]].spec));
    else throw unknownCommand(rest[0]);
    return 0;
  }
  if (first.startsWith('-')) throw new LomocError(`unknown option '${first}' before the command; see 'lomoc --help'`);
  const cmd = commands[first];
  if (!cmd) throw unknownCommand(first);
  // `--help` anywhere after the command shows its help instead of running it.
  if (parseCommandArgs(cmd.spec, rest).values.help) {
    io.out(formatHelp(cmd.spec));
    return 0;
  }
  return cmd.run(rest, io);
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    return reportError(io, e);
  }
}
