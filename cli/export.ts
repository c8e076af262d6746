// `lomoc export CHECKPOINT --format hf --out DIR`: a lomoc checkpoint (what `lomoc train --save`
// writes) as a Hugging Face folder: config.json and model.safetensors in HF's names and layouts,
// sharded past --max-shard-size with model.safetensors.index.json. Written to a temporary folder
// and renamed into place, never over a non-empty folder. import(export(W)) == W bit for bit.
import { LomocError } from '../compiler/diagnostics.ts';
import { joinHf } from '../models/hf/family.ts';
import { hfFamilies, hfTypeOfModel } from '../models/hf/index.ts';
import { loadCheckpoint } from '../runtime/checkpoint/node.ts';
import { SafetensorsError, toFloat32, type Decoded } from '../runtime/checkpoint/safetensors.ts';
import { writeHfFolder } from '../runtime/checkpoint/hf-folder.ts';
import { optionChecks, parseCommandArgs, type CommandSpec } from './args.ts';
import { fmtBytes } from '../contract/units.ts';
import { hfErrors } from './hf-checkpoint.ts';
import type { Io } from './report.ts';

export const exportSpec: CommandSpec = {
  name: 'export',
  summary: 'Write a lomoc checkpoint as a Hugging Face model folder (config.json, safetensors).',
  positionals: [{ name: 'CHECKPOINT', help: 'a checkpoint.safetensors written by lomoc train --save' }],
  options: {
    format: { type: 'string', value: 'NAME', help: 'hf (the only format: Hugging Face transformers)' },
    out: { type: 'string', value: 'DIR', help: 'the folder to create (must not exist, or be empty)' },
    'max-shard-size': { type: 'string', value: 'BYTES', help: 'shard model.safetensors past this many bytes, e.g. 5GB, 500MB, 1000000 (default 5GB)' },
  },
  examples: ['lomoc export out/moby/checkpoint.safetensors --format hf --out out/moby-hf'],
};

const { error: optionError } = optionChecks('export');
const units: Readonly<Record<string, number>> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 };

/** "5GB" -> 5e9 (HF's convention: GB is 10^9, GiB 2^30). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? units[m[2].toUpperCase()] : undefined;
  if (!m || unit === undefined || !(Number(m[1]) * unit >= 1)) throw optionError('max-shard-size', 'a size such as 5GB, 500MB or 1000000 (bytes)', text);
  return Math.floor(Number(m[1]) * unit);
}

/** The model name and config a lomoc checkpoint was trained with (its metadata). */
function checkpointModel(file: string, ckpt: Decoded): { model: string; config: Record<string, string | number | boolean> } {
  let run: { model?: string; config?: string };
  try {
    run = JSON.parse(ckpt.metadata.run ?? '');
  } catch {
    throw new LomocError(`${file}: not a checkpoint written by lomoc train (its metadata has no 'run'); lomoc export needs the model and config it records`);
  }
  if (!run.model || !run.config) throw new LomocError(`${file}: the checkpoint's metadata 'run' lacks the model or its config`);
  return { model: run.model, config: JSON.parse(run.config) };
}

export async function runExport(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(exportSpec, argv);
  if ((values.format ?? 'hf') !== 'hf') throw optionError('format', 'hf', values.format as string);
  const out = values.out as string | undefined;
  if (!out) throw new LomocError("lomoc export: option '--out DIR' is required");
  const maxShard = values['max-shard-size'] === undefined ? 5e9 : parseSize(values['max-shard-size'] as string);
  const file = positionals[0];
  let ckpt: Decoded;
  try {
    ckpt = loadCheckpoint(file);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc export: ${e.message}`);
    throw e;
  }
  const { model, config } = checkpointModel(file, ckpt);
  const type = hfTypeOfModel[model];
  if (!type) throw new LomocError(`${file}: model '${model}' has no Hugging Face mapping; lomoc exports ${Object.keys(hfTypeOfModel).join(', ')}`);
  const family = hfFamilies[type];
  const specs = family.tensors(config);
  const param = (name: string) => {
    const t = ckpt.tensors[name];
    if (!t) throw new LomocError(`${file}: tensor '${name}' is missing (model '${model}' with config ${JSON.stringify(config)} needs it)`);
    return toFloat32(name, t);
  };
  const tensors = specs.map((s) => ({
    name: s.hf, dtype: 'F32' as const, shape: s.shape,
    data: () => {
      const v = joinHf(s, Object.fromEntries(s.parts.map((p) => [p.param, param(p.param)])));
      return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    },
  }));
  const files = hfErrors(() => writeHfFolder(out, family.toHf(config), tensors, maxShard));
  const bytes = specs.reduce((a, s) => a + 4 * s.shape.reduce((x, y) => x * y, 1), 0);
  io.out(`exported ${model} (${family.modelType}) to ${out}: ${specs.length} tensors, ${fmtBytes(bytes)} F32 in ${files.filter((f) => f.endsWith('.safetensors')).length} file(s): ${files.join(', ')}`);
  return 0;
}
