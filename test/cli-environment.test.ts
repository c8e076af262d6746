// Nothing of the user's is lost, and the machine's faults are named as such: `lomoc compile --out`
// writes only into a new folder, an empty one, or a bundle it wrote; a full disk, a read-only
// folder or a folder where a file belongs is an error naming what could not be done and where
// (exit 1), never an "internal compiler error"; a failed save keeps the previous checkpoint whole.
// The read-only and full-disk cases mount small tmpfs folders: the tests run as root (CI does).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { environmentMessage } from '../cli/environment.ts';
import { loadCheckpoint, saveCheckpoint } from '../runtime/checkpoint/node.ts';
import { run } from './support/cli.ts';

const repo = path.resolve(import.meta.dirname, '..');
const root = mkdtempSync(path.join(tmpdir(), 'lomoc-env-'));
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  rmSync(root, { recursive: true, force: true });
});


const compile = (out: string) => run('compile', 'models/mlp.ts', '--optimizer', 'lomo', '--out', out);

/** A tmpfs of `kib` KiB at a new folder, read-only when asked. */
function tmpfs(name: string, kib: number, readOnly = false): string {
  const dir = path.join(root, name);
  mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k${readOnly ? ',ro' : ''}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mounting a tmpfs needs root (CI runs as root): ${r.stderr}`);
  mounts.push(dir);
  return dir;
}

/** Every file under `dir` with its contents, to show nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out[path.join(e.parentPath, e.name)] = readFileSync(path.join(e.parentPath, e.name), 'utf8');
  return out;
}

describe('lomoc compile --out never replaces what is not a bundle', () => {
  it('a folder of the user\'s files: an error naming them, every file untouched, nothing written beside it', async () => {
    const dir = path.join(root, 'mine');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    writeFileSync(path.join(dir, 'model.ts'), 'also mine');
    const before = snapshot(dir);
    const r = await compile(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: lomoc compile: --out ${dir}: the folder holds files and no lomoc bundle ('model.ts', 'notes.txt'); lomoc compile writes only into a new folder, an empty one, or a bundle it wrote earlier, so nothing of yours is replaced: choose another folder`);
    expect(snapshot(dir)).toEqual(before);
    expect(readdirSync(root).filter((n) => n.includes('lomoc-'))).toEqual([]);
  });

  it('a new path whose parents do not exist yet is written', async () => {
    const dir = path.join(root, 'new', 'deeper', 'b');
    expect((await compile(dir)).code).toBe(0);
    expect(readdirSync(path.dirname(dir))).toEqual(['b']);
  });

  it('a regular file: an error, the file unchanged', async () => {
    const file = path.join(root, 'a-file');
    writeFileSync(file, 'keep me');
    const r = await compile(file);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: lomoc compile: --out ${file}: it is a file, expected a new folder, an empty one, or a bundle folder; nothing was written`);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it("--out . in a folder of the user's: an error, and no temporary folder left anywhere", () => {
    const cwd = path.join(root, 'cwd');
    mkdirSync(cwd);
    writeFileSync(path.join(cwd, 'data.txt'), 'mine');
    const r = spawnSync(process.execPath, [path.join(repo, 'bin/lomoc.js'), 'compile', path.join(repo, 'models/mlp.ts'), '--out', '.'], { cwd, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("error: lomoc compile: --out .: the folder holds files and no lomoc bundle ('data.txt'); lomoc compile writes only into a new folder, an empty one, or a bundle it wrote earlier, so nothing of yours is replaced: choose another folder");
    expect(readdirSync(cwd)).toEqual(['data.txt']);
    expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('an empty folder is written; a bundle it wrote is replaced; a bundle with a file of the user\'s added is refused', async () => {
    const dir = path.join(root, 'bundle');
    mkdirSync(dir);
    expect((await compile(dir)).code).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).step.optimizer).toBe('lomo');
    const r = await run('compile', 'models/mlp.ts', '--optimizer', 'sgd', '--out', dir);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).step.optimizer).toBe('sgd');
    writeFileSync(path.join(dir, 'page.html'), '<p>mine</p>');
    const before = snapshot(dir);
    const again = await compile(dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error: lomoc compile: --out ${dir}: the folder holds files that are not part of a bundle ('page.html'); lomoc compile writes only into a new folder, an empty one, or a bundle it wrote earlier, so nothing of yours is replaced: choose another folder`);
    expect(snapshot(dir)).toEqual(before);
  });
});

describe("the machine's faults are the user's environment, not lomoc's bugs", () => {
  it('a read-only folder: exit 1 naming the folder and EROFS', async () => {
    const ro = tmpfs('ro', 64, true);
    const r = await compile(path.join(ro, 'b'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: could not create the folder '${path.join(ro, '.b.lomoc-' + process.pid + '.tmp')}': the file system is read-only (EROFS); this is the machine's file system or its limits, not a bug in lomoc`);
    expect(r.stderr).not.toMatch(/internal compiler error/);
  });

  it('a full disk: exit 1 naming ENOSPC; the bundle already there is intact and no temporary folder is left', async () => {
    const small = tmpfs('small', 256);
    const dir = path.join(small, 'b');
    // The manifest and kernels alone fit; the runtime.js of a full bundle does not.
    expect((await run('compile', 'models/mlp.ts', '--preset', 'tiny', '--out', path.join(root, 'probe'))).code).toBe(0);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ format: 'lomoc-bundle', marker: 1 }));
    const r = await compile(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: could not write '[^']+': no space left on the device \(ENOSPC\); this is the machine's file system or its limits, not a bug in lomoc$/);
    expect(JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).marker).toBe(1);
    expect(readdirSync(small)).toEqual(['b']);
  });

  it('a failed checkpoint save on a full disk keeps the previous checkpoint whole and leaves no temporary file', () => {
    const small = tmpfs('ckpt', 512);
    const file = path.join(small, 'checkpoint.safetensors');
    saveCheckpoint(file, { w: { shape: [4], data: Float32Array.of(1, 2, 3, 4) } }, { step: '1' });
    let thrown: unknown;
    try {
      saveCheckpoint(file, { w: { shape: [256, 1024], data: new Float32Array(256 * 1024).fill(7) } }, { step: '2' });
    } catch (e) {
      thrown = e;
    }
    expect(environmentMessage(thrown)).toBe(`error: could not write '${file}': no space left on the device (ENOSPC); this is the machine's file system or its limits, not a bug in lomoc`);
    const c = loadCheckpoint(file);
    expect(c.metadata.step).toBe('1');
    expect(readdirSync(small)).toEqual(['checkpoint.safetensors']);
  });

  it('a file where a folder belongs (ENOTDIR): exit 1 naming the path', async () => {
    const file = path.join(root, 'plain-file');
    writeFileSync(file, 'x');
    const r = await compile(path.join(file, 'sub'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: could not inspect '${path.join(file, 'sub')}': a part of the path is not a folder (ENOTDIR); this is the machine's file system or its limits, not a bug in lomoc`);
  });

  it('only system errors are the environment: other errors are not relabelled', () => {
    expect(environmentMessage(new Error('boom'))).toBeUndefined();
    expect(environmentMessage({ code: 'ERR_INVALID_ARG_TYPE', syscall: 'open' })).toBeUndefined();
    expect(environmentMessage('ENOSPC')).toBeUndefined();
    expect(environmentMessage(Object.assign(new Error('x'), { code: 'ENOSPC', syscall: 'write', path: '/d/f' }))).toBe(
      "error: could not write '/d/f': no space left on the device (ENOSPC); this is the machine's file system or its limits, not a bug in lomoc",
    );
    expect(environmentMessage(Object.assign(new Error('x'), { code: 'EXDEV', syscall: 'rename', path: '/a', dest: '/b' }))).toBe(
      "error: could not move '/a' to '/b': the two paths are on different file systems (EXDEV); this is the machine's file system or its limits, not a bug in lomoc",
    );
    expect(existsSync(root)).toBe(true);
  });
});
