// Strided index spaces: every elementwise and layout kernel walks the elements of one shape and
// reads or writes each operand at `offset + sum(index[k] * stride[k])` (stride 0 on a broadcast
// axis). Coalescing first drops size-1 axes and merges axes every operand walks contiguously, so
// [8, 128, 768] + [768] becomes a rank-2 walk, and equal shapes a rank-1 one: less index
// arithmetic per element and fewer distinct shaders. Only the rank and which operands are
// contiguous are baked into the WGSL; the sizes and strides are uniforms.
import { strides as rowMajor } from '../../ir/shape.ts';
import type { Shape } from '../../ir/types.ts';
import type { Uniforms } from './wgsl-kernel.ts';

export interface Walk {
  readonly strides: readonly number[];
  readonly offset: number;
}

export interface IndexSpace {
  /** Sizes of the walked axes, at least one. */
  readonly dims: readonly number[];
  /** One walk per operand over `dims`. */
  readonly walks: readonly Walk[];
}

/** Strides of `from` read at each position of `to` under numpy broadcasting (0 on broadcast axes). */
export function broadcastStrides(from: Shape, to: Shape): number[] {
  const lead = to.length - from.length;
  const st = rowMajor(from);
  return to.map((_, i) => (i < lead || from[i - lead] === 1 ? 0 : st[i - lead]));
}

/** A contiguous walk of `shape` from `offset`. */
export const contiguous = (shape: Shape, offset = 0): Walk => ({ strides: rowMajor(shape), offset });

/** Drops size-1 axes and merges neighbours that every walk steps through contiguously. */
export function coalesce(shape: Shape, walks: readonly Walk[]): IndexSpace {
  const dims: number[] = [];
  const st: number[][] = walks.map(() => []);
  shape.forEach((d, a) => {
    if (d === 1) return;
    const last = dims.length - 1;
    // Axis `last` then `a` is one axis of size dims[last] * d when each stride[last] == stride[a] * d.
    if (last >= 0 && walks.every((w, k) => st[k][last] === w.strides[a] * d)) {
      dims[last] *= d;
      walks.forEach((w, k) => (st[k][last] = w.strides[a]));
    } else {
      dims.push(d);
      walks.forEach((w, k) => st[k].push(w.strides[a]));
    }
  });
  if (!dims.length) return { dims: [1], walks: walks.map((w) => ({ strides: [0], offset: w.offset })) };
  return { dims, walks: walks.map((w, k) => ({ strides: st[k], offset: w.offset })) };
}

const isContiguous = (dims: readonly number[], w: Walk): boolean => {
  const st = rowMajor(dims);
  return w.strides.every((s, k) => s === st[k] || dims[k] === 1);
};

export interface WalkCode {
  /** What the code bakes in: the rank and which walks are contiguous. */
  readonly key: string;
  /** Sets up the walk at flat position `i` (divisions, once per thread). */
  readonly init: string;
  /** `let <name> = offset;` for each operand at the current position. */
  readonly offsets: string;
  /** Moves the walk `step` positions on, after `i += step` (adds and compares only). */
  readonly advance: string;
}

/**
 * WGSL for a thread that visits positions i, i + step, i + 2 step, ... of the space (a grid-stride
 * loop). The multi-index is decoded from `i` once; after that each step adds the digits of `step`
 * in the space's mixed radix with one carry per axis: u32 division is scalarised on lavapipe
 * (no SIMD integer divide), and dividing per element cost 3x the whole copy in measurements.
 * Contiguous walks read `i` (+ an offset uniform when nonzero). Uniform fields: `d<k>` sizes,
 * `t<k>` digits of the step, `<name>s<k>` strides, `<name>o` offsets.
 */
export function walkCode(space: IndexSpace, names: readonly string[], u: Uniforms, step: number): WalkCode {
  const r = space.dims.length;
  const kinds = space.walks.map((w) => (isContiguous(space.dims, w) ? 'c' : 's') + (w.offset ? 'o' : ''));
  const digits = kinds.some((k) => k.startsWith('s'));
  const init: string[] = [];
  const advance: string[] = [];
  if (digits) {
    // Digits of `step`: t[k] < d[k] for k > 0; t[0] may be anything.
    const t = new Array<number>(r);
    let rest = step;
    for (let k = r - 1; k >= 1; k--) {
      t[k] = rest % space.dims[k];
      rest = Math.floor(rest / space.dims[k]);
    }
    t[0] = rest;
    init.push('var q = i;');
    for (let k = r - 1; k >= 1; k--) {
      u.u32(`d${k}`, space.dims[k]).u32(`t${k}`, t[k]);
      init.push(`var i${k} = q % u.d${k};`, `q = q / u.d${k};`);
    }
    u.u32('t0', t[0]);
    init.push('var i0 = q;');
    advance.push('var c = 0u;');
    for (let k = r - 1; k >= 1; k--)
      advance.push(`i${k} += u.t${k} + c;`, `c = select(0u, 1u, i${k} >= u.d${k});`, `i${k} -= c * u.d${k};`);
    advance.push('i0 += u.t0 + c;');
  }
  const offsets = space.walks.map((w, n) => {
    const name = names[n];
    const terms: string[] = [];
    if (kinds[n].startsWith('c')) terms.push('i');
    else
      w.strides.forEach((s, k) => {
        u.u32(`${name}s${k}`, s);
        terms.push(`i${k} * u.${name}s${k}`);
      });
    if (w.offset) {
      u.u32(`${name}o`, w.offset);
      terms.push(`u.${name}o`);
    }
    return `let ${name} = ${terms.join(' + ')};`;
  });
  return { key: `r${r}${kinds.join('')}`, init: init.join('\n'), offsets: offsets.join('\n'), advance: advance.join('\n') };
}

/**
 * WGSL statements that set `let <name> = offset` for each operand at flat position `i` of the
 * space, decoding the multi-index with divisions (for kernels that visit one position per
 * thread), and the part of the cache key they bake in. Uniform fields: `<prefix>d<k>` sizes,
 * `<prefix><name>s<k>` strides, `<prefix><name>o` offsets.
 */
export function indexCode(
  space: IndexSpace,
  names: readonly string[],
  u: Uniforms,
  i = 'i',
  prefix = '',
): { readonly key: string; readonly code: string } {
  const r = space.dims.length;
  const lines: string[] = [];
  const kinds = space.walks.map((w) => (isContiguous(space.dims, w) ? 'c' : 's') + (w.offset ? 'o' : ''));
  if (kinds.some((k) => k.startsWith('s')) && r > 1) {
    lines.push(`var ${prefix}rem = ${i};`);
    for (let k = r - 1; k >= 1; k--) {
      u.u32(`${prefix}d${k}`, space.dims[k]);
      lines.push(`let ${prefix}i${k} = ${prefix}rem % u.${prefix}d${k};`, `${prefix}rem = ${prefix}rem / u.${prefix}d${k};`);
    }
    lines.push(`let ${prefix}i0 = ${prefix}rem;`);
  } else if (r === 1) {
    lines.push(`let ${prefix}i0 = ${i};`);
  }
  space.walks.forEach((w, n) => {
    const name = names[n];
    const terms: string[] = [];
    if (kinds[n].startsWith('c')) terms.push(i);
    else
      w.strides.forEach((s, k) => {
        u.u32(`${prefix}${name}s${k}`, s);
        terms.push(`${prefix}i${k} * u.${prefix}${name}s${k}`);
      });
    if (w.offset) {
      u.u32(`${prefix}${name}o`, w.offset);
      terms.push(`u.${prefix}${name}o`);
    }
    lines.push(`let ${name} = ${terms.join(' + ')};`);
  });
  return { key: `r${r}${kinds.join('')}`, code: lines.join('\n') };
}
