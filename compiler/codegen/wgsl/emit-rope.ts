// Rotary position embedding on x [..., T, Dh]: the pair (i, i + Dh/2) of the row at position t
// rotates by t * base^(-2i/Dh) (negated when `inverse`). A thread owns one pair index i and
// loops over rows (a grid-stride loop), so it reads its frequency from the table once: indexing
// the baked table per element made a [4096, 768] rope take 300 ms on lavapipe.
//
// Precision: the frequencies are computed in doubles here and baked into the shader, each split
// into a 12-bit head and a tail, so t * head is exact in f32 for t < 4096; that product is reduced
// modulo 2 pi in three parts (Cody-Waite) before sin and cos, whose WGSL accuracy is only
// promised on [-pi, pi]. A plain f32 t * f would be off by up to t * 6e-8 radians.
import type { Op } from '../../ir/ops.ts';
import type { NodeOf } from '../../ir/types.ts';
import type { EmitContext, Emitter, KernelCall } from './emitter.ts';
import { grid } from './emitter.ts';
import { Bindings, entryArgs, f32lit, floatOnly, flatGroup, kernel, Uniforms } from './wgsl-kernel.ts';
import { mapMaxGroups, mapWorkgroup } from './wgsl-map.ts';

/** f rounded to 12 significant bits, and the f32 rest. */
export function split12(f: number): [number, number] {
  const e = Math.floor(Math.log2(f));
  const scale = 2 ** (11 - e);
  const head = Math.round(f * scale) / scale;
  return [head, Math.fround(f - head)];
}

export const TWO_PI_1 = 6.28125; // 7 significant bits: k * TWO_PI_1 is exact for k < 2^17
export const TWO_PI_2 = Math.fround(2 * Math.PI - TWO_PI_1);
export const TWO_PI_3 = Math.fround(2 * Math.PI - TWO_PI_1 - TWO_PI_2);

/** The frequency tables of a rope over rows of `d` elements: `fHead` and `fTail` consts, split as split12 says. */
export function ropeTables(base: number, d: number): string {
  const heads = Array.from({ length: d / 2 }, (_, i) => split12(base ** ((-2 * i) / d)));
  const table = (k: 0 | 1) => `array<f32, ${d / 2}>(${heads.map((h) => f32lit(h[k])).join(', ')})`;
  return `const fHead = ${table(0)};
const fTail = ${table(1)};`;
}

/** WGSL statements that set `theta`, the angle of position `pos` (an f32) at frequency `head` + `tail`, reduced modulo 2 pi (Cody-Waite). */
export const ropeTheta = (pos: string, head: string, tail: string, inverse: boolean, indent: string): string =>
  [`let a = ${pos} * ${head};`,
    `let k = round(a * ${f32lit(1 / (2 * Math.PI))});`,
    `let theta = ${inverse ? '-' : ''}(((a - k * ${f32lit(TWO_PI_1)}) - k * ${f32lit(TWO_PI_2)}) - k * ${f32lit(TWO_PI_3)} + ${pos} * ${tail});`].join(`\n${indent}`);

const rope = (n: NodeOf<'rope'>, c: EmitContext): KernelCall[] => {
  floatOnly(n, c);
  const shape = c.g.values[n.inputs[0]].shape;
  const d = shape[shape.length - 1];
  const t = shape[shape.length - 2];
  const half = d / 2;
  const b = new Bindings(c);
  const x = b.value(n.inputs[0], false);
  const y = b.value(n.outputs[0], true);
  const rows = shape.reduce((a, s) => a * s, 1) / d;
  // Row lanes: half * lanes threads in all, about mapMaxGroups workgroups' worth.
  const wg = Math.min(mapWorkgroup, c.limits.maxWorkgroupSize);
  const lanes = Math.max(1, Math.min(rows, Math.ceil((mapMaxGroups * mapWorkgroup) / half)));
  const threads = half * lanes;
  const u = new Uniforms().u32('n', threads).u32('half', half).u32('t', t).u32('rows', rows).u32('lanes', lanes).u32('lanesModT', lanes % t);
  const body = `${ropeTables(n.attrs.base, d)}

@compute @workgroup_size(${wg})
fn main(${entryArgs}) {
  ${flatGroup}
  let idx = wg * ${wg}u + lid;
  if (idx >= u.n) { return; }
  let i = idx % u.half;
  let head = fHead[i];
  let tail = fTail[i];
  var row = idx / u.half;
  var p = row % u.t;
  loop {
    if (row >= u.rows) { break; }
    let pos = f32(p);
    ${ropeTheta('pos', 'head', 'tail', n.attrs.inverse, '    ')}
    let cs = cos(theta);
    let sn = sin(theta);
    let at = row * 2u * u.half + i;
    let x1 = ${x}[at];
    let x2 = ${x}[at + u.half];
    ${y}[at] = x1 * cs - x2 * sn;
    ${y}[at + u.half] = x1 * sn + x2 * cs;
    row += u.lanes;
    p += u.lanesModT;
    if (p >= u.t) { p -= u.t; }
  }
}`;
  // The table is baked in: the key names what determines it.
  const key = `rope|h${half}|base${n.attrs.base}|${n.attrs.inverse ? 'inv' : 'fwd'}|wg${wg}`;
  return [kernel(key, b, u, body, grid(threads, wg, c.limits))];
};

export const ropeEmitters = { rope } satisfies { readonly [O in Extract<Op, 'rope'>]: Emitter<O> };
