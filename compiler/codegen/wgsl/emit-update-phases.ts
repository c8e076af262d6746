// Optimizer updates in the reduction form (descriptor.ts's WgslPhasedRule; AdaLomo): a few dispatches
// over one param, in place, each reading the gradient again rather than storing anything
// param-sized, so the only memory beyond the rule's states is a small scratch (at most 1 MiB):
//   'rows'  one workgroup of 32 lanes per row: the terms summed over the row, then `finish`;
//   'cols'  one thread per column, looping down it (neighbouring threads read neighbouring floats);
//           past 256 rows the rows are cut into up to 32 chunks, a thread per (column, chunk) writing
//           scratch partials that a thread per column then sums in order (a tall matrix's columns
//           would otherwise be a few thousand threads each reading thousands of rows);
//   'total' pass 1: G workgroups of 32 lanes (G <= 1024) each sum a grid-strided share of the
//           elements into scratch partials; pass 2: one workgroup sums the G partials in order and
//           runs `finish`, which stores the phase's scalars in scratch;
//   then one thread per element runs the rule's body and stores p (and master, as emit-optimizer).
// Every sum has a fixed order, so a step gives the same bits every run. Bindings: each kernel binds
// only what its text uses (AdaLomo: at most 7 of 8). Scratch: the scalars, then the partials of
// the phase that needs the most (f32 words; reused, since the phases run one after another). f16 and bf16 (packed) storage of p and g is converted by
// lower.ts as for every kernel; states and scratch are f32.
import { CompilerBug, LomocError } from '../../diagnostics.ts';
import { numel } from '../../ir/shape.ts';
import type { DType, Graph, NodeOf, ValueId } from '../../ir/types.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { matrixShape, type WgslPhase, type WgslPhasedRule, type WgslPhaseNames } from '../../optimizers/descriptor.ts';
import { updateRule } from '../../optimizers/table.ts';
import { updateInput } from '../../optimizers/update-layout.ts';
import { type EmitContext, type Emitter, f32bits, grid, type KernelCall, type ScratchRule } from './emitter.ts';
import { copy, optimizerEmitters, roundingFunctions, ruleUniform, storedValue } from './emit-optimizer.ts';
import { floatStorage } from './f16-storage.ts';

type UpdateNode = NodeOf<'optimizerUpdate'>;

const lanes = 32; // rows and total workgroups: lavapipe slows past 32 invocations with barriers (reduce-kernel.ts)
const colGroup = 64;
const applyGroup = 256;
const maxBindings = 8;
/** Workgroups of a 'total' pass 1: each lane gets at least 32 elements, and at most 1024 partials per term. */
export const totalGroups = (count: number): number => Math.max(1, Math.min(1024, Math.ceil(count / (lanes * 32))));

/** The reduction-form WGSL of an update node's rule, or undefined for a per-element one. */
const phasedOf = (n: UpdateNode): WgslPhasedRule | undefined => updateRule(n.attrs.rule).reduction;

/** Row chunks of a 'cols' phase: 1 (no partials) up to 256 rows; else up to 32, at most 2^18 partials (1 MiB) per term. */
export function colSplits(rows: number, cols: number): { splits: number; chunk: number } {
  const want = rows < 256 ? 1 : Math.max(1, Math.min(32, Math.ceil(rows / 128), Math.floor(2 ** 18 / Math.max(1, cols))));
  const chunk = Math.ceil(rows / want);
  return { splits: Math.max(1, Math.ceil(rows / Math.max(1, chunk))), chunk };
}

/** The scalars of every 'total' phase, in order (scratch words 0..). */
const scalarsOf = (r: WgslPhasedRule): string[] => r.phases.flatMap((p) => (p.over === 'total' ? p.scalars ?? [] : []));

/** Scratch words: the scalars, then room for the partials of the phase that needs the most. */
function scratchWords(r: WgslPhasedRule, shape: readonly number[]): number {
  const { rows, cols } = matrixShape(shape);
  const { splits } = colSplits(rows, cols);
  const partials = r.phases.map((p) => {
    const terms = Object.keys(p.terms).length;
    return p.over === 'total' ? terms * totalGroups(rows * cols) : p.over === 'cols' && splits > 1 ? terms * splits * cols : 0;
  });
  const most = Math.max(0, ...partials);
  return most ? scalarsOf(r).length + most : 0;
}

interface Candidate {
  readonly name: string;
  readonly ref: BufferRef;
  readonly dtype: DType;
  readonly scalar: boolean;
  /** Bound read_write wherever used (states, scratch) or only in the apply kernel (p, master). */
  readonly write: 'always' | 'apply' | 'never';
}

const uses = (code: string, name: string) => new RegExp(`(?<![\\w.])${name}\\b`).test(code);

function emitPhased(n: UpdateNode, r: WgslPhasedRule, c: EmitContext): KernelCall[] {
  const a = n.attrs;
  const named = (name: string) => updateInput(a, n.inputs, name);
  const [p, g, lr, wd, step, scale] = (['p', 'g', 'lr', 'wd', 'step', 'scale'] as const).map(named);
  const states = a.states.map((s) => named(s)!);
  const [pNew, ...statesNew] = n.outputs;
  const shape = c.g.values[p!].shape;
  const count = numel(shape);
  if (count === 0) return [];
  const { rows, cols } = matrixShape(shape);

  const calls: KernelCall[] = [];
  const pairs: [ValueId, ValueId][] = states.map((s, k) => [s, statesNew[k]]);
  if (!a.master) pairs.push([p!, pNew]);
  for (const [old, next] of pairs)
    if (!c.sameStorage(old, next)) calls.push(copy(c.slot(old).ref, c.slot(next).ref, numel(c.g.values[old].shape), c, c.g.values[old].dtype));

  // Read-only scalars in the same storage (one scalar fed as both lr and wd) are bound once.
  const cands: Candidate[] = [];
  const alias = new Map<string, string>();
  const add = (name: string, v: ValueId | undefined, write: Candidate['write'], scalar = false) => {
    if (v === undefined) return;
    const { ref, dtype } = c.slot(v);
    if (scalar && dtype !== 'f32') throw new LomocError(`${n.op}: the ${name.slice(2)} scalar must be f32, got ${dtype}`, n.loc);
    const same = scalar && cands.find((b) => b.scalar && b.ref.arena === ref.arena && b.ref.offset === ref.offset);
    if (same) alias.set(name, same.name);
    else cands.push({ name, ref, dtype, scalar, write });
  };
  const stateVar = (s: string) => `s_${s}`;
  add('v_p', pNew, 'apply');
  add('v_g', g, 'never');
  add('v_lr', lr, 'never', true);
  add('v_wd', wd, 'never', true);
  add('v_step', step, 'never', true);
  add('v_scale', scale, 'never', true);
  a.states.forEach((s, k) => add(s === 'master' ? 'v_master' : stateVar(s), statesNew[k], s === 'master' ? 'apply' : 'always'));
  const scalars = scalarsOf(r);
  const words = scratchWords(r, shape);
  if (words) cands.push({ name: 'v_sc', ref: c.scratch(0), dtype: 'f32', scalar: false, write: 'always' });
  const id = (name: string) => alias.get(name) ?? name;

  // What each state is indexed by, checked against its planned shape at the end.
  const indexed = new Map<string, number>();
  const index = (s: string, size: number, at: string) => (indexed.set(s, size), `${stateVar(s)}[${at}]`);
  const names: WgslPhaseNames = {
    x: 'x', w: 'w', lr: id('v_lr'), wd: id('v_wd'), step: step === undefined ? '0.0' : id('v_step'),
    uniform: (k) => `u.${ruleUniform(k)}`,
    state: (s) => index(s, count, 'k'),
    rows: 'f32(u.rows)', cols: 'f32(u.cols)', count: 'f32(u.n)',
    row: (s) => index(s, rows, 'i'),
    col: (s) => index(s, cols, 'j'),
    scalar: (s) => {
      const k = scalars.indexOf(s);
      if (k < 0) throw new CompilerBug(`codegen: update rule '${a.rule}' reads the scalar '${s}' that no phase declares`);
      return `v_sc[${k}u]`;
    },
    sum: (t) => `t_${t}`,
  };
  const factor = scale === undefined ? '1.0' : id('v_scale');
  // A negative factor is an overflow under loss scaling (clipFactor): every state and weight keeps
  // its value (a state not updated in place was copied first), so each writing step returns first.
  const skip = a.scaled ? `if (${factor} < 0.0) { return; }\n` : '';
  const x = a.clipValue === null ? `v_g[k] * ${factor}` : `clamp(v_g[k] * ${factor}, -u.clip, u.clip)`;
  /** The element lets the text needs: its row and column, x and w. */
  const element = (text: string, ij = true) => [
    ...(ij ? ['let i = k / u.cols;', 'let j = k % u.cols;'] : []),
    ...(uses(text, 'x') ? [`let x = ${x};`] : []),
    ...(uses(text, 'w') ? [`let w = ${a.master ? 'v_master' : 'v_p'}[k];`] : []),
  ];
  const indent = (s: string, by = '  ') => s.split('\n').map((l) => (l ? by + l : l)).join('\n');

  const hyper = Object.entries(r.uniforms(a.hyper));
  const sr = a.stochastic;
  const split = colSplits(rows, cols);
  const uniform = ['n: u32', 'rows: u32', 'cols: u32', 'groups: u32', 'csplit: u32', 'cchunk: u32', 'clip: f32', ...hyper.map(([k]) => `${ruleUniform(k)}: f32`), ...(sr ? ['rseed: u32', 'rparam: u32'] : [])];
  const groups = totalGroups(count);
  const uniformWords = [count, rows, cols, groups, split.splits, split.chunk, f32bits(a.clipValue ?? 0), ...hyper.map(([, v]) => f32bits(v)), ...(sr ? [sr.seed >>> 0, sr.param] : [])];
  const flags = [a.clipValue === null ? '' : '.clip', a.scaled ? '.scaled' : '', a.master ? '.master' : '', sr ? (sr.format === 'f16' ? '.sr16' : '.sr') : '',
    ...[...alias].map(([from, to]) => `.${from}=${to}`)].join('');

  /** One dispatch: binds the candidates `body` uses, in candidate order. */
  const dispatch = (tag: string, body: string, workgroups: [number, number, number], apply = false): KernelCall => {
    const bound = cands.filter((b) => uses(body, b.name));
    if (bound.length > maxBindings)
      throw new LomocError(`${n.op}: the ${a.rule} rule's ${tag} kernel needs ${bound.length} storage bindings, more than ${maxBindings}`, n.loc);
    const write = (b: Candidate) => b.write === 'always' || (apply && b.write === 'apply');
    const decls = bound.map((b, k) =>
      `@group(0) @binding(${k}) var<storage, ${write(b) ? 'read_write' : 'read'}> ${b.name}: ${b.scalar ? 'f32' : `array<${floatStorage(b.dtype)}>`};`);
    const code = `${decls.join('\n')}
struct U { ${uniform.join(', ')} }
@group(0) @binding(${bound.length}) var<uniform> u: U;
${r.functions ?? ''}
${apply ? roundingFunctions(a) : ''}
${body}
`;
    return { key: `update.${a.rule}.${tag}${flags}`, code, bindings: bound.map((b) => ({ ...b.ref, write: write(b) })), uniforms: uniformWords, workgroups };
  };

  /** Sums of the terms: `var t_x` lines, the `+=` lines, and the combine of per-lane partials through `red`. */
  const sums = (ph: WgslPhase) => {
    const terms = Object.entries(ph.terms).map(([t, f]) => [t, f(names)] as const);
    return {
      terms,
      init: terms.map(([t]) => `var t_${t} = 0.0;`).join('\n'),
      add: terms.map(([t, e]) => `t_${t} += ${e};`).join('\n'),
      text: terms.map(([, e]) => e).join('\n'),
      combine: `${terms.map(([t], q) => `red[${q * lanes}u + lid] = t_${t};`).join('\n')}
workgroupBarrier();
if (lid != 0u) { return; }
for (var l = 1u; l < ${lanes}u; l++) {
${indent(terms.map(([t], q) => `t_${t} += red[${q * lanes}u + l];`).join('\n'))}
}`,
      shared: `var<workgroup> red: array<f32, ${terms.length * lanes}>;`,
    };
  };
  const lanesEntry = '@compute @workgroup_size(' + lanes + ')\nfn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {';

  r.phases.forEach((ph, q) => {
    const s = sums(ph);
    const finish = skip + ph.finish(names);
    if (ph.over === 'rows') {
      calls.push(dispatch(`p${q}rows.wg${lanes}`, `${s.shared}
${lanesEntry}
  let i = wid.y * nwg.x + wid.x;
  if (i >= u.rows) { return; }
${indent(s.init)}
  for (var j = lid; j < u.cols; j += ${lanes}u) {
    let k = i * u.cols + j;
${indent([...element(s.text, false), s.add].join('\n'), '    ')}
  }
${indent(s.combine)}
${indent(finish)}
}`, grid(rows * lanes, lanes, c.limits)));
    } else if (ph.over === 'cols' && split.splits === 1) {
      calls.push(dispatch(`p${q}cols.wg${colGroup}`, `@compute @workgroup_size(${colGroup})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * ${colGroup}u;
  if (j >= u.cols) { return; }
${indent(s.init)}
  for (var i = 0u; i < u.rows; i++) {
    let k = i * u.cols + j;
${indent([...element(s.text, false), s.add].join('\n'), '    ')}
  }
${indent(finish)}
}`, grid(cols, colGroup, c.limits)));
    } else if (ph.over === 'cols') {
      // Partials of term t for chunk h of column j at v_sc[base + (t * csplit + h) * cols + j].
      const partial = (t: number, h: string) => `v_sc[${scalars.length}u + (${t}u * u.csplit + ${h}) * u.cols + j]`;
      calls.push(dispatch(`p${q}cols1.wg${colGroup}`, `@compute @workgroup_size(${colGroup})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * ${colGroup}u;
  if (t >= u.cols * u.csplit) { return; }
  let j = t % u.cols;
  let h = t / u.cols;
${indent(s.init)}
  for (var i = h * u.cchunk; i < min(u.rows, h * u.cchunk + u.cchunk); i++) {
    let k = i * u.cols + j;
${indent([...element(s.text, false), s.add].join('\n'), '    ')}
  }
${indent(s.terms.map(([name], k) => `${partial(k, 'h')} = t_${name};`).join('\n'))}
}`, grid(cols * split.splits, colGroup, c.limits)));
      calls.push(dispatch(`p${q}cols2.wg${colGroup}`, `@compute @workgroup_size(${colGroup})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * ${colGroup}u;
  if (j >= u.cols) { return; }
${indent(s.init)}
  for (var h = 0u; h < u.csplit; h++) {
${indent(s.terms.map(([name], k) => `t_${name} += ${partial(k, 'h')};`).join('\n'), '    ')}
  }
${indent(finish)}
}`, grid(cols, colGroup, c.limits)));
    } else {
      // Partials of term t at v_sc[base + t * groups + workgroup].
      const base = scalars.length;
      const partial = (t: number, at: string) => `v_sc[${base}u + ${t}u * u.groups + ${at}]`;
      calls.push(dispatch(`p${q}total1.wg${lanes}`, `${s.shared}
${lanesEntry}
  let wg = wid.x;
${indent(s.init)}
  for (var k = wg * ${lanes}u + lid; k < u.n; k += u.groups * ${lanes}u) {
${indent([...element(s.text), s.add].join('\n'), '    ')}
  }
${indent(s.combine)}
${indent(s.terms.map(([t], k) => `${partial(k, 'wg')} = t_${t};`).join('\n'))}
}`, [groups, 1, 1]));
      calls.push(dispatch(`p${q}total2.wg${lanes}`, `${s.shared}
${lanesEntry}
${indent(s.init)}
  for (var q = lid; q < u.groups; q += ${lanes}u) {
${indent(s.terms.map(([t], k) => `t_${t} += ${partial(k, 'q')};`).join('\n'), '    ')}
  }
${indent(s.combine)}
${indent(finish)}
}`, [1, 1, 1]));
    }
  });

  const body = r.body(names);
  const stepNo = step === undefined ? '0.0' : id('v_step');
  const stores = [`v_p[k] = ${storedValue(a, 'w2', 'k', stepNo)};`, ...(a.master ? ['v_master[k] = w2;'] : [])];
  calls.push(dispatch(`apply.wg${applyGroup}`, `@compute @workgroup_size(${applyGroup})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = gid.x + gid.y * nwg.x * ${applyGroup}u;
  if (k >= u.n) { return; }
${indent([...(skip ? [skip.trim()] : []), ...element(body), body, ...stores].join('\n'))}
}`, grid(count, applyGroup, c.limits), true));

  for (const [s, size] of indexed) {
    const v = statesNew[a.states.indexOf(s)];
    if (v === undefined || numel(c.g.values[v].shape) !== size)
      throw new CompilerBug(`codegen: update rule '${a.rule}' indexes its state '${s}' by ${size} elements, but its planned shape differs`);
  }
  return calls;
}

/** Every update: the reduction form here, the per-element form by emit-optimizer.ts. */
export const updateEmitters = {
  optimizerUpdate: (n, c) => {
    const r = phasedOf(n);
    return r ? emitPhased(n, r, c) : optimizerEmitters.optimizerUpdate(n, c);
  },
} satisfies { readonly [O in 'optimizerUpdate']: Emitter<O> };

/** The scratch of a reduction-form update: its scalars and partial sums (none for the per-element form). */
export const updateScratch: { readonly optimizerUpdate: ScratchRule<'optimizerUpdate'> } = {
  optimizerUpdate: (n, g: Graph) => {
    const r = phasedOf(n);
    const words = r ? scratchWords(r, g.values[updateInput(n.attrs, n.inputs, 'p')!].shape) : 0;
    return words ? [words * 4] : [];
  },
};
