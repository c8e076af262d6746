// Shape arithmetic shared by the shape rules, the reference executor and the planner.
import { elementBytes, numel } from '../../contract/units.ts';
import type { DType, Shape } from './types.ts';

export { numel };

export const bytesPerElement: Readonly<Record<DType, number>> = elementBytes;
export const byteSize = (s: Shape, d: DType): number => numel(s) * bytesPerElement[d];

/** Row-major strides. */
export function strides(s: Shape): number[] {
  const out = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    out[i] = acc;
    acc *= s[i];
  }
  return out;
}

export const fmtShape = (s: Shape): string => `[${s.join(', ')}]`;

/** The largest count a JS number holds exactly: element counts, byte sizes and offsets stay within it. */
export const maxSafeCount = Number.MAX_SAFE_INTEGER;

/**
 * Why a tensor of this shape and dtype cannot be counted exactly, or undefined: a dimension that is
 * not a positive safe integer, or an element count or byte size past 2^53 - 1 (printed exactly).
 */
export function sizeProblem(s: Shape, d: DType): string | undefined {
  const bad = s.findIndex((x) => !Number.isSafeInteger(x) || x < 1);
  if (bad >= 0) return `shape ${fmtShape(s)}: dimension ${bad} must be a positive integer at most 2^53 - 1, got ${s[bad]}`;
  // A float product at most 2^53 is exact (every partial product is smaller); only past it count in BigInt.
  if (numel(s) * bytesPerElement[d] <= maxSafeCount) return undefined;
  const n = s.reduce((a, b) => a * BigInt(b), 1n);
  if (n > BigInt(maxSafeCount)) return `shape ${fmtShape(s)} holds ${n} elements, more than lomoc counts exactly (2^53 - 1)`;
  return `shape ${fmtShape(s)} of ${d} takes ${n * BigInt(bytesPerElement[d])} bytes, more than lomoc counts exactly (2^53 - 1)`;
}

export const sameShape = (a: Shape, b: Shape): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Numpy broadcasting; undefined when the shapes do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): number[] | undefined {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out[i] = x === 1 ? y : x;
  }
  return out;
}

/**
 * The axes of `to` that a value of shape `from` was broadcast along (leading axes it lacked,
 * and axes where it had size 1): summing over them undoes the broadcast.
 */
export function broadcastAxes(from: Shape, to: Shape): number[] {
  const lead = to.length - from.length;
  const axes: number[] = [];
  for (let i = 0; i < to.length; i++) {
    if (i < lead || (from[i - lead] === 1 && to[i] !== 1)) axes.push(i);
  }
  return axes;
}

/** Shape after reducing `axes` (sorted, non-negative). */
export function reducedShape(s: Shape, axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  s.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** Normalise possibly negative axes for a rank; undefined when one is out of range. */
export function normalizeAxes(axes: readonly number[], rank: number): number[] | undefined {
  const out = axes.map((a) => (a < 0 ? a + rank : a));
  if (out.some((a) => a < 0 || a >= rank || !Number.isInteger(a))) return undefined;
  return [...new Set(out)].sort((a, b) => a - b);
}

export const isFloat = (d: DType): boolean => d !== 'i32';
