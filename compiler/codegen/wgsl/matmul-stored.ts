// A matmul over matrices that sit anywhere in storage: a column range of a wider matrix, a row
// range, a scratch buffer. For emitters that run matmuls over parts of their operands (the fused
// LM head, emit-linear-ce.ts). It is emit-matmul.ts's kernel (the target's register-blocked tile,
// B read as vec4s where its layout allows) with each matrix's offset and row stride as uniforms
// instead of packed shapes: one matrix, no batch walk, no matrix-vector variant.
import type { BufferRef } from '../../../contract/program.ts';
import { bytesPerElement } from '../../ir/shape.ts';
import type { DType, ValueId } from '../../ir/types.ts';
import { launch, matmulBody, type MatmulEpilogue, type MatmulGeometry, type MatmulLayout } from './emit-matmul.ts';
import type { EmitContext, KernelCall } from './emitter.ts';
import { matmulShapeKey } from './target.ts';
import { Bindings, kernel, Uniforms } from './wgsl-kernel.ts';

/** A row-major matrix in storage: element (i, j) at `at + i * ld + j` (in elements) of `ref`. */
export interface StoredMatrix {
  /** The value whose storage it is (bound by value, so aliases are bound once); absent: a scratch range. */
  readonly value?: ValueId;
  readonly ref: BufferRef;
  readonly dtype: DType;
  readonly at: number;
  readonly ld: number;
}

/** An operand: a stored matrix, or (`trans`) the transpose of one. */
export type MatmulOperand = StoredMatrix & { readonly trans: boolean };

/** How the output takes each element: stored, or (`accumulate`) added to what it holds unless `first`. */
export interface StoredOutput extends StoredMatrix {
  readonly accumulate: boolean;
  readonly first: boolean;
}

const bind = (b: Bindings, s: StoredMatrix, write: boolean, elem?: 'vec4'): string =>
  elem ? b.buffer(s.ref, write, s.dtype === 'f16' || s.dtype === 'bf16' ? `vec4<${s.dtype}>` : 'vec4<f32>')
  : s.value !== undefined ? b.value(s.value, write) : b.buffer(s.ref, write);

/** Whether two ranges may share bytes (a writable binding may not alias another one). */
const overlap = (x: BufferRef, y: BufferRef): boolean => x.arena === y.arena && x.offset < y.offset + y.bytes && y.offset < x.offset + x.bytes;

/** The values an epilogue binds, probed on a throwaway Bindings. */
function epilogueValues(ep: MatmulEpilogue, c: EmitContext): ValueId[] {
  const probe = new Bindings(c);
  ep.bind(probe, new Uniforms());
  return probe.values();
}

/**
 * O[m, n] = A[m, k] B[k, n] (each operand transposed as it says), one dispatch. `O` is a stored
 * matrix, or an epilogue (emit-matmul.ts) handed each element with its flat index into a matrix
 * whose rows are `ldo` apart from element `oAt`.
 */
export function storedMatmul(c: EmitContext, m: number, k: number, n: number, A: MatmulOperand, B: MatmulOperand, O: StoredOutput | (MatmulEpilogue & { readonly oAt: number; readonly ldo: number })): KernelCall {
  const geo: MatmulGeometry = { m, k, n, transA: A.trans, transB: B.trans, batch: [], count: 1 };
  const tile = c.target.tuned?.[matmulShapeKey(geo, A.dtype, B.dtype)] ?? c.target.matmul;
  // B as vec4s: 4 adjacent columns of one stored row, every row and the start 16-byte aligned
  // (8-byte for 16-bit storage), as emit-matmul.ts reads it; a binding of its own.
  const bVec4 = tile.vec4 !== false && !B.trans && tile.tn % 4 === 0 && n % 4 === 0 && B.ld % 4 === 0 && B.at % 4 === 0 &&
    B.ref.offset % (4 * bytesPerElement[B.dtype]) === 0 && !overlap(B.ref, A.ref) &&
    ('bind' in O ? !epilogueValues(O, c).some((v) => B.value !== undefined && c.sameStorage(v, B.value)) : !overlap(B.ref, O.ref));
  const b = new Bindings(c);
  const [a, bb] = [bind(b, A, false), bind(b, B, false, bVec4 ? 'vec4' : undefined)];
  const o = 'bind' in O ? undefined : bind(b, O, true);
  const u = new Uniforms();
  const workgroups = launch(geo, tile, u, c.limits);
  const [ldo, oAt] = 'bind' in O ? [O.ldo, O.oAt] : [O.ld, O.at];
  u.u32('lda', A.ld).u32('ldb', B.ld).u32('ldbv', bVec4 ? B.ld / 4 : 0).u32('ldo', ldo).u32('aAt', A.at).u32('bAt', B.at).u32('oAt', oAt);
  if (!('bind' in O)) u.u32('first', O.first ? 1 : 0);
  const at: MatmulLayout = {
    ...(A.trans ? { aFree: '1u', aL: 'u.lda' } : { aFree: 'u.lda', aL: '1u' }),
    ...(B.trans ? { bFree: 'u.ldb', bL: '1u' } : { bFree: '1u', bL: 'u.ldb' }),
    bLv: 'u.ldbv',
    aAt: 'u.aAt',
    bAt: 'u.bAt',
    oOff: 'u.oAt',
    oRow: 'u.ldo',
  };
  const { tag, fns } = 'bind' in O ? O.bind(b, u)
    : O.accumulate ? { tag: 'acc', fns: `fn finish(i: u32, v: f32) { if (u.first == 1u) { ${o}[i] = v; } else { ${o}[i] = ${o}[i] + v; } }` }
    : { tag: 'store', fns: `fn finish(i: u32, v: f32) { ${o}[i] = v; }` };
  const code = matmulBody(tile, geo, a, bb, { tag, fns }, bVec4, at);
  const key = `matmul.stored:${tile.layout[0]}${tile.wgX}x${tile.wgY}.${tile.tm}x${tile.tn}.${A.trans ? 'T' : 'N'}${B.trans ? 'T' : bVec4 ? 'V' : 'N'}|${tag}`;
  return kernel(key, b, u, code, workgroups);
}
