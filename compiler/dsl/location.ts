// Finds where the user wrote a DSL call: the first stack frame outside lomoc's compiler/ folder,
// in the manner of jax's source_info (skip library frames, keep the user's).
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Loc } from '../ir/types.ts';

const compilerDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..') + path.sep;
const framePattern = /\(?((?:file:\/\/)?[^\s()]+):(\d+):(\d+)\)?$/;

export const unknownLoc: Loc = { file: '<unknown>', line: 0, col: 0 };

function toPath(file: string): string {
  return file.startsWith('file://') ? fileURLToPath(file) : file;
}

/** The user's frame in an Error stack (the first frame not in lomoc's compiler nor in node internals). */
export function userFrame(stack: string | undefined): Loc | undefined {
  for (const line of (stack ?? '').split('\n').slice(1)) {
    const m = framePattern.exec(line.trim());
    if (!m) continue;
    const file = toPath(m[1]);
    if (file.startsWith('node:') || file.includes(`${path.sep}node_modules${path.sep}`)) continue;
    if (path.resolve(file).startsWith(compilerDir)) continue;
    return { file: path.relative(process.cwd(), file) || file, line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}

/**
 * The user's frames around the current DSL call: where it was made, then (when that was inside
 * a helper of the user's, like a `linear()` function) where the helper was called from.
 */
export function callerChain(): Loc[] {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const out: Loc[] = [];
  for (const line of stack.split('\n').slice(1)) {
    const m = framePattern.exec(line.trim());
    if (!m) continue;
    const file = toPath(m[1]);
    const internal = file.startsWith('node:') || file.includes(`${path.sep}node_modules${path.sep}`) || path.resolve(file).startsWith(compilerDir);
    if (internal) {
      if (out.length) break; // back inside lomoc: the user's part of the stack has ended
      continue;
    }
    out.push({ file: path.relative(process.cwd(), file) || file, line: Number(m[2]), col: Number(m[3]) });
    if (out.length === 2) break;
  }
  return out;
}

/** Where the current DSL call was made. */
export function callerLoc(): Loc {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const stack = new Error().stack;
  Error.stackTraceLimit = limit;
  return userFrame(stack) ?? unknownLoc;
}
