// Tensors split across storage bindings, in one place. The planner cuts a tensor larger than one
// binding (WebGPU's default maxStorageBufferBindingSize is 128 MiB) into pieces of `pieceBytes`
// each but the last. Emitters never see that: codegen gives such a tensor one stand-in range (a
// negative arena, splitRef) and emitters declare and index it as one array. `splitBindings` then
// rewrites the finished WGSL (after f16/packed storage, so it sees the stored element type): the
// stand-in's declaration becomes one binding per piece, every later binding is renumbered, and
// each access `name[i]` (`atomicOp(&name[i], ...)` for packed writes) goes through a generated
// helper that picks the piece, i / P with P = pieceBytes / element bytes. Pieces are multiples
// of 256 bytes, so no element, vec4 or packed u32 word straddles two pieces.
// Tensors that are not split leave the WGSL, its key and the dispatch untouched.
import type { BufferRef } from '../../../contract/program.ts';
import { CompilerBug } from '../../diagnostics.ts';
import type { KernelCall } from './emitter.ts';
import { rewriteAccesses } from './storage-access.ts';

/** The stand-in range of planned buffer `buffer` when it has several pieces: arenas are never negative. */
export const splitRef = (buffer: number, bytes: number): BufferRef => ({ arena: -1 - buffer, offset: 0, bytes });
export const isSplitRef = (r: BufferRef): boolean => r.arena < 0;
/** Which planned buffer a stand-in range stands for. */
export const splitBuffer = (r: BufferRef): number => -1 - r.arena;

/** A split tensor's real storage: its pieces in order, all but the last `pieceBytes` long. */
export interface SplitPieces {
  readonly pieces: readonly BufferRef[];
  readonly pieceBytes: number;
}

const declRe = /@group\(0\)\s*@binding\((\d+)\)\s*var<storage,\s*(read|read_write)>\s*(\w+)\s*:\s*array<(.+?)>\s*;/g;
const elemBytes: Record<string, number> = {
  f32: 4, i32: 4, u32: 4, 'atomic<u32>': 4, 'atomic<i32>': 4, f16: 2, 'vec4<f32>': 16, vec4f: 16, 'vec4<f16>': 8, vec4h: 8, 'vec2<f32>': 8, vec2f: 8,
};
/** Bytes of a WGSL element type, through module-scope `alias`es (attention's `E`). */
function bytesOf(code: string, elem: string): number | undefined {
  for (let t = elem, hops = 0; hops < 4; hops++) {
    if (elemBytes[t]) return elemBytes[t];
    const m = new RegExp(`\\balias\\s+${t}\\s*=\\s*([^;]+);`).exec(code);
    if (!m) return undefined;
    t = m[1].trim();
  }
  return undefined;
}

interface Split {
  readonly name: string;
  readonly elem: string;
  readonly mode: string;
  readonly per: number;
  readonly count: number;
}

/** `atomicOp(&name[index], rest)` -> `sp_atomicOp_name(u32(index), rest)`; returns the rewritten code and the ops used. */
function rewriteAtomics(code: string, name: string, ops: Set<string>): string {
  const re = new RegExp(`\\b(atomic\\w+)\\s*\\(\\s*&\\s*${name}\\s*\\[`, 'g');
  let out = '';
  let at = 0;
  for (let m = re.exec(code); m; m = re.exec(code)) {
    const open = m.index + m[0].length;
    let depth = 0;
    let shut = open;
    for (; shut < code.length; shut++) {
      const ch = code[shut];
      if (depth === 0 && ch === ']') break;
      if (ch === '[' || ch === '(') depth++;
      else if (ch === ']' || ch === ')') depth--;
    }
    ops.add(m[1]);
    out += `${code.slice(at, m.index)}sp_${m[1]}_${name}(u32(${code.slice(open, shut)})`;
    at = shut + 1;
    re.lastIndex = at;
  }
  return out + code.slice(at);
}

/** The piece chain: `body(j, local)` for the piece holding element `i`, the last one unconditionally. */
function chain(s: Split, body: (piece: string, local: string) => string): string {
  const lines: string[] = [];
  for (let j = 0; j < s.count; j++) {
    const local = j === 0 ? 'i' : `i - ${j * s.per}u`;
    const stmt = body(`${s.name}_p${j}`, local);
    lines.push(j < s.count - 1 ? `  if (i < ${(j + 1) * s.per}u) { ${stmt} }` : `  ${stmt}`);
  }
  return lines.join('\n');
}

function helpers(s: Split, ops: ReadonlySet<string>): string {
  const out: string[] = [];
  if (!s.elem.startsWith('atomic')) {
    out.push(`fn sp_ld_${s.name}(i: u32) -> ${s.elem} {\n${chain(s, (p, l) => `return ${p}[${l}];`)}\n}`);
    if (s.mode === 'read_write') out.push(`fn sp_st_${s.name}(i: u32, v: ${s.elem}) {\n${chain(s, (p, l) => `${p}[${l}] = v; return;`)}\n}`);
  }
  const inner = s.elem.replace(/^atomic<(.+)>$/, '$1');
  for (const op of [...ops].sort()) {
    if (op === 'atomicLoad') out.push(`fn sp_${op}_${s.name}(i: u32) -> ${inner} {\n${chain(s, (p, l) => `return atomicLoad(&${p}[${l}]);`)}\n}`);
    else if (op === 'atomicStore') out.push(`fn sp_${op}_${s.name}(i: u32, v: ${inner}) {\n${chain(s, (p, l) => `atomicStore(&${p}[${l}], v); return;`)}\n}`);
    else out.push(`fn sp_${op}_${s.name}(i: u32, v: ${inner}) -> ${inner} {\n${chain(s, (p, l) => `return ${op}(&${p}[${l}], v);`)}\n}`);
  }
  return out.join('\n');
}

/**
 * `call` with every stand-in binding (splitRef) replaced by its pieces (see the top). `resolve`
 * gives a stand-in's pieces. The result may bind more than 8 buffers: lower.ts checks.
 */
export function splitBindings(call: KernelCall, resolve: (r: BufferRef) => SplitPieces): KernelCall {
  if (!call.bindings.some(isSplitRef)) return call;
  const decls = new Map<number, { mode: string; name: string; elem: string }>();
  for (const m of call.code.matchAll(declRe)) decls.set(Number(m[1]), { mode: m[2], name: m[3], elem: m[4].trim() });
  const bindings: KernelCall['bindings'][number][] = [];
  const renumber = new Map<number, number>();
  const splits: Split[] = [];
  call.bindings.forEach((b, k) => {
    renumber.set(k, bindings.length);
    if (!isSplitRef(b)) return void bindings.push(b);
    const d = decls.get(k);
    const size = d && bytesOf(call.code, d.elem);
    if (!d || !size) throw new CompilerBug(`codegen: split binding ${k} of ${call.key} has no array declaration lomoc can split`);
    const { pieces, pieceBytes } = resolve(b);
    if (pieceBytes % size !== 0) throw new CompilerBug(`codegen: pieces of ${pieceBytes} bytes do not hold whole ${d.elem} elements`);
    splits.push({ name: d.name, elem: d.elem, mode: d.mode, per: pieceBytes / size, count: pieces.length });
    for (const p of pieces) bindings.push({ ...p, write: b.write });
  });
  renumber.set(call.bindings.length, bindings.length); // the uniforms, bound right after storage
  let code = call.code.replace(/@binding\((\d+)\)/g, (all, k: string) => `@binding(${renumber.get(Number(k)) ?? k})`);
  const helperText: string[] = [];
  for (const s of splits) {
    const ops = new Set<string>();
    code = rewriteAtomics(code, s.name, ops);
    code = rewriteAccesses(code, [s.name], {
      load: (name, index) => `sp_ld_${name}(u32(${index}))`,
      store: (name, index, value) => `sp_st_${name}(u32(${index}), ${value})`,
    });
    code = code.replace(new RegExp(`@group\\(0\\)\\s*@binding\\((\\d+)\\)\\s*var<storage,\\s*(read|read_write)>\\s*${s.name}\\s*:\\s*array<(.+?)>\\s*;`), (all, k: string, mode: string, elem: string) =>
      Array.from({ length: s.count }, (_, j) => `@group(0) @binding(${Number(k) + j}) var<storage, ${mode}> ${s.name}_p${j}: array<${elem}>;`).join('\n'));
    helperText.push(helpers(s, ops));
  }
  const key = `${call.key}|split:${splits.map((s) => `${s.name}=${s.count}x${s.per}`).join(',')}`;
  return { ...call, key, code: `${code}\n${helperText.join('\n')}\n`, bindings };
}
