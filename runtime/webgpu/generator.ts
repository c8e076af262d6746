// An inference program (compiler/inference: entry points `prefill` and `decode` over shared
// arenas) on a WebGPU device, as a Decoder for the generation loop (runtime/generate). The params
// are uploaded once; the key/value caches live in the arenas (zeroed at allocation) between
// steps. Each step writes its tokens and position, runs its entry's dispatches and reads back
// only the logits row it needs.
import type { Decoder, Logits } from '../../contract/decoder.ts';
import { slotRanges, type BufferRef, type StepProgram, type TensorSlot } from '../../contract/program.ts';
import { createExecutor, type Executor } from './executor.ts';
import { ProgramError } from './validate.ts';

export interface GpuDecoder extends Decoder {
  readonly executor: Executor;
  destroy(): void;
}

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

  const run = async (e: (typeof io)['prefill'], tokens: readonly number[], pos: number): Promise<Logits> => {
    const ids = new Int32Array(e.tokens.shape[1]);
    ids.set(tokens);
    executor.write(e.tokens, ids);
    executor.write(e.pos, Int32Array.of(pos));
    const enc = device.createCommandEncoder({ label: `${program.name} ${e === io.prefill ? 'prefill' : 'decode'}` });
    executor.encodeRange(enc, e.from, e.to);
    device.queue.submit([enc.finish()]);
    // Only the last token's row: a whole prefill chunk of GPT-2 logits is 64 x 50257 floats. Copies
    // start at multiples of 4 bytes, so an f16 row at an odd element starts one element early.
    const size = e.logits.dtype === 'f16' ? 2 : 4;
    const at = (tokens.length - 1) * vocab * size;
    const skip = (at % 4) / size;
    const row = bytesOf(e.logits, at - skip * size, (vocab + skip) * size);
    const [logits] = await executor.readMany([{ ...row, dtype: e.logits.dtype, shape: [vocab + skip] }]);
    return (logits as Logits).subarray(skip);
  };
  return {
    executor,
    context,
    chunk,
    vocab,
    prefill: (tokens, pos) => run(io.prefill, tokens, pos),
    decode: (token, pos) => run(io.decode, [token], pos),
    destroy: () => executor.destroy(),
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
