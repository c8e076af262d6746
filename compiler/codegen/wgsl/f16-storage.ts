// f16 storage, in one place. Emitters write every kernel as if storage were f32 and only declare
// the element type of each storage binding: `array<f16>` (or `array<vec4<f16>>`) for an f16
// value, `array<f32>` otherwise. `f16Storage` then rewrites the finished WGSL so that all
// arithmetic stays f32: each read `x[i]` of an f16 binding becomes `f32(x[i])`, each store
// `x[i] = e` becomes `x[i] = f16(e)` (and `x[i] += e` a load, an f32 add and a store), and
// `enable f16;` goes first. Accumulators, workgroup arrays and scratch stay f32, so matmuls,
// reductions, norms, softmax, cross-entropy and attention accumulate in f32 and round once, on
// the store: the reference executor's f16 emulation (runtime/reference/tensor.ts) does the same.
import { CompilerBug } from '../../diagnostics.ts';
import type { DType } from '../../ir/types.ts';
import type { KernelCall } from './emitter.ts';

/** The storage element of a float value: `vec4` for bindings read four elements at a time. */
export function floatStorage(dtype: DType, vec4 = false): string {
  const e = dtype === 'f16' ? 'f16' : 'f32';
  return vec4 ? `vec4<${e}>` : e;
}

/** `call` with f16Storage applied; its key gains the f16 bindings' names, which the text bakes in. */
export function withF16Storage(call: KernelCall): KernelCall {
  const names = [...call.code.matchAll(declRe)].map((m) => m[1]);
  return names.length ? { ...call, key: `${call.key}|f16:${names.join(',')}`, code: f16Storage(call.code) } : call;
}

const declRe = /var<storage,\s*(?:read|read_write)>\s+(\w+)\s*:\s*array<(f16|vec4<f16>)>/g;

/** `code` with every access to an f16 storage binding converted to and from f32 (see the top). */
export function f16Storage(code: string): string {
  const wide = new Map<string, string>();
  for (const m of code.matchAll(declRe)) wide.set(m[1], m[2] === 'f16' ? 'f32' : 'vec4<f32>');
  if (!wide.size) return code;
  const narrow = (name: string) => (wide.get(name) === 'f32' ? 'f16' : 'vec4<f16>');
  const access = new RegExp(`(?<![\\w.])(${[...wide.keys()].join('|')})\\s*\\[`, 'g');

  /** The index of the bracket or semicolon that closes the expression starting at `from`. */
  const close = (s: string, from: number, end: string): number => {
    let depth = 0;
    for (let i = from; i < s.length; i++) {
      const ch = s[i];
      if (depth === 0 && ch === end) return i;
      if (ch === '[' || ch === '(') depth++;
      else if (ch === ']' || ch === ')') depth--;
    }
    throw new CompilerBug(`codegen: unbalanced f16 storage access in ${s.slice(from, from + 80)}`);
  };

  const rewrite = (s: string): string => {
    let out = '';
    let at = 0;
    access.lastIndex = 0;
    for (let m = access.exec(s); m; m = access.exec(s)) {
      const name = m[1];
      const open = m.index + m[0].length;
      const shut = close(s, open, ']');
      const lhs = `${name}[${rewrite(s.slice(open, shut))}]`;
      out += s.slice(at, m.index);
      const assign = /^\s*([-+*/]?)=(?!=)/.exec(s.slice(shut + 1));
      if (assign) {
        const rhsFrom = shut + 1 + assign[0].length;
        const semi = close(s, rhsFrom, ';');
        const rhs = rewrite(s.slice(rhsFrom, semi)).trim();
        const value = assign[1] ? `${wide.get(name)}(${lhs}) ${assign[1]} (${rhs})` : rhs;
        out += `${lhs} = ${narrow(name)}(${value})`;
        at = semi;
      } else {
        out += `${wide.get(name)}(${lhs})`;
        at = shut + 1;
      }
      access.lastIndex = at;
    }
    return out + s.slice(at);
  };
  return `enable f16;\n${rewrite(code)}`;
}
