// A bundle is untrusted input: after the schema (contract/manifest.ts) has checked every field's
// type, this checks the manifest against the program it claims to be, before anything is
// allocated: every tensor and binding inside its arena and every tensor as large as its shape;
// arenas no larger than what they hold (rounded to the 256-byte binding alignment) and summing to
// the plan's peak; a binding of a named tensor at least as large as the tensor; names unique and
// none that aliases an object's own property. Invariant: a manifest that passes allocates exactly
// plan.peak bytes, and no name from it indexes a plain object as anything but data.
import { elementBytes } from '../../contract/units.ts';
import { reservedName } from '../../contract/names.ts';
import type { TensorSlot } from '../../contract/program.ts';
import type { Manifest } from '../../contract/manifest.ts';

type Fail = (field: string, msg: string) => never;

/** The planner aligns every buffer to 256 bytes (minStorageBufferOffsetAlignment), so an arena ends at most 255 bytes after its last use. */
const arenaAlign = 256;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export function checkManifest(m: Manifest, fail: Fail): void {
  const p = m.program;
  const inside = (field: string, r: { arena: number; offset: number; bytes: number }) => {
    const size = p.arenas[r.arena];
    if (size === undefined) fail(`${field}.arena`, `arena ${r.arena} does not exist (the bundle has ${p.arenas.length})`);
    if (r.offset + r.bytes > size) fail(field, `bytes ${r.offset}..${r.offset + r.bytes} lie outside arena ${r.arena} of ${size} bytes`);
  };
  const names = new Map<string, string>();
  const slot = (field: string, s: TensorSlot, kind: 'param' | 'tensor') => {
    if (s.pieces) s.pieces.forEach((r, j) => inside(`${field}.pieces.${j}`, r));
    else inside(field, s);
    const why = reservedName(s.name, kind);
    if (why !== undefined) fail(`${field}.name`, `the name is reserved: ${why}`);
    const first = names.get(s.name);
    if (first !== undefined) fail(`${field}.name`, `'${s.name}' also names ${first}`);
    names.set(s.name, field);
    const want = s.shape.reduce((a, b) => a * b, 1) * elementBytes[s.dtype];
    if (s.bytes !== want) fail(`${field}.bytes`, `expected ${want} bytes for ${s.dtype}[${s.shape.join(', ')}], got ${s.bytes}`);
  };
  p.inputs.forEach((s, i) => slot(`program.inputs.${i}`, s, 'tensor'));
  p.params.forEach((s, i) => slot(`program.params.${i}`, s, 'param'));
  p.state.forEach((s, i) => slot(`program.state.${i}`, s, 'tensor'));
  slot('program.loss', p.loss, 'tensor');
  if (p.loss.shape.length !== 0) fail('program.loss.shape', `expected a scalar, got [${p.loss.shape.join(', ')}]`);

  for (const key of Object.keys(p.kernels)) {
    const why = reservedName(key, 'tensor');
    if (why !== undefined) fail(`program.kernels.${key}`, `the kernel name is reserved: ${why}`);
  }
  const named = [...p.inputs, ...p.params, ...p.state, p.loss];
  // Params and optimizer state hold their bytes through the whole step; an input's or the loss's
  // range is reused by other buffers once it is dead (the plan's lifetimes), so only the former
  // identify the tensor a binding at their offset binds.
  const at = new Map([...p.params, ...p.state].filter((s) => !s.pieces).map((s) => [`${s.arena}:${s.offset}`, s]));
  p.dispatches.forEach((d, i) => {
    if (!Object.hasOwn(p.kernels, d.shader)) fail(`program.dispatches.${i}.shader`, `no kernel '${d.shader}' in program.kernels`);
    d.bindings.forEach((b, k) => {
      const field = `program.dispatches.${i}.bindings.${k}`;
      inside(field, b);
      const s = at.get(`${b.arena}:${b.offset}`);
      if (s && b.bytes < s.bytes) fail(`${field}.bytes`, `binds ${b.bytes} bytes of tensor '${s.name}', which has ${s.bytes}`);
    });
  });

  const used = p.arenas.map(() => 0);
  for (const r of [...named.flatMap((s) => s.pieces ?? [s]), ...p.dispatches.flatMap((d) => d.bindings)]) used[r.arena] = Math.max(used[r.arena], r.offset + r.bytes);
  p.arenas.forEach((size, a) => {
    if (size % 4 !== 0) fail(`program.arenas.${a}`, `${size} bytes is not a multiple of 4`);
    if (size > alignUp(used[a], arenaAlign))
      fail(`program.arenas.${a}`, `${size} bytes, but the tensors and bindings in it end at byte ${used[a]}: an arena is at most its last use rounded up to ${arenaAlign}`);
  });
  const total = p.arenas.reduce((a, b) => a + b, 0);
  if (total !== m.plan.peak) fail('program.arenas', `they hold ${total} bytes in all, but plan.peak is ${m.plan.peak}: the arenas are the plan's layout`);
}
