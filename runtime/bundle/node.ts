// Loading a bundle folder in Node (the browser passes a fetch-based reader to loadBundle).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BundleError, loadBundle, type LoadedBundle } from './load-bundle.ts';

export async function loadBundleDir(dir: string): Promise<LoadedBundle> {
  let manifest: string;
  try {
    manifest = await readFile(path.join(dir, 'manifest.json'), 'utf8');
  } catch {
    throw new BundleError(`${dir}: no manifest.json (is it a folder written by lomoc compile?)`);
  }
  return loadBundle(manifest, (file) => readFile(path.join(dir, file), 'utf8'));
}
