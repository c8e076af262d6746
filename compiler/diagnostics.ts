// Errors in the compiler's format:
//   models/gpt.ts:42:13: error: matmul: inner dimensions must match, got [32, 64] and [128, 10]
//     note: models/gpt.ts:40:9: the right operand was created here
import type { Loc } from './ir/types.ts';

export interface Note {
  readonly loc?: Loc;
  readonly message: string;
}
export interface Diagnostic {
  readonly severity: 'error' | 'warning';
  readonly loc?: Loc;
  readonly message: string;
  readonly notes: readonly Note[];
}

export const fmtLoc = (l: Loc): string => `${l.file}:${l.line}:${l.col}`;

export function formatDiagnostic(d: Diagnostic): string {
  const head = `${d.loc ? fmtLoc(d.loc) + ': ' : ''}${d.severity}: ${d.message}`;
  return [head, ...d.notes.map((n) => `  note: ${n.loc ? fmtLoc(n.loc) + ': ' : ''}${n.message}`)].join('\n');
}

/** A mistake in the user's model or command line. The CLI prints it and exits 1, no stack trace. */
export class LomocError extends Error {
  readonly diagnostic: Diagnostic;
  constructor(message: string, loc?: Loc, notes: readonly Note[] = []) {
    const diagnostic: Diagnostic = { severity: 'error', loc, message, notes };
    super(formatDiagnostic(diagnostic));
    this.name = 'LomocError';
    this.diagnostic = diagnostic;
  }
}

/** A broken internal invariant: a bug in lomoc, never the user's fault. */
export class CompilerBug extends Error {
  constructor(message: string) {
    super(`internal compiler error: ${message} (this is a bug in lomoc, not in your model)`);
    this.name = 'CompilerBug';
  }
}

export const warning = (message: string, loc?: Loc, notes: readonly Note[] = []): Diagnostic => ({
  severity: 'warning',
  loc,
  message,
  notes,
});
