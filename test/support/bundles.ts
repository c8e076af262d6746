// Bundle-folder helpers the bundle tests share: read and edit a manifest in place, and load a
// folder expecting the loader's BundleError (its message is what the tests compare).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BundleError } from '../../runtime/bundle/load-bundle.ts';
import { loadBundleDir } from '../../runtime/bundle/node.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ManifestJson = Record<string, any>;

export const manifestOf = (dir: string): ManifestJson => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));

/** Rewrites `dir`'s manifest.json through `edit`; returns `dir`. */
export function editManifest(dir: string, edit: (m: ManifestJson) => void): string {
  const m = manifestOf(dir);
  edit(m);
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  return dir;
}

/** 'loaded', or the message of the BundleError loading `dir` threw (anything else is named as not one). */
export const rejection = (dir: string): Promise<string> =>
  loadBundleDir(dir).then(() => 'loaded', (e) => (e instanceof BundleError ? e.message : `not a BundleError: ${e}`));
