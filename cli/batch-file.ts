// Batches as files: `--dump-batch FILE` writes the batch of each step a run trains on, one JSON
// line each ({"step": s, "tokens": [[ids]], "targets": [[ids]]}, rows of the [batch, seq] inputs),
// and `--batch-file FILE` feeds step s the batch of step s in such a file instead of drawing one:
// a dumped run replays to the same losses. Every line is checked before training starts.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { LomocError } from '../compiler/diagnostics.ts';
import type { Batch } from './train-data.ts';

const ids = z.array(z.array(z.number().int().nonnegative()));
const line = z.strictObject({ step: z.number().int().positive(), tokens: ids, targets: ids });

const rows = (a: Int32Array, seq: number) => Array.from({ length: a.length / seq }, (_, r) => [...a.subarray(r * seq, (r + 1) * seq)]);

/** Starts FILE anew (a new run's dump never mixes with an old one); `write` appends one step's batch. */
export function batchDumper(file: string, seq: number): { write: (step: number, b: Batch) => void } {
  try {
    writeFileSync(file, '');
  } catch (e) {
    throw new LomocError(`lomoc train: option '--dump-batch': cannot write '${file}': ${(e as Error).message}`);
  }
  return { write: (step, b) => appendFileSync(file, JSON.stringify({ step, tokens: rows(b.tokens, seq), targets: rows(b.targets, seq) }) + '\n') };
}

/**
 * The batches of steps `from`..`to` in FILE, each [batch, seq] with ids below `vocab`. Errors name
 * the file, the line and what was expected.
 */
export function readBatchFile(file: string, shape: { batch: number; seq: number; vocab: number }, from: number, to: number): Map<number, Batch> {
  const where = `lomoc train: --batch-file '${file}'`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LomocError(`${where}: cannot read it (${code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
  }
  const out = new Map<number, Batch>();
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const at = `${where}: line ${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new LomocError(`${at}: expected a JSON object {"step": N, "tokens": [[ids]], "targets": [[ids]]}, got text that is not JSON`);
    }
    const parsed = line.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new LomocError(`${at}: ${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
    }
    const { step, tokens, targets } = parsed.data;
    if (out.has(step)) throw new LomocError(`${at}: a second batch for step ${step}`);
    const flat = (name: string, m: number[][]) => {
      if (m.length !== shape.batch || m.some((r) => r.length !== shape.seq))
        throw new LomocError(`${at}: ${name} must be [${shape.batch}, ${shape.seq}] (the model's batch and seq), got ${new Set(m.map((r) => r.length)).size > 1 ? `${m.length} rows of different lengths` : `[${m.length}, ${m[0]?.length ?? 0}]`}`);
      const bad = m.flat().find((t) => t >= shape.vocab);
      if (bad !== undefined) throw new LomocError(`${at}: ${name} holds id ${bad}, outside the model's vocabulary (0 to ${shape.vocab - 1})`);
      return Int32Array.from(m.flat());
    };
    out.set(step, { tokens: flat('tokens', tokens), targets: flat('targets', targets) });
  });
  for (let s = from; s <= to; s++)
    if (!out.has(s)) throw new LomocError(`${where} has no batch for step ${s} (it holds ${out.size ? `steps ${[...out.keys()].sort((a, b) => a - b).join(', ')}` : 'no batches'})`);
  return out;
}
