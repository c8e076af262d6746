// Checkpoints on disk (Node only): safetensors files written atomically, so that a crash or a
// SIGKILL at any moment leaves either the previous complete file or the new one. The bytes go to
// a temporary file in the same folder, which is flushed (fsync), renamed over the target (atomic
// within one file system), and then the folder itself is flushed so the rename survives a power
// cut. Loading reads the whole file and checks it (runtime/checkpoint/safetensors.ts).
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, toFloat32, type Decoded, type TensorsInput } from './safetensors.ts';

export { SafetensorsError } from './safetensors.ts';

/** Is process `pid` alive (on this machine)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the temporary files of saves to `file` whose process died mid-save (SIGKILL, power cut). */
function removeStaleTemps(dir: string, base: string): void {
  const prefix = `.${base}.`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // another saver removed it first
      }
    }
  }
}

/** Writes `tensors` and `metadata` to `file` atomically (and removes temporaries that killed saves left). */
export function saveCheckpoint(file: string, tensors: TensorsInput, metadata: Readonly<Record<string, string>> = {}): void {
  const bytes = encodeSafetensors(tensors, metadata);
  const dir = dirname(file);
  removeStaleTemps(dir, basename(file));
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    let at = 0;
    while (at < bytes.byteLength) at += writeSync(fd, bytes, at, bytes.byteLength - at);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    // Node names no path for a failed write (a full disk): name the checkpoint being saved.
    if (e && typeof e === 'object' && !('path' in e)) Object.assign(e, { path: file });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
  // Flush the folder's entry for the rename (not possible on every platform: best effort).
  let dfd: number | undefined;
  try {
    dfd = openSync(dir, 'r');
    fsyncSync(dfd);
  } catch {
    // e.g. Windows cannot open a folder
  } finally {
    if (dfd !== undefined) closeSync(dfd);
  }
}

/** Reads and checks a checkpoint; errors name the file and the tensor or field at fault. */
export function loadCheckpoint(file: string): Decoded {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError(code === 'ENOENT' ? `${file}: no such checkpoint file` : `${file}: cannot read (${(e as Error).message})`);
  }
  return decodeSafetensors(bytes, file);
}

/** The F32 values of tensor `name`, with its shape checked when `shape` is given. */
export function requireTensor(ckpt: Decoded, name: string, source: string, shape?: readonly number[]): Float32Array {
  const t = ckpt.tensors[name];
  if (!t) throw new SafetensorsError(`${source}: missing tensor '${name}'`);
  if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])))
    throw new SafetensorsError(`${source}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  try {
    return toFloat32(name, t);
  } catch (e) {
    throw new SafetensorsError(`${source}: ${(e as Error).message}`);
  }
}
