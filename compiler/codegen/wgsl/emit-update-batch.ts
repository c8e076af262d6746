// The multi-tensor update: the updates of one updateBatch group (passes/fuse.ts) as one dispatch.
// Each thread finds its tensor in a table of element ranges and runs the very rule WGSL of the
// single-update kernel (emit-optimizer.ts's updateBody) on that element, so every element gets
// the same f32 operations in the same order: the result is bit for bit the per-param kernels'.
//
// Bindings: one read_write range per arena, from the first to the last byte of the batch's
// tensors and scalars in it. Eight tensors with two states would need 32 bindings one by one; a
// span per arena needs as many as the plan has arenas (one, usually). WebGPU forbids two
// bindings of one buffer to overlap when either is writable; one span per arena never does.
// Uniforms: the element count, the clip value, the rule's uniforms, the scalars' word offsets,
// then the table, 16-byte aligned as WGSL lays out array<vec4u> in a uniform struct: per tensor,
// its first element in the dispatch and the word offset of p and of each state in its span.
//
// Where the batch does not fit (a split tensor, a span past one binding, an operand not updated
// in place, more arenas than bindings) it runs as consecutive sub-batches, down to single updates.
import { numel } from '../../ir/shape.ts';
import type { NodeOf, ValueId } from '../../ir/types.ts';
import { updateInput } from '../../optimizers/update-layout.ts';
import type { BufferRef } from '../../../contract/program.ts';
import { type EmitContext, f32bits, grid, type KernelCall } from './emitter.ts';
import { ruleUniform, ruleUniforms, updateBody, wgslRuleOf } from './emit-optimizer.ts';
import { updateEmitters } from './emit-update-phases.ts';
import { isSplitRef } from './split-storage.ts';
import { maxBatchUpdates } from '../../passes/fuse.ts';

type UpdateNode = NodeOf<'optimizerUpdate'>;

const WG = 256;
const maxBindings = 8;
/** WebGPU's default maxStorageBufferBindingSize, when the context does not say. */
const defaultBindingBytes = 128 * 2 ** 20;
const scalarSlots = ['lr', 'wd', 'step', 'scale'] as const;

interface Member {
  readonly node: UpdateNode;
  readonly count: number;
  /** p, then each state: the storage the update reads and writes in place. */
  readonly arrays: readonly BufferRef[];
}

/** The member view of `n`, or undefined when its storage rules out a batch. */
function memberOf(n: UpdateNode, c: EmitContext): Member | undefined {
  const a = n.attrs;
  const p = updateInput(a, n.inputs, 'p')!;
  const olds: ValueId[] = [p, ...a.states.map((s) => updateInput(a, n.inputs, s)!)];
  if (olds.some((v, k) => !c.sameStorage(v, n.outputs[k]))) return undefined; // not in place: the single kernel copies first
  const refs = [...olds, updateInput(a, n.inputs, 'g')!].map((v) => c.slot(v).ref);
  if (refs.some(isSplitRef)) return undefined;
  return { node: n, count: numel(c.g.values[p].shape), arrays: refs };
}

/** Per arena, the first and last byte the members and the scalars occupy. */
function spans(ms: readonly Member[], scalars: readonly BufferRef[]): Map<number, { from: number; to: number }> {
  const out = new Map<number, { from: number; to: number }>();
  for (const r of [...ms.flatMap((m) => m.arrays), ...scalars]) {
    const s = out.get(r.arena);
    out.set(r.arena, { from: Math.min(s?.from ?? Infinity, r.offset), to: Math.max(s?.to ?? 0, r.offset + r.bytes) });
  }
  return out;
}

/** Whether one kernel takes `ms`: spans within bindings, and each role (p, a state, g) in one arena for all. */
function fits(ms: readonly Member[], scalars: readonly BufferRef[], maxBytes: number): boolean {
  const s = spans(ms, scalars);
  return s.size <= maxBindings && [...s.values()].every((x) => x.to - x.from <= maxBytes) && ms.length <= maxBatchUpdates &&
    ms.every((m) => m.arrays.every((ref, k) => ref.arena === ms[0].arrays[k].arena));
}

/** The dispatches of an updateBatch group: as few multi-tensor kernels as its storage allows. */
export function emitUpdateBatch(nodes: readonly UpdateNode[], c: EmitContext): KernelCall[] {
  const a = nodes[0].attrs;
  const scalars = scalarSlots.flatMap((s) => {
    const v = updateInput(a, nodes[0].inputs, s);
    return v === undefined ? [] : [c.slot(v).ref];
  });
  const maxBytes = c.maxBindingBytes ?? defaultBindingBytes;
  const calls: KernelCall[] = [];
  let run: Member[] = [];
  const flush = () => {
    if (run.length === 1) calls.push(...updateEmitters.optimizerUpdate(run[0].node, c));
    else if (run.length > 1) calls.push(batchKernel(run, c));
    run = [];
  };
  for (const n of nodes) {
    const m = memberOf(n, c);
    if (!m || scalars.some(isSplitRef)) {
      flush();
      calls.push(...updateEmitters.optimizerUpdate(n, c));
      continue;
    }
    if (m.count === 0) continue;
    if (!fits([...run, m], scalars, maxBytes)) flush();
    run.push(m);
  }
  flush();
  return calls;
}

function batchKernel(ms: readonly Member[], c: EmitContext): KernelCall {
  const first = ms[0].node;
  const a = first.attrs;
  const r = wgslRuleOf(first);
  const scalarRefs = scalarSlots.map((s) => {
    const v = updateInput(a, first.inputs, s);
    return v === undefined ? undefined : c.slot(v).ref;
  });
  const span = [...spans(ms, scalarRefs.filter((x) => x !== undefined))].sort((x, y) => x[0] - y[0]);
  const bindingOf = (ref: BufferRef) => span.findIndex(([arena]) => arena === ref.arena);
  const wordOf = (ref: BufferRef) => (ref.offset - span[bindingOf(ref)][1].from) / 4;
  const arr = (ref: BufferRef) => `a${bindingOf(ref)}`;

  // Which binding holds each role is baked in (fits keeps each role in one arena).
  const roles = ['p', ...a.states, 'g'];
  const roleBinding = roles.map((_, k) => bindingOf(ms[0].arrays[k]));
  const [uniformFields, words] = [['n: u32', 'clip: f32'], [ms.reduce((t, m) => t + m.count, 0), f32bits(a.clipValue ?? 0)]];
  const hyper = ruleUniforms(r, a);
  uniformFields.push(...hyper.fields);
  words.push(...hyper.values.map(f32bits));
  scalarRefs.forEach((ref, k) => {
    if (!ref) return;
    uniformFields.push(`o_${scalarSlots[k]}: u32`);
    words.push(wordOf(ref));
  });
  while (words.length % 4) {
    uniformFields.push(`pad${words.length}: u32`);
    words.push(0);
  }
  const width = 1 + roles.length; // start, then the word offset of each role
  const table: number[] = [];
  let start = 0;
  for (const m of ms) {
    table.push(start, ...m.arrays.map(wordOf));
    start += m.count;
  }
  while (table.length % 4) table.push(0);
  uniformFields.push(`tab: array<vec4u, ${table.length / 4}>`);
  words.push(...table);

  const at = (k: number) => `a${roleBinding[k]}[q_${roles[k]}]`;
  const scalar = (s: (typeof scalarSlots)[number]) => {
    const ref = scalarRefs[scalarSlots.indexOf(s)];
    return ref ? `${arr(ref)}[u.o_${s}]` : undefined;
  };
  const stateVar = (s: string) => at(roles.indexOf(s));
  const body = updateBody(r, a, {
    grad: at(roles.length - 1), factor: scalar('scale') ?? '1.0', clip: 'u.clip', weight: at(0),
    lr: scalar('lr')!, wd: scalar('wd')!, step: scalar('step') ?? '0.0',
    uniform: (k) => `u.${ruleUniform(k)}`, state: stateVar,
  });
  const decls = span.map((_, k) => `@group(0) @binding(${k}) var<storage, read_write> a${k}: array<f32>;`).join('\n');
  const code = `${decls}
struct U { ${uniformFields.join(', ')} }
@group(0) @binding(${span.length}) var<uniform> u: U;
const WG = ${WG}u;
const K = ${ms.length}u;
const W = ${width}u;
fn word(j: u32) -> u32 { return u.tab[j / 4u][j % 4u]; }
${r.functions ?? ''}
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= u.n) { return; }
  // The last tensor whose first element is at or before i (starts ascend).
  var lo = 0u;
  var hi = K - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (word(mid * W) <= i) { lo = mid; } else { hi = mid - 1u; }
  }
  let q_j = i - word(lo * W);
${roles.map((role, k) => `  let q_${role} = word(lo * W + ${k + 1}u) + q_j;`).join('\n')}
${[body, `${at(0)} = w2;`].join('\n').split('\n').map((l) => `  ${l}`).join('\n')}
}
`;
  const flags = [a.clipValue === null ? '' : '.clip', a.scaled ? '.scaled' : ''].join('');
  const placed = `${roleBinding.join('')}:${scalarRefs.map((ref) => (ref ? bindingOf(ref) : '-')).join('')}`;
  return {
    key: `update.batch.${a.rule}.wg${WG}${flags}.k${ms.length}.b${span.length}.${placed}`,
    code,
    bindings: span.map(([arena, s]) => ({ arena, offset: s.from, bytes: s.to - s.from, write: true })),
    uniforms: words,
    workgroups: grid(start, WG, c.limits),
  };
}
