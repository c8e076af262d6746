// Optimizer updates, one thread per element, always in place: the planner gives p' the storage of
// p and each state' that of its state, and each such pair is bound once, read_write (WebGPU
// forbids a writable binding that aliases another binding of the same range). Where a graph
// was planned without that aliasing (hand-built test graphs), the old values are first copied
// into the new ones, so the update itself is still in place.
//
// The element's update is the rule's WGSL (compiler/optimizers/): this file binds the node's named
// inputs and hands the rule their names. lr, wd, step and the clip-norm factor are scalar values
// in storage, read every step. Baked into the shader (and its key): the rule, whether there is a
// clip value, a scale and a master copy, whether p' is written by a second dispatch, and which
// read-only operands share one binding. Uniforms: the element count, the clip value, and the
// rule's own (AdamW's betas, 1 - betas, ln(betas) and eps). f16 storage (p, g; the states and
// the master copy stay f32) is declared here and converted by f16-storage.ts, so the update
// itself runs in f32. A rule in the reduction form (states of other shapes, whole-param sums) has
// kernels of its own: emit-update-phases.ts, which also picks between the two forms.
//
// 8 storage bindings: AdamW with a clip-norm factor and a master copy reads p, g, lr, wd, step,
// scale, m, v, master: 9. With a master copy p is never read (w = master), only written; so that
// variant writes master', m', v' in one dispatch (8 bindings) and then casts master' into p'.
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import type { UpdateAttrs } from '../../ir/ops.ts';
import { numel, sameShape } from '../../ir/shape.ts';
import type { WgslNames, WgslRule } from '../../optimizers/descriptor.ts';
import { updateRule } from '../../optimizers/table.ts';
import { updateInput } from '../../optimizers/update-layout.ts';
import type { DType, NodeOf, ValueId } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { type EmitContext, type Emitter, f32bits, grid, type KernelCall } from './emitter.ts';
import { floatStorage } from './f16-storage.ts';
import { stochasticRoundWgsl } from './stochastic-round.ts';
import { boundCount, elementRanges, subRange, type ElementRange } from './split-ranges.ts';
import { elementBytes } from '../../../contract/units.ts';

const WG = 256;
const maxBindings = 8; // lower.ts's maxStorageBindings (not imported: lower.ts imports this file)

type UpdateNode = NodeOf<'optimizerUpdate'>;

interface Binding {
  readonly name: string;
  readonly ref: BufferRef;
  readonly write: boolean;
  readonly scalar: boolean;
  readonly dtype: DType;
}

/** The per-element WGSL of an update's rule; a LomocError when it has none. */
export function wgslRuleOf(n: UpdateNode): WgslRule {
  const rule = updateRule(n.attrs.rule);
  if (!rule.wgsl) throw new LomocError(`optimizerUpdate: the update rule '${rule.name}' has no WGSL kernel yet; run it on the reference executor (--device cpu)`, n.loc);
  return rule.wgsl;
}

/** The uniform field of a rule's uniform `name` (prefixed, so no rule name clashes with n or clip). */
export const ruleUniform = (name: string) => `h_${name}`;

/** The rule's uniforms as struct fields and their f32 values, in the rule's order. */
export function ruleUniforms(r: WgslRule, a: UpdateAttrs): { fields: string[]; values: number[] } {
  const all = Object.entries(r.uniforms(a.hyper));
  return { fields: all.map(([k]) => `${ruleUniform(k)}: f32`), values: all.map(([, v]) => v) };
}

/** The clipped, scaled gradient element `x` and the weight element `w`, then the rule's body. */
export function updateBody(r: WgslRule, a: UpdateAttrs, names: Omit<WgslNames, 'x' | 'w'> & { grad: string; factor: string; clip: string; weight: string }): string {
  const x = a.clipValue === null ? `${names.grad} * ${names.factor}` : `clamp(${names.grad} * ${names.factor}, -${names.clip}, ${names.clip})`;
  // A negative factor is an overflow under loss scaling (clipFactor): the step is skipped, nothing written.
  const skip = a.scaled ? [`if (${names.factor} < 0.0) { return; }`] : [];
  return [...skip, `let x = ${x};`, `let w = ${names.weight};`, r.body({ ...names, x: 'x', w: 'w' })].join('\n');
}

/** WGSL helpers a stochastically rounded update needs (codegen/wgsl/stochastic-round.ts). */
export const roundingFunctions = (a: UpdateAttrs): string => (a.stochastic ? stochasticRoundWgsl : '');

/**
 * The value stored as the new param: under stochastic rounding the bf16 (f16) neighbour that
 * roundingBits(u.rseed, step, u.rparam, index) picks (exactly a bf16 or f16, so the nearest-rounding
 * store, packed or native, keeps it), as the reference executor's kernels-optimizer.ts does; else `w2` itself.
 */
export function storedValue(a: UpdateAttrs, w2: string, index: string, step: string): string {
  if (!a.stochastic) return w2;
  const bits = `roundingBits(u.rseed, u32(${step}), u.rparam, ${index})`;
  return a.stochastic.format === 'f16' ? `f32ToF16Stochastic(${w2}, ${bits})` : `bitcast<f32>(f32ToBf16Stochastic(${w2}, ${bits}) << 16u)`;
}

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

/** Copies n elements of `src` into `dst` (old values into the new value's own storage). */
export function copy(src: BufferRef, dst: BufferRef, n: number, c: EmitContext, from: DType = 'f32', to: DType = from): KernelCall {
  return {
    key: `update.copy.wg${WG}`,
    code: copyCode(from, to),
    bindings: [{ ...src, write: false }, { ...dst, write: true }],
    uniforms: [n],
    workgroups: grid(n, WG, c.limits),
  };
}

/**
 * The update's dispatches; where a split param or state would take more than 8 bindings, one set
 * per element range (split-ranges.ts), each binding the part of every array that holds its range.
 */
function emitUpdate(n: UpdateNode, c: EmitContext): KernelCall[] {
  const whole = updateCalls(n, c);
  if (whole.every((call) => boundCount(c, call.bindings) <= maxBindings)) return whole;
  const p = updateInput(n.attrs, n.inputs, 'p')!;
  const arrays = [...new Set([...n.inputs.filter((v) => sameShape(c.g.values[v].shape, c.g.values[p].shape)), ...n.outputs])];
  const operands = arrays.map((v) => ({ ref: c.slot(v).ref, elemBytes: elementBytes[c.g.values[v].dtype] }));
  const ranges = elementRanges(c, numel(c.g.values[p].shape), operands, n.op, n.loc);
  return ranges.flatMap((range) => updateCalls(n, c, range));
}

function updateCalls(n: UpdateNode, c: EmitContext, range?: ElementRange): KernelCall[] {
  const a = n.attrs;
  const r = wgslRuleOf(n);
  const named = (name: string) => updateInput(a, n.inputs, name);
  const [p, g, lr, wd, step, scale] = (['p', 'g', 'lr', 'wd', 'step', 'scale'] as const).map(named);
  const states = a.states.map((s) => named(s)!);
  const [pNew, ...statesNew] = n.outputs;
  // A window update (width chunks) runs a thread per gradient element; element i of the window is
  // element pi of the param and of each state: (i / width) * whole + start * inner + i % width.
  const win = a.window;
  if (win && range) throw new LomocError(`${n.op}: a window update of a param split over several bindings is not supported; use fewer width slices or a larger --max-binding`, n.loc);
  const count = range ? range.to - range.from : numel(c.g.values[(win ? g : p)!].shape);
  if (count === 0) return [];
  for (const s of states)
    if (!sameShape(c.g.values[s].shape, c.g.values[p!].shape))
      throw new LomocError(`optimizerUpdate: the ${a.rule} rule's states do not all have the param's shape; its WGSL runs one thread per element and needs kernels of its own for them`, n.loc);
  // An array's storage: within a range, only the part holding it (scalars are bound whole).
  const refOf = (v: ValueId, scalar = false): BufferRef => {
    const ref = c.slot(v).ref;
    return range && !scalar ? subRange(c, { ref, elemBytes: elementBytes[c.g.values[v].dtype] }, range) : ref;
  };

  // Every old value whose new value has storage of its own is copied there first.
  const calls: KernelCall[] = [];
  const pairs: [ValueId, ValueId][] = states.map((s, k) => [s, statesNew[k]]);
  if (!a.master) pairs.push([p!, pNew]); // with a master copy, p is written but never read
  for (const [old, next] of pairs) {
    if (win && !c.sameStorage(old, next)) throw new CompilerBug(`codegen: a window update's %${next} does not share its old value's storage`);
    if (!c.sameStorage(old, next)) calls.push(copy(refOf(old), refOf(next), count, c, c.g.values[old].dtype));
  }

  // Read-only operands in the same storage (one scalar fed as both lr and wd) are bound once.
  const bound: Binding[] = [];
  const alias = new Map<string, string>();
  const at = (name: string, v: ValueId, write: boolean, scalar = false): Binding[] => {
    const { dtype } = c.slot(v);
    const ref = refOf(v, scalar);
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
  // State bindings carry a prefix: a rule's state names cannot clash with p, g, lr or u.
  const stateVar = (s: string) => (s === 'master' ? 'master' : `s_${s}`);
  const rest = [
    ...at('g', g!, false),
    ...at('lr', lr!, false, true),
    ...at('wd', wd!, false, true),
    ...(step === undefined ? [] : at('stepNo', step, false, true)),
    ...(scale === undefined ? [] : at('scale', scale, false, true)),
    ...statesNew.flatMap((v, k) => at(stateVar(a.states[k]), v, true)),
  ];
  // p' is written by the update itself unless that would take a ninth binding (see the top).
  const split = rest.length + 1 > maxBindings;
  if (split && win) throw new LomocError(`${n.op}: a window update with a master copy needs ${rest.length + 1} storage bindings, more than ${maxBindings}`, n.loc);
  if (split && !a.master) throw new CompilerBug(`codegen: ${n.op} needs ${rest.length + 1} storage bindings`);
  if (split && a.stochastic)
    throw new LomocError(`${n.op}: stochastic rounding with a master copy needs ${rest.length + 1} storage bindings, more than ${maxBindings}; use --rounding nearest or no master copy`, n.loc);
  const bindings = split ? rest : [{ name: 'p', ref: refOf(pNew), write: true, scalar: false, dtype: c.slot(pNew).dtype }, ...rest];

  const clip = a.clipValue ?? 0;
  const hyper = ruleUniforms(r, a);
  const sr = a.stochastic;
  // Within a range, element i of the dispatch is element base + i of the tensor (stochastic rounding draws by the latter).
  const based = range !== undefined && sr !== undefined;
  const inner = win ? numel(c.g.values[p!].shape.slice(win.axis + 1)) : 1;
  const windowWords = win ? [(win.end - win.start) * inner, c.g.values[p!].shape[win.axis] * inner, win.start * inner] : [];
  const uniform = ['n: u32', 'clip: f32', ...hyper.fields, ...(sr ? ['rseed: u32', 'rparam: u32'] : []), ...(based ? ['base: u32'] : []), ...(win ? ['wwidth: u32', 'wwhole: u32', 'wstart: u32'] : [])].join(', ');
  const words = [count, f32bits(clip), ...hyper.values.map(f32bits), ...(sr ? [sr.seed >>> 0, sr.param] : []), ...(based ? [range.from] : []), ...windowWords];
  const pi = win ? 'pi' : 'i';
  const body = updateBody(r, a, {
    grad: `${id('g')}[i]`, factor: scale === undefined ? '1.0' : id('scale'), clip: 'u.clip', weight: a.master ? `master[${pi}]` : `p[${pi}]`,
    lr: id('lr'), wd: id('wd'), step: step === undefined ? '0.0' : id('stepNo'),
    uniform: (k) => `u.${ruleUniform(k)}`, state: (s) => `${stateVar(s)}[${pi}]`,
  });
  const stepNo = step === undefined ? '0.0' : id('stepNo');
  const stores = [...(split ? [] : [`p[${pi}] = ${storedValue(a, 'w2', based ? '(u.base + i)' : pi, stepNo)};`]), ...(a.master ? [`master[${pi}] = w2;`] : [])];
  const windowAt = win ? ['let pi = (i / u.wwidth) * u.wwhole + u.wstart + i % u.wwidth;'] : [];
  const code = `${declare(bindings, uniform)}
${r.functions ?? ''}
${roundingFunctions(a)}
${entry}
${[...windowAt, body, ...stores].join('\n').split('\n').map((l) => `  ${l}`).join('\n')}
}
`;
  const flags = [a.clipValue === null ? '' : '.clip', a.scaled ? '.scaled' : '', a.master ? '.master' : '', split ? '.split' : '', win ? '.window' : '', sr ? (sr.format === 'f16' ? '.sr16' : '.sr') : '', based ? '.based' : '',
    ...[...alias].map(([x, y]) => `.${x}=${y}`)].join('');
  calls.push({
    key: `update.${a.rule}.wg${WG}${flags}`,
    code,
    bindings: bindings.map((b) => ({ ...b.ref, write: b.write })),
    uniforms: words,
    workgroups: grid(count, WG, c.limits),
  });
  if (split) {
    const master = statesNew[statesNew.length - 1];
    calls.push(copy(refOf(master), refOf(pNew), count, c, c.slot(master).dtype, c.slot(pNew).dtype));
  }
  return calls;
}

export const optimizerEmitters = {
  optimizerUpdate: (n, c) => emitUpdate(n, c),
} satisfies { readonly [O in 'optimizerUpdate']: Emitter<O> };
