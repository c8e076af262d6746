// Loading a bundle folder in Node (the browser passes a fetch-based reader to loadBundle). Files
// are read only from inside the folder: the manifest's kernel paths are plain names under
// kernels/ (the schema), and here each file must also resolve, through any symlink, to a regular
// file inside the folder and be within the size cap. It is opened with O_NONBLOCK and checked with
// fstat before a byte is read, so a FIFO or a device planted in a bundle is refused, not waited on.
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { BundleError, loadBundle, maxKernelBytes, maxManifestBytes, type LoadedBundle } from './load-bundle.ts';

const kindOf = (s: import('node:fs').Stats): string =>
  s.isFIFO() ? 'a FIFO' : s.isDirectory() ? 'a folder' : s.isSocket() ? 'a socket' : s.isCharacterDevice() || s.isBlockDevice() ? 'a device' : 'not a regular file';

/** The text of `file` (relative to the bundle's real folder `root`), refusing anything but a regular file inside it of at most `cap` bytes. */
async function readInside(root: string, file: string, cap: number): Promise<string> {
  // A missing or unreadable file throws fs's own error: the caller names what it was reading.
  const real = await realpath(path.join(root, file));
  if (!real.startsWith(root + path.sep)) throw new BundleError(`${file}: it leads outside the bundle's folder (to ${real}); a bundle's files must lie inside it`);
  const fh = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BundleError(`${file}: ${kindOf(st)}, not a regular file; a bundle's files are plain files`);
    if (st.size > cap) throw new BundleError(`${file}: ${st.size} bytes, more than the limit of ${cap}`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

export async function loadBundleDir(dir: string): Promise<LoadedBundle> {
  let root: string;
  try {
    root = await realpath(dir);
  } catch {
    throw new BundleError(`${dir}: no manifest.json (is it a folder written by lomoc compile?)`);
  }
  let manifest: string;
  try {
    manifest = await readInside(root, 'manifest.json', maxManifestBytes);
  } catch (e) {
    if (e instanceof BundleError) throw e;
    throw new BundleError(`${dir}: no manifest.json (is it a folder written by lomoc compile?)`);
  }
  return loadBundle(manifest, (file) => readInside(root, file, maxKernelBytes));
}
