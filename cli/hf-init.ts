// `lomoc train --init DIR` with a Hugging Face folder: `--preset hf` takes the model's config from
// DIR/config.json (the model gains a preset named hf), and the weights stream onto the device one
// HF tensor at a time (read by offset, widened to f32, split or transposed by the family's table,
// written, dropped), so host memory holds one tensor, never the checkpoint.
import { statSync } from 'node:fs';
import { LomocError } from '../compiler/diagnostics.ts';
import type { ModelDef } from '../compiler/dsl/model.ts';
import { openHfFolder } from '../runtime/checkpoint/hf-folder.ts';
import { checkParamShapes, familyOf, hfErrors, hfParams, openHf } from './hf-checkpoint.ts';
import type { Io } from './report.ts';

export const isHfFolder = (p: string | undefined): p is string => p !== undefined && statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/** The model with a preset 'hf' from --init DIR's config.json; `--preset hf` without a folder is an error. */
export function withHfPreset(def: ModelDef, init: string | undefined, preset: string | undefined): ModelDef {
  if (!isHfFolder(init)) {
    if (preset === 'hf') throw new LomocError(`--preset hf takes the config from a Hugging Face folder's config.json: give --init DIR${init ? ` (${init} is not a folder)` : ''}`);
    return def;
  }
  const folder = hfErrors(() => openHfFolder(init));
  const family = familyOf(folder);
  if (family.model !== def.name)
    throw new LomocError(`${folder.configFile}: model_type '${family.modelType}' loads into lomoc's '${family.model}' model (${family.modelFile}), but the model file declares '${def.name}'`);
  return { ...def, presets: { ...def.presets, hf: family.fromHf(folder.config, folder.configFile, { batch: 1 }) } };
}

/** Streams DIR's weights into `write`; returns how many params it filled. Errors before any write when anything does not fit. */
export function initFromHf(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  params: readonly { name: string; shape: readonly number[] }[],
  write: (values: Record<string, Float32Array>) => void,
  opts: { model: string; partial: boolean; io: Io },
): number {
  const run = { batch: Number(config.batch ?? 1), seq: config.seq === undefined ? undefined : Number(config.seq) };
  const imp = openHf(dir, { run, partial: opts.partial });
  checkParamShapes(imp, params, opts.model);
  if (imp.unexpected.length) opts.io.err(`warning: --init ${dir}: ${imp.unexpected.length} tensor(s) no param takes are ignored: ${imp.unexpected.join(', ')}`);
  if (imp.missing.length) opts.io.err(`warning: --init ${dir}: ${imp.missing.length} param(s) no tensor fills keep their initial values: ${imp.missing.map((m) => m.param).join(', ')}`);
  let n = 0;
  for (const group of hfParams(imp)) {
    write(group);
    n += Object.keys(group).length;
  }
  return n;
}
