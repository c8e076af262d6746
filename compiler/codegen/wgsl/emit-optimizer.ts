// Optimizer updates, one thread per element, always in place: the planner gives p' the storage of
// p and each state' that of its state, and each such pair is bound once, read_write (WebGPU
// forbids a writable binding that aliases another binding of the same range). Where a graph
// was planned without that aliasing (hand-built test graphs), the old values are first copied
// into the new ones, so the update itself is still in place.
//
// lr, wd, step and the clip-norm factor are scalar values in storage, read every step. Baked into
// the shader (and its key): the op, whether there is a clip value, a scale and a master copy,
// whether p' is written by a second dispatch, and which read-only operands share one binding.
// Uniforms: the element count, the clip value, and AdamW's betas, 1 - betas, ln(betas) and eps.
// f16 storage (p, g; the moments and the master copy stay f32) is declared here and converted
// by f16-storage.ts, so the update itself runs in f32.
//
// 8 storage bindings: AdamW with a clip-norm factor and a master copy reads p, g, lr, wd, step,
// scale, m, v, master: 9. With a master copy p is never read (w = master), only written; so that
// variant writes master', m', v' in one dispatch (8 bindings) and then casts master' into p'.
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import type { UpdateAttrs } from '../../ir/ops.ts';
import { numel } from '../../ir/shape.ts';
import type { DType, NodeOf, ValueId } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { type EmitContext, type Emitter, f32bits, grid, type KernelCall } from './emitter.ts';
import { floatStorage } from './f16-storage.ts';

const WG = 256;
const maxBindings = 8; // lower.ts's maxStorageBindings (not imported: lower.ts imports this file)

type UpdateNode = NodeOf<'sgdUpdate'> | NodeOf<'adamwUpdate'>;

interface Binding {
  readonly name: string;
  readonly ref: BufferRef;
  readonly write: boolean;
  readonly scalar: boolean;
  readonly dtype: DType;
}

/**
 * The SGD step of one element as a WGSL function, for this kernel and for fused kernels that
 * compute the gradient themselves: sgdStep(w, grad, rate, decay, factor, clip) -> w'.
 */
export function sgdStepWgsl(a: UpdateAttrs): string {
  return `fn sgdStep(w: f32, grad: f32, rate: f32, decay: f32, factor: f32, clip: f32) -> f32 {
  let x = ${a.clipValue === null ? 'grad * factor' : 'clamp(grad * factor, -clip, clip)'};
  return w - rate * (x + decay * w);
}`;
}

/** 1 - beta^t from lb = ln(beta), without the cancellation of 1 - pow(beta, t) near t * lb = 0. */
const oneMinusPow = `fn oneMinusPow(lb: f32, t: f32) -> f32 {
  let x = t * lb;
  if (x > -0.0625) { return -x * (1.0 + x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0 * (1.0 + x / 6.0))))); }
  return 1.0 - exp(x);
}`;

const entry = `@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= u.n) { return; }`;

function declare(bs: readonly Binding[], uniform: string): string {
  const lines = bs.map((b, k) =>
    `@group(0) @binding(${k}) var<storage, ${b.write ? 'read_write' : 'read'}> ${b.name}: ${b.scalar ? 'f32' : `array<${floatStorage(b.dtype)}>`};`);
  return `${lines.join('\n')}\nstruct U { ${uniform} }\n@group(0) @binding(${bs.length}) var<uniform> u: U;\nconst WG = ${WG}u;`;
}

const copyCode = (from: DType, to: DType) => `${declare([
  { name: 'src', ref: { arena: 0, offset: 0, bytes: 0 }, write: false, scalar: false, dtype: from },
  { name: 'dst', ref: { arena: 0, offset: 0, bytes: 0 }, write: true, scalar: false, dtype: to },
], 'n: u32')}
${entry}
  dst[i] = src[i];
}
`;

function copy(src: BufferRef, dst: BufferRef, n: number, c: EmitContext, from: DType = 'f32', to: DType = from): KernelCall {
  return {
    key: `update.copy.wg${WG}`,
    code: copyCode(from, to),
    bindings: [{ ...src, write: false }, { ...dst, write: true }],
    uniforms: [n],
    workgroups: grid(n, WG, c.limits),
  };
}

function emitUpdate(n: UpdateNode, c: EmitContext): KernelCall[] {
  const a = n.attrs;
  const adam = n.op === 'adamwUpdate';
  const [p, g, lr, wd] = n.inputs;
  const scalars = adam ? 5 : 4;
  const step = adam ? n.inputs[4] : undefined;
  const scale = a.scaled ? n.inputs[scalars] : undefined;
  const states = n.inputs.slice(scalars + (a.scaled ? 1 : 0)); // [m, v]? then master?
  const [pNew, ...statesNew] = n.outputs;
  const count = numel(c.g.values[p].shape);
  if (count === 0) return [];

  // Every old value whose new value has storage of its own is copied there first.
  const calls: KernelCall[] = [];
  const pairs: [ValueId, ValueId][] = states.map((s, k) => [s, statesNew[k]]);
  if (!a.master) pairs.push([p, pNew]); // with a master copy, p is written but never read
  for (const [old, next] of pairs)
    if (!c.sameStorage(old, next)) calls.push(copy(c.slot(old).ref, c.slot(next).ref, count, c, c.g.values[old].dtype));

  // Read-only operands in the same storage (one scalar fed as both lr and wd) are bound once.
  const bound: Binding[] = [];
  const alias = new Map<string, string>();
  const at = (name: string, v: ValueId, write: boolean, scalar = false): Binding[] => {
    const { ref, dtype } = c.slot(v);
    if (scalar && dtype !== 'f32') throw new LomocError(`${n.op}: the ${name} scalar must be f32, got ${dtype}`, n.loc);
    const same = bound.find((b) => !write && !b.write && b.scalar === scalar && b.ref.arena === ref.arena && b.ref.offset === ref.offset);
    if (same) {
      alias.set(name, same.name);
      return [];
    }
    const b = { name, ref, write, scalar, dtype };
    bound.push(b);
    return [b];
  };
  const id = (name: string) => alias.get(name) ?? name;
  const stateNames = [...(adam ? ['m', 'v'] : []), ...(a.master ? ['master'] : [])];
  const rest = [
    ...at('g', g, false),
    ...at('lr', lr, false, true),
    ...at('wd', wd, false, true),
    ...(step === undefined ? [] : at('stepNo', step, false, true)),
    ...(scale === undefined ? [] : at('scale', scale, false, true)),
    ...statesNew.flatMap((v, k) => at(stateNames[k], v, true)),
  ];
  // p' is written by the update itself unless that would take a ninth binding (see the top).
  const split = rest.length + 1 > maxBindings;
  if (split && !a.master) throw new CompilerBug(`codegen: ${n.op} needs ${rest.length + 1} storage bindings`);
  const bindings = split ? rest : [{ name: 'p', ref: c.slot(pNew).ref, write: true, scalar: false, dtype: c.slot(pNew).dtype }, ...rest];

  const [gi, rate, decay] = [`${id('g')}[i]`, id('lr'), id('wd')];
  const w = a.master ? 'master[i]' : 'p[i]';
  const factor = scale === undefined ? '1.0' : id('scale');
  const clip = a.clipValue ?? 0;
  let body: string;
  let uniform: string;
  let words: number[];
  if (!adam) {
    uniform = 'n: u32, clip: f32';
    words = [count, f32bits(clip)];
    body = `  let w2 = sgdStep(${w}, ${gi}, ${rate}, ${decay}, ${factor}, u.clip);`;
  } else {
    const { beta1, beta2, eps } = n.attrs as NodeOf<'adamwUpdate'>['attrs'];
    const t = id('stepNo');
    uniform = 'n: u32, clip: f32, b1: f32, ob1: f32, b2: f32, ob2: f32, lb1: f32, lb2: f32, eps: f32';
    words = [count, clip, beta1, 1 - beta1, beta2, 1 - beta2, Math.log(beta1), Math.log(beta2), eps].map((x, k) => (k === 0 ? x : f32bits(x)));
    body = `  let x = ${a.clipValue === null ? `${gi} * ${factor}` : `clamp(${gi} * ${factor}, -u.clip, u.clip)`};
  let w = ${w};
  let m2 = u.b1 * m[i] + u.ob1 * x;
  let v2 = u.b2 * v[i] + u.ob2 * x * x;
  let w2 = w - ${rate} * (m2 / oneMinusPow(u.lb1, ${t}) / (sqrt(v2 / oneMinusPow(u.lb2, ${t})) + u.eps) + ${decay} * w);
  m[i] = m2;
  v[i] = v2;`;
  }
  const stores = [...(split ? [] : ['  p[i] = w2;']), ...(a.master ? ['  master[i] = w2;'] : [])];
  const code = `${declare(bindings, uniform)}
${adam ? oneMinusPow : sgdStepWgsl(a)}
${entry}
${body}
${stores.join('\n')}
}
`;
  const flags = [a.clipValue === null ? '' : '.clip', a.scaled ? '.scaled' : '', a.master ? '.master' : '', split ? '.split' : '',
    ...[...alias].map(([x, y]) => `.${x}=${y}`)].join('');
  calls.push({
    key: `${n.op}.wg${WG}${flags}`,
    code,
    bindings: bindings.map((b) => ({ ...b.ref, write: b.write })),
    uniforms: words,
    workgroups: grid(count, WG, c.limits),
  });
  if (split) {
    const master = c.slot(statesNew[statesNew.length - 1]);
    calls.push(copy(master.ref, c.slot(pNew).ref, count, c, master.dtype, c.slot(pNew).dtype));
  }
  return calls;
}

export const optimizerEmitters = {
  sgdUpdate: (n, c) => emitUpdate(n, c),
  adamwUpdate: (n, c) => emitUpdate(n, c),
} satisfies { readonly [O in 'sgdUpdate' | 'adamwUpdate']: Emitter<O> };
