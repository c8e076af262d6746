// A bundle is untrusted input: after the schema (contract/manifest.ts) has checked every field's
// type, this checks the manifest against the program it claims to be, before anything is
// allocated: every tensor and binding inside its arena and every tensor as large as its shape;
// arenas no larger than what they hold (rounded to the 256-byte binding alignment) and summing to
// the plan's peak; a binding of a named tensor at least as large as the tensor; names unique and
// none that aliases an object's own property. Invariant: a manifest that passes allocates exactly
// plan.peak bytes, and no name from it indexes a plain object as anything but data. The inference
// section (when present) is checked the same way against its own plan, and its params must be the
// training step's by name and shape: generation reads the step's weights. The step's loss scaling
// and clip mode must be what the program was compiled with.
import { elementBytes } from '../../contract/units.ts';
import { reservedName } from '../../contract/names.ts';
import { clipNormState, gradFactorOutput, hyperInputs, type TensorSlot } from '../../contract/program.ts';
import type { Manifest } from '../../contract/manifest.ts';

type Fail = (field: string, msg: string) => never;

/** The planner aligns every buffer to 256 bytes (minStorageBufferOffsetAlignment), so an arena ends at most 255 bytes after its last use. */
const arenaAlign = 256;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** The fields checkProgram reads: the step's program, or the inference program (whose outputs take the loss's place). */
interface ProgramFields {
  readonly arenas: readonly number[];
  readonly inputs: readonly TensorSlot[];
  readonly params: readonly TensorSlot[];
  readonly state: readonly TensorSlot[];
  readonly kernels: Readonly<Record<string, string>>;
  readonly dispatches: Manifest['program']['dispatches'];
}

/** One program's tensors, bindings and arenas against its plan's peak; `root` prefixes every field named. */
function checkProgram(root: string, p: ProgramFields, outputs: readonly [string, TensorSlot][], peak: number, fail: Fail): void {
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
  p.inputs.forEach((s, i) => slot(`${root}.inputs.${i}`, s, 'tensor'));
  p.params.forEach((s, i) => slot(`${root}.params.${i}`, s, 'param'));
  p.state.forEach((s, i) => slot(`${root}.state.${i}`, s, 'tensor'));
  for (const [field, s] of outputs) slot(field, s, 'tensor');

  for (const key of Object.keys(p.kernels)) {
    const why = reservedName(key, 'tensor');
    if (why !== undefined) fail(`${root}.kernels.${key}`, `the kernel name is reserved: ${why}`);
  }
  const named = [...p.inputs, ...p.params, ...p.state, ...outputs.map(([, s]) => s)];
  // Params and optimizer state hold their bytes through the whole step; an input's or the loss's
  // range is reused by other buffers once it is dead (the plan's lifetimes), so only the former
  // identify the tensor a binding at their offset binds.
  const at = new Map([...p.params, ...p.state].filter((s) => !s.pieces).map((s) => [`${s.arena}:${s.offset}`, s]));
  p.dispatches.forEach((d, i) => {
    if (!Object.hasOwn(p.kernels, d.shader)) fail(`${root}.dispatches.${i}.shader`, `no kernel '${d.shader}' in ${root}.kernels`);
    d.bindings.forEach((b, k) => {
      const field = `${root}.dispatches.${i}.bindings.${k}`;
      inside(field, b);
      const s = at.get(`${b.arena}:${b.offset}`);
      if (s && b.bytes < s.bytes) fail(`${field}.bytes`, `binds ${b.bytes} bytes of tensor '${s.name}', which has ${s.bytes}`);
    });
  });

  const used = p.arenas.map(() => 0);
  for (const r of [...named.flatMap((s) => s.pieces ?? [s]), ...p.dispatches.flatMap((d) => d.bindings)]) used[r.arena] = Math.max(used[r.arena], r.offset + r.bytes);
  p.arenas.forEach((size, a) => {
    if (size % 4 !== 0) fail(`${root}.arenas.${a}`, `${size} bytes is not a multiple of 4`);
    if (size > alignUp(used[a], arenaAlign))
      fail(`${root}.arenas.${a}`, `${size} bytes, but the tensors and bindings in it end at byte ${used[a]}: an arena is at most its last use rounded up to ${arenaAlign}`);
  });
  const total = p.arenas.reduce((a, b) => a + b, 0);
  const plan = root === 'program' ? 'plan' : `${root.split('.')[0]}.plan`;
  if (total !== peak) fail(`${root}.arenas`, `they hold ${total} bytes in all, but ${plan}.peak is ${peak}: the arenas are the plan's layout`);
}

/** What the generator reads of an inference program (runtime/webgpu/generator.ts), by name. */
const inferenceIo = {
  inputs: [['prefill.tokens', 'i32'], ['prefill.pos', 'i32'], ['decode.tokens', 'i32'], ['decode.pos', 'i32']],
  outputs: [['prefill.logits', 'f32'], ['decode.logits', 'f32']],
} as const;

/** The inference section: its own program's layout, its entry points and tensors by name, and its params being the step's. */
function checkInference(m: Manifest, inf: NonNullable<Manifest['inference']>, fail: Fail): void {
  const p = inf.program;
  checkProgram('inference.program', p, p.outputs.map((s, i) => [`inference.program.outputs.${i}`, s] as [string, TensorSlot]), inf.plan.peak, fail);
  for (const [list, want] of [['inputs', inferenceIo.inputs], ['outputs', inferenceIo.outputs]] as const) {
    const have = p[list].map((s) => `${s.name}:${s.dtype}`).join(', ');
    if (have !== want.map(([n, d]) => `${n}:${d}`).join(', '))
      fail(`inference.program.${list}`, `expected ${want.map(([n, d]) => `${n} (${d})`).join(', ')}, got ${have || 'none'}`);
  }
  const entries = Object.keys(p.entries).sort().join(', ');
  if (entries !== 'decode, prefill') fail('inference.program.entries', `expected exactly decode and prefill, got ${entries || 'none'}`);
  for (const [name, e] of Object.entries(p.entries))
    if (!(e.from <= e.to && e.to <= p.dispatches.length))
      fail(`inference.program.entries.${name}`, `dispatches ${e.from}..${e.to} are not a range of the ${p.dispatches.length} dispatches`);
  const step = new Map(m.program.params.map((s) => [s.name, s]));
  p.params.forEach((s, i) => {
    const t = step.get(s.name);
    if (!t) fail(`inference.program.params.${i}.name`, `'${s.name}' is no param of the training step: generation reads the step's weights`);
    if (t.shape.join() !== s.shape.join())
      fail(`inference.program.params.${i}.shape`, `[${s.shape.join(', ')}], but the training step's '${s.name}' is [${t.shape.join(', ')}]`);
  });
  const logits = p.outputs[1];
  if (logits.shape.at(-1) !== inf.vocab)
    fail('inference.vocab', `${inf.vocab}, but the logits have ${String(logits.shape.at(-1))} columns`);
  const tokens = p.inputs[0];
  if (tokens.shape.join() !== `1,${inf.chunk}`) fail('inference.chunk', `${inf.chunk}, but prefill.tokens is [${tokens.shape.join(', ')}]`);
  if (inf.chunk > inf.context) fail('inference.context', `${inf.context} is shorter than a prefill chunk of ${inf.chunk} tokens`);
}

/**
 * The step's clip mode and loss scaling against the program: the host runs the scaler only where
 * the program reads a scale and reports its factor, and keeps a previous norm only where the
 * program holds one. An old manifest has neither field and a program with neither.
 */
function checkStepOptions(m: Manifest, fail: Fail): void {
  const p = m.program;
  (p.outputs ?? []).forEach((s, i) => {
    if (s.name !== gradFactorOutput) fail(`program.outputs.${i}.name`, `expected '${gradFactorOutput}' (the only output a training step reads back), got '${s.name}'`);
    if (s.dtype !== 'f32' || s.shape.length !== 0) fail(`program.outputs.${i}`, `'${gradFactorOutput}' must be an f32 scalar, got ${s.dtype}[${s.shape.join(', ')}]`);
  });
  const factor = (p.outputs ?? []).length > 0;
  const reads = p.inputs.some((s) => s.name === hyperInputs.lossScale);
  const scale = m.step.lossScale;
  if (scale && m.step.dtype !== 'f16') fail('step.lossScale', `loss scaling is for f16 storage, this bundle has dtype ${m.step.dtype}`);
  if (scale && !(factor && reads))
    fail('step.lossScale', `given, but the program was compiled without loss scaling (it ${reads ? 'reads' : 'reads no'} input '${hyperInputs.lossScale}' and ${factor ? 'outputs' : 'outputs no'} '${gradFactorOutput}')`);
  if (!scale && (factor || reads))
    fail('step.lossScale', `missing, but the program was compiled with loss scaling (it ${reads ? 'reads' : 'reads no'} input '${hyperInputs.lossScale}' and ${factor ? 'outputs' : 'outputs no'} '${gradFactorOutput}'): the manifest must say how the scale moves`);
  const norm = p.state.find((s) => s.name === clipNormState);
  if (m.step.clipMode === 'previous') {
    if (m.step.clipNorm === null) fail('step.clipMode', "'previous' chooses how clipNorm clips, but step.clipNorm is null");
    if (scale) fail('step.clipMode', "'previous' cannot go with step.lossScale: an overflow must be found in the whole gradient before the first update");
    if (!norm || norm.dtype !== 'f32' || norm.shape.length !== 0) fail('program.state', `step.clipMode is 'previous', but the program holds no f32 scalar '${clipNormState}' (the previous step's norm)`);
  } else if (norm) fail('step.clipMode', `${m.step.clipMode === undefined ? 'missing (exact)' : "'exact'"}, but the program holds '${clipNormState}', the previous norm of --clip-mode previous`);
}

export function checkManifest(m: Manifest, fail: Fail): void {
  const p = m.program;
  checkProgram('program', p, [['program.loss', p.loss], ...(p.outputs ?? []).map((s, i) => [`program.outputs.${i}`, s] as [string, TensorSlot])], m.plan.peak, fail);
  checkStepOptions(m, fail);
  if (p.loss.shape.length !== 0) fail('program.loss.shape', `expected a scalar, got [${p.loss.shape.join(', ')}]`);
  // The recorded f16 storage and the features the program asks for must agree: a loader that
  // reads either must not be told something the kernels do not do.
  const native = p.features.includes('shader-f16');
  if (m.step.half !== undefined && m.step.dtype !== 'f16') fail('step.half', `only an f16 bundle records its f16 storage, this one has dtype ${m.step.dtype}`);
  if (m.step.half !== undefined && (m.step.half === 'native') !== native)
    fail('step.half', `'${m.step.half}' but program.features ${native ? 'asks for' : 'does not ask for'} shader-f16`);
  // Likewise subgroups: recorded exactly when the step's program asks for the feature.
  const subgroups = p.features.includes('subgroups');
  if ((m.step.subgroups === true) !== subgroups)
    fail('step.subgroups', `${m.step.subgroups === true ? 'true' : 'absent'} but program.features ${subgroups ? 'asks for' : 'does not ask for'} subgroups`);
  if (m.inference) checkInference(m, m.inference, fail);
}
