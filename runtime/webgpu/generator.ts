// An inference program (compiler/inference: entry points `prefill` and `decode` over shared
// arenas) on a WebGPU device, as a Decoder for the generation loop (runtime/generate). The params
// are uploaded once; the key/value caches live in the arenas (zeroed at allocation) between
// steps. Each step writes its tokens and position, runs its entry's dispatches and reads back
// only the logits row it needs.
import type { Decoder, Logits } from '../../contract/decoder.ts';
import type { ProgramNeeds } from '../../contract/limits.ts';
import { slotRanges, type BufferRef, type StepProgram, type TensorSlot } from '../../contract/program.ts';
import { createExecutor, type Executor } from './executor.ts';
import { fromDeviceBytes } from './host-data.ts';
import { ProgramError } from './validate.ts';

export interface GpuDecoder extends Decoder {
  readonly executor: Executor;
  /** Overwrites the params given by name (a trainer's values after some steps); the others keep theirs. */
  writeParams(params: Readonly<Record<string, ArrayLike<number>>>): void;
  destroy(): void;
}

const e16 = (d: string) => d === 'f16' || d === 'bf16';

function slotNamed(list: readonly TensorSlot[] | undefined, name: string): TensorSlot {
  const s = list?.find((x) => x.name === name);
  if (!s) throw new ProgramError(`program '${name}' is missing: not an inference program (compile it with compileInference)`);
  return s;
}

/** `params`: every param's values by name (a checkpoint's, an importer's, or initialParams'). */
export async function createGpuDecoder(device: GPUDevice, program: StepProgram, params: Readonly<Record<string, ArrayLike<number>>>): Promise<GpuDecoder> {
  const entries = program.entries;
  if (!entries?.prefill || !entries.decode) throw new ProgramError(`program '${program.name}' has no prefill and decode entry points`);
  const io = {
    prefill: { tokens: slotNamed(program.inputs, 'prefill.tokens'), pos: slotNamed(program.inputs, 'prefill.pos'), logits: slotNamed(program.outputs, 'prefill.logits'), ...entries.prefill },
    decode: { tokens: slotNamed(program.inputs, 'decode.tokens'), pos: slotNamed(program.inputs, 'decode.pos'), logits: slotNamed(program.outputs, 'decode.logits'), ...entries.decode },
  };
  const missing = program.params.filter((p) => !params[p.name]).map((p) => p.name);
  if (missing.length) throw new ProgramError(`no values for the params ${missing.join(', ')}`);
  const executor = await createExecutor(device, program);
  for (const p of program.params) executor.write(p, params[p.name]);
  const chunk = io.prefill.tokens.shape[1];
  const vocab = io.decode.logits.shape.at(-1)!;
  const context = program.state[0]?.shape.at(-2) ?? chunk;

  // Per token: one submit (the entry's dispatches, then a copy of the logits row into a staging
  // buffer made once) and one map of that buffer; no buffer is created per token.
  const elem = e16(io.decode.logits.dtype) ? 2 : 4;
  const rowBytes = Math.ceil(((vocab + 1) * elem) / 4) * 4;
  let staging: GPUBuffer | undefined;
  // Calls share the staging buffer, so each waits for the one before (the loop awaits each anyway).
  let queue: Promise<unknown> = Promise.resolve();
  const run = (e: (typeof io)['prefill'], tokens: readonly number[], pos: number): Promise<Logits> => {
    const next = queue.then(() => runNow(e, tokens, pos));
    queue = next.catch(() => undefined);
    return next;
  };
  const runNow = async (e: (typeof io)['prefill'], tokens: readonly number[], pos: number): Promise<Logits> => {
    const ids = new Int32Array(e.tokens.shape[1]);
    ids.set(tokens);
    executor.write(e.tokens, ids);
    executor.write(e.pos, Int32Array.of(pos));
    staging ??= device.createBuffer({ label: `${program.name} logits row`, size: rowBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder({ label: `${program.name} ${e === io.prefill ? 'prefill' : 'decode'}` });
    executor.encodeRange(enc, e.from, e.to);
    if (e.logits.pieces) {
      // Logits split across storage bindings (--max-binding): the row is read piece by piece.
      device.queue.submit([enc.finish()]);
      const rel = (tokens.length - 1) * vocab * elem;
      const skip = (rel % 4) / elem;
      const row = bytesOf(e.logits, rel - skip * elem, (vocab + skip) * elem);
      const [logits] = await executor.readMany([{ ...row, dtype: e.logits.dtype, shape: [vocab + skip] }]);
      return (logits as Logits).subarray(skip);
    }
    // Only the last token's row: a whole prefill chunk of GPT-2 logits is 64 x 50257 floats. Copies
    // start at multiples of 4 bytes, so a 16-bit row at an odd element starts one element early.
    const at = e.logits.offset + (tokens.length - 1) * vocab * elem;
    const skip = (at % 4) / elem;
    const bytes = Math.ceil(((vocab + skip) * elem) / 4) * 4;
    executor.copyOut(enc, { arena: e.logits.arena, offset: at - skip * elem, bytes }, staging);
    device.queue.submit([enc.finish()]);
    await executor.watch.race(staging.mapAsync(GPUMapMode.READ, 0, bytes), 'reading the logits back');
    const row = fromDeviceBytes(e.logits.dtype, staging.getMappedRange(0, bytes).slice(0), vocab + skip);
    staging.unmap();
    return (row as Logits).subarray(skip);
  };
  return {
    executor,
    context,
    chunk,
    vocab,
    prefill: (tokens, pos) => run(io.prefill, tokens, pos),
    decode: (token, pos) => run(io.decode, [token], pos),
    writeParams: (values) => {
      for (const p of program.params) if (Object.hasOwn(values, p.name)) executor.write(p, values[p.name]);
    },
    destroy: () => {
      if (!executor.watch.hung) staging?.destroy(); // a hung queue would block the destroy (guard.ts)
      executor.destroy();
    },
  };
}

/**
 * What one device must grant to run a bundle's step and its inference program side by side (the
 * page samples on its trainer's device): the larger of each limit, both programs' features.
 */
export function bothNeeds(step: ProgramNeeds, inference: ProgramNeeds | undefined): ProgramNeeds {
  if (!inference) return step;
  const limits = Object.fromEntries(
    Object.keys(step.limits).map((k) => [k, Math.max(step.limits[k as keyof ProgramNeeds['limits']], inference.limits[k as keyof ProgramNeeds['limits']])]),
  ) as unknown as ProgramNeeds['limits'];
  return {
    limits,
    arenas: [...step.arenas, ...inference.arenas],
    features: [...new Set([...step.features, ...inference.features])],
    dispatches: [...(step.dispatches ?? []), ...(inference.dispatches ?? [])],
  };
}

/** Bytes [from, from + bytes) of a tensor (from a multiple of 4) as a range, or ranges across its pieces when it is split. */
function bytesOf(slot: TensorSlot, from: number, bytes: number): BufferRef & { pieces?: BufferRef[] } {
  const parts: BufferRef[] = [];
  let start = 0;
  for (const r of slotRanges(slot)) {
    const lo = Math.max(from, start);
    const hi = Math.min(from + bytes, start + r.bytes);
    if (hi > lo) parts.push({ arena: r.arena, offset: r.offset + lo - start, bytes: hi - lo });
    start += r.bytes;
  }
  return parts.length > 1 ? { ...parts[0], bytes, pieces: parts } : { ...parts[0], bytes };
}
