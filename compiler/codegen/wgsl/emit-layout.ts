// Ops that only move elements: reshape, transpose, slice, broadcastTo (gathers through strides,
// wgsl-map.ts), pad (a gather that writes zeros outside the input) and concat (several inputs
// per dispatch), all grid-stride loops. They move f32 and i32 (token ids) alike, as the
// reference kernels do.
import type { Op } from '../../ir/ops.ts';
import { numel, strides } from '../../ir/shape.ts';
import type { NodeOf, Shape } from '../../ir/types.ts';
import type { EmitContext, Emitter, KernelCall } from './emitter.ts';
import { broadcastStrides, contiguous, type Walk } from './wgsl-index.ts';
import { Bindings, type Elem, elemOf, entryArgs, flatGroup, kernel, Uniforms, wide } from './wgsl-kernel.ts';
import { mapGrid, mapKernel, shapeOf } from './wgsl-map.ts';

const moves: readonly Elem[] = ['f32', 'i32'];

/** out[i] = x[walk(i)] over the output's shape. */
function gather(n: NodeOf<Op>, c: EmitContext, walk: Walk): KernelCall[] {
  const elem = elemOf(n, c, n.inputs[0], moves);
  const shape = shapeOf(c, n.outputs[0]);
  return [mapKernel(c, {
    tag: `move${elem}`, shape,
    out: { value: n.outputs[0], walk: contiguous(shape), elem },
    ins: [{ value: n.inputs[0], walk, elem }],
    expr: ([x]) => x,
  })];
}

/** A reshape the planner made a view of its input moves nothing. */
const reshape = (n: NodeOf<'reshape'>, c: EmitContext): KernelCall[] =>
  c.sameStorage(n.inputs[0], n.outputs[0]) ? [] : gather(n, c, contiguous(shapeOf(c, n.outputs[0])));

const transpose = (n: NodeOf<'transpose'>, c: EmitContext): KernelCall[] => {
  const st = strides(shapeOf(c, n.inputs[0]));
  return gather(n, c, { strides: n.attrs.perm.map((p) => st[p]), offset: 0 });
};

const slice = (n: NodeOf<'slice'>, c: EmitContext): KernelCall[] => {
  const st = strides(shapeOf(c, n.inputs[0]));
  return gather(n, c, { strides: st, offset: n.attrs.starts.reduce((acc, s, i) => acc + s * st[i], 0) });
};

const broadcastTo = (n: NodeOf<'broadcastTo'>, c: EmitContext): KernelCall[] =>
  gather(n, c, { strides: broadcastStrides(shapeOf(c, n.inputs[0]), n.attrs.shape), offset: 0 });

/**
 * Pad: each output element reads the input when every coordinate lies inside it, else 0.
 * Unpadded axes of size 1 are dropped, and an unpadded axis merges into the one before it, so
 * [B, T, D] padded on T alone is a rank-2 walk.
 */
function padAxes(shape: Shape, before: readonly number[], after: readonly number[]): { dims: number[]; lo: number[]; outs: number[] } {
  const dims: number[] = [];
  const lo: number[] = [];
  const outs: number[] = [];
  shape.forEach((d, a) => {
    const unpadded = before[a] === 0 && after[a] === 0;
    if (unpadded && d === 1) return;
    const k = dims.length - 1;
    if (unpadded && k >= 0) {
      dims[k] *= d;
      lo[k] *= d;
      outs[k] *= d;
    } else {
      dims.push(d);
      lo.push(before[a]);
      outs.push(d + before[a] + after[a]);
    }
  });
  return dims.length ? { dims, lo, outs } : { dims: [1], lo: [0], outs: [1] };
}

const pad = (n: NodeOf<'pad'>, c: EmitContext): KernelCall[] => {
  const elem = elemOf(n, c, n.inputs[0], moves);
  const { dims, lo, outs } = padAxes(shapeOf(c, n.inputs[0]), n.attrs.before, n.attrs.after);
  const r = dims.length;
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false, elem);
  const y = b.value(n.outputs[0], true, elem);
  const u = new Uniforms();
  const total = numel(shapeOf(c, n.outputs[0]));
  const { wg, groups, threads } = mapGrid(total, c.limits, c.target);
  u.u32('n', total).u32('step', threads);
  const st = strides(dims);
  const lines: string[] = ['var rem = i;', 'var inside = true;', 'var src = 0u;'];
  for (let k = r - 1; k >= 0; k--) {
    u.u32(`d${k}`, outs[k]).u32(`lo${k}`, lo[k]).u32(`n${k}`, dims[k]).u32(`s${k}`, st[k]);
    lines.push(
      `let i${k} = rem % u.d${k};`, `rem = rem / u.d${k};`,
      // i < lo wraps around in u32 and fails the second test too.
      `inside = inside && i${k} - u.lo${k} < u.n${k} && i${k} >= u.lo${k};`,
      `src = src + (i${k} - u.lo${k}) * u.s${k};`,
    );
  }
  const body = `@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  for (var i = wg * ${wg}u + lid; i < u.n; i += u.step) {
    ${lines.join('\n    ')}
    var v = ${wide(elem)}(0);
    if (inside) { v = ${x}[src]; }
    ${y}[i] = v;
  }
}`;
  return [kernel(`pad${elem}|r${r}|wg${wg}`, b, u, body, [groups, 1, 1])];
};

/** Inputs per concat dispatch: with the output, 8 storage bindings, what browsers are sure to grant. */
const concatPerDispatch = 7;

/**
 * Concat along `axis`, seen as [outer, size, inner]: each dispatch writes the columns of up to
 * seven inputs, each thread finding its input by comparing its column with the inputs' ends.
 */
const concat = (n: NodeOf<'concat'>, c: EmitContext): KernelCall[] => {
  const elem = elemOf(n, c, n.outputs[0], moves);
  for (const v of n.inputs) elemOf(n, c, v, [elem]);
  const shape = shapeOf(c, n.outputs[0]);
  const axis = n.attrs.axis;
  const outer = numel(shape.slice(0, axis));
  const inner = numel(shape.slice(axis + 1));
  const calls: KernelCall[] = [];
  let start = 0;
  for (let first = 0; first < n.inputs.length; first += concatPerDispatch) {
    const part = n.inputs.slice(first, first + concatPerDispatch);
    const b = new Bindings(c);
    const xs = part.map((v) => b.value(v, false, elem));
    const y = b.value(n.outputs[0], true, elem);
    const u = new Uniforms();
    const sizes = part.map((v) => shapeOf(c, v)[axis]);
    const cols = sizes.reduce((a, s) => a + s, 0);
    const total = outer * cols * inner;
    const { wg, groups, threads } = mapGrid(total, c.limits, c.target);
    u.u32('n', total).u32('step', threads).u32('inner', inner).u32('cols', cols).u32('size', shape[axis]).u32('start', start);
    let end = 0;
    const branches = part.map((_, k) => {
      const from = end;
      end += sizes[k];
      u.u32(`e${k}`, end).u32(`n${k}`, sizes[k]);
      const read = `${xs[k]}[(o * u.n${k} + col - ${from === 0 ? '0u' : `u.e${k - 1}`}) * u.inner + j]`;
      return k === part.length - 1 ? `{ v = ${read}; }` : `if (col < u.e${k}) { v = ${read}; }`;
    });
    const body = `@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  for (var i = wg * ${wg}u + lid; i < u.n; i += u.step) {
    let j = i % u.inner;
    let t = i / u.inner;
    let col = t % u.cols;
    let o = t / u.cols;
    var v: ${wide(elem)};
    ${branches.join(' else ')}
    ${y}[(o * u.size + u.start + col) * u.inner + j] = v;
  }
}`;
    calls.push(kernel(`concat${elem}|k${part.length}|wg${wg}`, b, u, body, [groups, 1, 1]));
    start += cols;
  }
  return calls;
};

export const layoutEmitters = {
  reshape,
  transpose,
  slice,
  broadcastTo,
  pad,
  concat,
} satisfies { readonly [O in Extract<Op, 'reshape' | 'transpose' | 'slice' | 'broadcastTo' | 'pad' | 'concat'>]: Emitter<O> };
