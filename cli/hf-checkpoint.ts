// A Hugging Face folder as lomoc params: the family's table (models/hf) applied to the folder's
// headers (runtime/checkpoint/hf-folder.ts). `openHf` checks everything that can be checked
// before any tensor is read (model_type, config keys, every tensor's shape and dtype, tensors no
// param takes, params no tensor fills); `hfParams` then reads one HF tensor at a time.
import { LomocError } from '../compiler/diagnostics.ts';
import type { Config } from '../compiler/dsl/model.ts';
import type { HfFamily, HfTensorSpec } from '../models/hf/family.ts';
import { splitHf } from '../models/hf/family.ts';
import { hfFamilies, type HfModelType } from '../models/hf/index.ts';
import { floatDtypes, HfFolderError, openHfFolder, readTensorF32, type HfFolder, type HfTensorEntry } from '../runtime/checkpoint/hf-folder.ts';

export interface HfImport {
  readonly folder: HfFolder;
  readonly family: HfFamily;
  readonly config: Config;
  /** The table's tensors found in the folder, each with its entry. */
  readonly found: readonly { readonly spec: HfTensorSpec; readonly entry: HfTensorEntry }[];
  /** Folder tensors no param takes (names as in the folder). */
  readonly unexpected: readonly string[];
  /** Params whose tensor the folder lacks, with that tensor's name. */
  readonly missing: readonly { readonly param: string; readonly hf: string }[];
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** Runs `f`, turning the folder reader's errors into the CLI's. */
export function hfErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof HfFolderError) throw new LomocError(e.message);
    throw e;
  }
}

export function familyOf(folder: HfFolder): HfFamily {
  const t = folder.config.model_type;
  if (typeof t !== 'string' || !(t in hfFamilies))
    throw new LomocError(`${folder.configFile}: unknown model_type ${JSON.stringify(t ?? null)}; lomoc maps ${Object.keys(hfFamilies).join(', ')}`);
  return hfFamilies[t as HfModelType];
}

/**
 * Opens DIR and matches its tensors with the table for its config (or `config`, a lomoc config
 * the caller already has). Errors when a shape or dtype is wrong; with `partial`, tensors no param
 * takes and params no tensor fills are listed (for warnings) instead of refused.
 */
export function openHf(dir: string, opts: { run?: { batch: number; seq?: number }; config?: Config; partial?: boolean } = {}): HfImport {
  const folder = hfErrors(() => openHfFolder(dir));
  const family = familyOf(folder);
  const config = opts.config ?? family.fromHf(folder.config, folder.configFile, opts.run ?? { batch: 1 });
  const byName = new Map<string, HfTensorEntry>();
  for (const e of folder.tensors.values()) byName.set(family.canonical(e.name), e);
  const specs = family.tensors(config);
  const wanted = new Set(specs.map((s) => s.hf));
  const found: { spec: HfTensorSpec; entry: HfTensorEntry }[] = [];
  const missing: { param: string; hf: string }[] = [];
  const wrong: string[] = [];
  for (const spec of specs) {
    const entry = byName.get(spec.hf);
    if (!entry) {
      for (const p of spec.parts) missing.push({ param: p.param, hf: spec.hf });
      continue;
    }
    if (fmt(entry.shape) !== fmt(spec.shape)) wrong.push(`tensor '${entry.name}' in ${entry.file}: expected ${fmt(spec.shape)}, found ${fmt(entry.shape)}`);
    else if (!(floatDtypes as readonly string[]).includes(entry.dtype))
      throw new LomocError(`${entry.file}: tensor '${entry.name}' is ${entry.dtype}; expected one of ${floatDtypes.join(', ')}`);
    found.push({ spec, entry });
  }
  if (wrong.length)
    throw new LomocError(`${folder.configFile}: the config contradicts ${plural(wrong.length, 'tensor')} (expected from the config, found in the file): ${wrong.join('; ')}`);
  const unexpected = [...byName].filter(([n]) => !wanted.has(n) && !family.ignored(n, config)).map(([, e]) => e.name);
  if (!opts.partial) {
    if (unexpected.length)
      throw new LomocError(`${dir}: ${plural(unexpected.length, 'tensor')} no param of lomoc's ${family.model} takes: ${unexpected.map((n) => `'${n}' in ${byName.get(family.canonical(n))!.file}`).join(', ')} (give --init-partial to ignore them)`);
    if (missing.length)
      throw new LomocError(`${dir}: ${plural(missing.length, 'param')} no tensor fills: ${missing.map((m) => `'${m.param}' (expected tensor '${m.hf}')`).join(', ')} (give --init-partial to keep their initial values)`);
  }
  return { folder, family, config, found, unexpected, missing };
}

/** The params, one HF tensor at a time (a 7B checkpoint never sits in host memory whole). */
export function* hfParams(imp: HfImport): Generator<Record<string, Float32Array>> {
  for (const { spec, entry } of imp.found) yield splitHf(spec, hfErrors(() => readTensorF32(entry)));
}

/** Every param at once (tests, export round trips, the reference executor). */
export function loadHfParams(imp: HfImport): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const group of hfParams(imp)) Object.assign(out, group);
  return out;
}

/** The program's params checked against the table's: the same names and shapes, or an error naming each. */
export function checkParamShapes(imp: HfImport, params: readonly { name: string; shape: readonly number[] }[], model: string): void {
  const parts = new Map(imp.family.tensors(imp.config).flatMap((s) => s.parts.map((p) => [p.param, { p, hf: s.hf }] as const)));
  const bad: string[] = [];
  for (const q of params) {
    const m = parts.get(q.name);
    if (!m) bad.push(`param '${q.name}' ${fmt(q.shape)} has no Hugging Face tensor in the ${imp.family.modelType} table`);
    else if (fmt(m.p.shape) !== fmt(q.shape)) bad.push(`param '${q.name}' is ${fmt(q.shape)} in ${model}, but ${imp.folder.configFile} makes it ${fmt(m.p.shape)} (tensor '${m.hf}')`);
  }
  if (bad.length) throw new LomocError(`--init ${imp.folder.dir}: the model's config differs from the checkpoint's (use --preset hf to take the config from config.json): ${bad.join('; ')}`);
}

/** Bytes of the folder's tensors by dtype, for `lomoc import`. */
export function dtypeBytes(folder: HfFolder): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of folder.tensors.values()) out[e.dtype] = (out[e.dtype] ?? 0) + e.bytes;
  return out;
}
