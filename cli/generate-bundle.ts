// `lomoc generate DIR` where DIR is a bundle lomoc compile wrote: its inference program (manifest's
// `inference` section), run by the runtime's createGenerator, the same code as the bundle's
// index.js and its page. Weights: a checkpoint (--init, lomoc train's format: the page's downloads
// too), else the params' initialisers at seed 0, as a new trainer of the bundle starts from.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import type { Manifest } from '../contract/manifest.ts';
import { BundleError, noInferenceMessage, type LoadedInference } from '../runtime/bundle/load-bundle.ts';
import { loadBundleDir } from '../runtime/bundle/node.ts';
import { loadCheckpoint, requireTensor, SafetensorsError } from '../runtime/checkpoint/node.ts';
import type { TokenizerName } from './train-data.ts';

export interface BundleSource {
  readonly manifest: Manifest;
  readonly inference: LoadedInference;
  /** The checkpoint's values of every param of the inference program; undefined: the initialisers at seed 0. */
  readonly params?: Record<string, Float32Array>;
  readonly tokenizer?: TokenizerName;
  readonly what: string;
}

export const isBundleDir = (source: string): boolean => statSync(source, { throwIfNoEntry: false })?.isDirectory() === true && existsSync(path.join(source, 'manifest.json'));

/** Options that shape the compiled program: a bundle's is already compiled. */
const compiledIn = ['preset', 'set', 'model', 'chunk'] as const;

export async function bundleSource(dir: string, init: string | undefined, values: Readonly<Record<string, unknown>>): Promise<BundleSource> {
  for (const o of compiledIn)
    if (values[o] !== undefined) throw new LomocError(`lomoc generate: option '--${o}' is for a model file; the bundle ${dir} was compiled with its own`);
  if (values.device === 'cpu')
    throw new LomocError(`lomoc generate: --device cpu runs the reference executor on a model file; a bundle (${dir}) runs on WebGPU: drop --device cpu, or give the model file`);
  let loaded;
  try {
    loaded = await loadBundleDir(dir);
  } catch (e) {
    if (e instanceof BundleError) throw new LomocError(`lomoc generate: ${dir}/${e.message}`);
    throw e;
  }
  if (!loaded.inference) throw new LomocError(`lomoc generate: ${dir}: ${noInferenceMessage}`);
  const m = loaded.manifest;
  if (init === undefined) return { manifest: m, inference: loaded.inference, what: `${dir} (bundle of ${m.model} ${m.preset}; the params' initial values at seed 0: no --init)` };
  const st = statSync(init, { throwIfNoEntry: false });
  const file = st?.isDirectory() ? path.join(init, 'checkpoint.safetensors') : init;
  try {
    const ckpt = loadCheckpoint(file);
    let run: Record<string, unknown> = {};
    try {
      run = JSON.parse(ckpt.metadata.run ?? '{}') as Record<string, unknown>;
    } catch {
      throw new LomocError(`lomoc generate: ${file}: metadata 'run' is not JSON`);
    }
    if (typeof run.model === 'string' && run.model !== m.model)
      throw new LomocError(`lomoc generate: --init ${file}: the checkpoint is of model '${run.model}', the bundle ${dir} of '${m.model}'`);
    const params = Object.fromEntries(loaded.inference.program.params.map((p) => [p.name, requireTensor(ckpt, p.name, file, p.shape)]));
    const tokenizer = run.tokenizer === 'gpt2' || run.tokenizer === 'bytes' ? run.tokenizer : undefined;
    return { manifest: m, inference: loaded.inference, params, tokenizer, what: `${dir} (bundle of ${m.model} ${m.preset}) with the weights of ${file}` };
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc generate: --init ${e.message}`);
    throw e;
  }
}
