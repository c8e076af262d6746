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

// C0 and C1 controls (ESC, BEL, CR, ...) and bidirectional overrides: echoed raw, a name could
// recolour, rewrite or reorder the user's terminal.
const unprintable = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const escapes: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const escapeChar = (c: string): string => {
  const code = c.charCodeAt(0);
  return escapes[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
};

/**
 * User text (a name, a file, a thrown value) made safe to print inside a message: control
 * characters become escapes such as \x1b and \r. Every message that quotes user text uses it;
 * formatDiagnostic applies it once more to the whole message (keeping its own line breaks).
 */
export const printable = (text: unknown): string => String(text).replace(unprintable, escapeChar);

const printableLines = (text: string): string => text.split('\n').map(printable).join('\n');

export const fmtLoc = (l: Loc): string => `${printable(l.file)}:${l.line}:${l.col}`;

export function formatDiagnostic(d: Diagnostic): string {
  const head = `${d.loc ? fmtLoc(d.loc) + ': ' : ''}${d.severity}: ${printableLines(d.message)}`;
  return [head, ...d.notes.map((n) => `  note: ${n.loc ? fmtLoc(n.loc) + ': ' : ''}${printableLines(n.message)}`)].join('\n');
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
    super(`internal compiler error: ${printableLines(message)} (this is a bug in lomoc, not in your model)`);
    this.name = 'CompilerBug';
  }
}

export const warning = (message: string, loc?: Loc, notes: readonly Note[] = []): Diagnostic => ({
  severity: 'warning',
  loc,
  message,
  notes,
});
