// `lomoc import DIR`: what a Hugging Face model folder holds and how lomoc would load it: the
// model type, config.json -> lomoc config, the weight files, tensors by dtype and bytes, and the
// mapping of each HF tensor onto lomoc params. Reads headers only; every check `--init DIR` makes
// runs here too, so a folder that imports cleanly loads.
import { basename } from 'node:path';
import type { Part } from '../models/hf/family.ts';
import { parseCommandArgs, type CommandSpec } from './args.ts';
import { fmtBytes } from '../contract/units.ts';
import { dtypeBytes, openHf } from './hf-checkpoint.ts';
import type { Io } from './report.ts';

export const importSpec: CommandSpec = {
  name: 'import',
  summary: 'Show what a Hugging Face model folder holds and how lomoc maps it (for train --init DIR).',
  positionals: [{ name: 'DIR', help: 'a Hugging Face model folder: config.json and model.safetensors (or shards with model.safetensors.index.json)' }],
  options: {
    'init-partial': { type: 'boolean', help: 'list tensors no param takes and params no tensor fills instead of refusing them' },
    json: { type: 'boolean', help: 'print one JSON object instead of text' },
  },
  examples: ['lomoc import ~/models/gpt2', 'lomoc train models/gpt.ts --preset hf --init ~/models/gpt2 --steps 100'],
};

const fmtPart = (p: Part) => `${p.param}${p.cols ? ` (columns ${p.cols[0]}:${p.cols[1]})` : ''}${p.layout === 'transpose' ? ' (transposed)' : ''}`;

export async function runImport(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(importSpec, argv);
  const dir = positionals[0];
  const imp = openHf(dir, { partial: values['init-partial'] === true });
  const { folder, family, config } = imp;
  const bytes = dtypeBytes(folder);
  const mapping = imp.found.map(({ spec, entry }) => ({ tensor: entry.name, dtype: entry.dtype, shape: entry.shape, file: basename(entry.file), params: spec.parts.map(fmtPart) }));
  const ignored = [...folder.tensors.keys()].filter((n) => family.ignored(family.canonical(n), config));
  if (values.json) {
    io.out(JSON.stringify({ dir, modelType: family.modelType, model: family.model, modelFile: family.modelFile, config, files: folder.files.map((f) => basename(f)), tensors: folder.tensors.size, bytes, mapping, ignored, unexpected: imp.unexpected, missing: imp.missing }));
    return 0;
  }
  const values_ = [...folder.tensors.values()].reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1), 0);
  io.out(`folder      ${dir}`);
  io.out(`model type  ${family.modelType} -> lomoc model '${family.model}' (${family.modelFile})`);
  io.out(`config      ${Object.entries(config).map(([k, v]) => `${k}=${v}`).join(' ')} (batch and seq are lomoc's defaults for --preset hf)`);
  io.out(`weights     ${folder.files.length === 1 ? basename(folder.files[0]) : `${folder.files.length} shards named by model.safetensors.index.json`}`);
  io.out(`tensors     ${folder.tensors.size} tensors, ${values_.toLocaleString('en-US')} values: ${Object.entries(bytes).map(([d, b]) => `${d} ${fmtBytes(b)}`).join(', ')}`);
  io.out('mapping');
  for (const m of mapping) io.out(`  ${m.tensor} ${m.dtype} [${m.shape.join(', ')}] -> ${m.params.join(', ')}`);
  if (ignored.length) io.out(`ignored     ${ignored.length} buffer${ignored.length === 1 ? '' : 's'} that are not params: ${ignored.join(', ')}`);
  if (imp.unexpected.length) io.err(`warning: ${dir}: ${imp.unexpected.length} tensor(s) no param takes: ${imp.unexpected.join(', ')}`);
  if (imp.missing.length) io.err(`warning: ${dir}: ${imp.missing.length} param(s) no tensor fills: ${imp.missing.map((m) => `${m.param} (${m.hf})`).join(', ')}`);
  return 0;
}
