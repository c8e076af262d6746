// How the CLI reports problems. A user's mistake (LomocError) prints its formatted diagnostic and
// exits 1, with no stack: the file:line:col already says where. Anything else is lomoc's fault:
// "internal compiler error", exit 2, and the stack only when LOMOC_DEBUG=1 asks for it; except a
// fault of the file system or the machine (a full disk, a read-only folder), which is the user's
// environment (environment.ts): exit 1, naming what could not be done and where.
import { CompilerBug, formatDiagnostic, LomocError, type Diagnostic } from '../compiler/diagnostics.ts';
import { environmentMessage } from './environment.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** The terminal that `out` writes to, when it is one: live progress (train's bar) is drawn there. */
  readonly tty?: NodeJS.WritableStream;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text + '\n'),
  err: (text) => process.stderr.write(text + '\n'),
  tty: process.stdout.isTTY ? process.stdout : undefined,
};

export const EXIT_USER_ERROR = 1;
export const EXIT_INTERNAL_ERROR = 2;

const reportLine = 'please report it, with the command line and the model file';

export function printWarnings(io: Io, warnings: readonly Diagnostic[]): void {
  for (const w of warnings) io.err(formatDiagnostic(w));
}

/** Prints an error caught at the top of a command and returns the exit code. */
export function reportError(io: Io, e: unknown, env: NodeJS.ProcessEnv = process.env): number {
  if (e instanceof LomocError) {
    io.err(e.message);
    return EXIT_USER_ERROR;
  }
  const fault = environmentMessage(e);
  if (fault !== undefined) {
    io.err(fault);
    return EXIT_USER_ERROR;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  // A CompilerBug's message already begins with "internal compiler error".
  io.err(e instanceof CompilerBug ? err.message : `internal compiler error: ${err.message} (this is a bug in lomoc, not in your model)`);
  io.err(reportLine);
  if (env.LOMOC_DEBUG === '1') io.err(err.stack ?? '(no stack)');
  else io.err('(set LOMOC_DEBUG=1 to see the stack trace)');
  return EXIT_INTERNAL_ERROR;
}
