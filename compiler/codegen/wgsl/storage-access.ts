// The one text rewrite under f16-storage.ts and packed-storage.ts: every `name[index]` of the
// given storage bindings becomes a load, and every `name[index] = e` (or `op=`) a store, with the
// index and the value rewritten first (they may read the same bindings). Emitters write plain
// indexed reads and assignments, so a string rewrite of the finished WGSL reaches every access.
import { CompilerBug } from '../../diagnostics.ts';

export interface Access {
  /** The expression that reads element `index` (WGSL text) of `name`. */
  load(name: string, index: string): string;
  /** The statement (without its `;`) that stores `value` into element `index` of `name`. */
  store(name: string, index: string, value: string): string;
}

/** The index of the bracket or semicolon that closes the expression starting at `from`. */
function close(s: string, from: number, end: string): number {
  let depth = 0;
  for (let i = from; i < s.length; i++) {
    const ch = s[i];
    if (depth === 0 && ch === end) return i;
    if (ch === '[' || ch === '(') depth++;
    else if (ch === ']' || ch === ')') depth--;
  }
  throw new CompilerBug(`codegen: unbalanced storage access in ${s.slice(from, from + 80)}`);
}

/** `code` with every access to the bindings `names` replaced through `access` (see the top). */
export function rewriteAccesses(code: string, names: readonly string[], access: Access): string {
  if (!names.length) return code;
  const re = new RegExp(`(?<![\\w.])(${names.join('|')})\\s*\\[`, 'g');
  const rewrite = (s: string): string => {
    let out = '';
    let at = 0;
    re.lastIndex = 0;
    for (let m = re.exec(s); m; m = re.exec(s)) {
      const name = m[1];
      const open = m.index + m[0].length;
      const shut = close(s, open, ']');
      const index = rewrite(s.slice(open, shut));
      out += s.slice(at, m.index);
      const assign = /^\s*([-+*/]?)=(?!=)/.exec(s.slice(shut + 1));
      if (assign) {
        const rhsFrom = shut + 1 + assign[0].length;
        const semi = close(s, rhsFrom, ';');
        const rhs = rewrite(s.slice(rhsFrom, semi)).trim();
        out += access.store(name, index, assign[1] ? `${access.load(name, index)} ${assign[1]} (${rhs})` : rhs);
        at = semi;
      } else {
        out += access.load(name, index);
        at = shut + 1;
      }
      re.lastIndex = at;
    }
    return out + s.slice(at);
  };
  return rewrite(code);
}
