// Per-element kernels over tensors split across bindings, as several dispatches over element
// ranges. Binding every piece of every operand (split-storage.ts) can pass 8 storage bindings:
// AdamW on GPT-2's [50257, 768] embedding binds p, g, m, v at 2 pieces each plus lr, wd and step.
// A kernel whose every array operand is read and written at the thread's own element (the
// optimizer updates) instead runs once per range [from, to) of elements, each operand bound only
// on the part of one piece that holds the range. Ranges are as long as the widest operand's piece
// (pieceBytes / 4 elements for f32) so no range crosses a piece of any operand, and start at
// multiples of 256 bytes of every operand (WebGPU's minStorageBufferOffsetAlignment).
import type { BufferRef } from '../../../contract/program.ts';
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import type { Loc } from '../../ir/types.ts';
import type { EmitContext } from './emitter.ts';

export interface ElementRange {
  readonly from: number;
  readonly to: number;
}

/** An array operand of a per-element kernel: its ref (whole, or a split stand-in) and element bytes. */
export interface RangeOperand {
  readonly ref: BufferRef;
  readonly elemBytes: number;
}

const alignment = 256;

const piecesOf = (c: EmitContext, r: BufferRef): readonly BufferRef[] => c.pieces?.(r) ?? [r];

/** Storage bindings a kernel takes once lower.ts binds every piece of its operands. */
export const boundCount = (c: EmitContext, refs: readonly BufferRef[]): number => refs.reduce((n, r) => n + piecesOf(c, r).length, 0);

/**
 * The ranges of `count` elements over which `operands` each lie in one piece, aligned for every
 * operand; a LomocError (at `loc`, naming `what`) when the piece size allows no such ranges.
 */
export function elementRanges(c: EmitContext, count: number, operands: readonly RangeOperand[], what: string, loc: Loc): ElementRange[] {
  const split = operands.filter((o) => piecesOf(c, o.ref).length > 1);
  if (!split.length) throw new CompilerBug(`codegen: ${what} needs no ranges: none of its operands is split`);
  const pieceBytes = piecesOf(c, split[0].ref)[0].bytes;
  const widest = Math.max(...operands.map((o) => o.elemBytes));
  const narrowest = Math.min(...operands.map((o) => o.elemBytes));
  // The longest range dividing every operand's piece whose start is aligned in the narrowest operand.
  let per = pieceBytes / widest;
  const step = alignment / narrowest;
  per = Math.floor(per / step) * step;
  if (!(per >= step) || (pieceBytes / widest) % per !== 0)
    throw new LomocError(
      `${what}: its operands of ${widest} and ${narrowest} bytes an element cannot be cut into ranges that are aligned to ${alignment} bytes within pieces of ${pieceBytes} bytes; ` +
        `use a binding size that is a multiple of ${(alignment * widest) / narrowest} bytes`,
      loc,
    );
  const out: ElementRange[] = [];
  for (let from = 0; from < count; from += per) out.push({ from, to: Math.min(count, from + per) });
  return out;
}

/** The part of operand `o` holding elements [from, to): inside one piece, in whole words. */
export function subRange(c: EmitContext, o: RangeOperand, r: ElementRange): BufferRef {
  const pieces = piecesOf(c, o.ref);
  const per = pieces.length > 1 ? pieces[0].bytes / o.elemBytes : Infinity;
  const j = pieces.length > 1 ? Math.floor(r.from / per) : 0;
  const start = (r.from - (pieces.length > 1 ? j * per : 0)) * o.elemBytes;
  const bytes = Math.ceil(((r.to - r.from) * o.elemBytes) / 4) * 4;
  const p = pieces[j];
  if (!p || start % alignment !== 0 || start + bytes > Math.ceil(p.bytes / 4) * 4)
    throw new CompilerBug(`codegen: elements ${r.from}..${r.to} do not lie aligned in one piece of ${fmtRef(o.ref)}`);
  return { arena: p.arena, offset: p.offset + start, bytes };
}

const fmtRef = (r: BufferRef) => `arena ${r.arena} bytes ${r.offset}..${r.offset + r.bytes}`;
