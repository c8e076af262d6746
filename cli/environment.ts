// Faults of the user's environment, not of lomoc: a full disk, a read-only folder, a path that is a
// folder where a file was expected. Node reports them as system errors (code, syscall, path); the
// CLI turns every one of them, wherever it was thrown, into a plain error naming what could not be
// done and where, exit 1: never an "internal compiler error". Call sites that know what a file is
// for (a checkpoint, a log) may say more, but none needs to for the message to be right.

/** What the operation was, by Node's syscall name. */
const verbs: Readonly<Record<string, string>> = {
  open: 'open', read: 'read', write: 'write', close: 'close', fsync: 'flush', fdatasync: 'flush',
  mkdir: 'create the folder', mkdtemp: 'create a temporary folder in', rmdir: 'remove the folder', rm: 'remove',
  unlink: 'remove', rename: 'move', copyfile: 'copy', scandir: 'list the folder', opendir: 'list the folder',
  stat: 'inspect', lstat: 'inspect', fstat: 'inspect', access: 'access', realpath: 'resolve', readlink: 'read the link',
  symlink: 'create the link', link: 'link', chmod: 'change the mode of', utime: 'touch', ftruncate: 'truncate',
};

/** What the error code means, in words. */
const causes: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  EEXIST: 'it already exists',
  ENOENT: 'no such file or folder',
  ENOTEMPTY: 'the folder is not empty',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this machine',
  EIO: 'an input/output error from the device',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'the resource is busy',
  ETXTBSY: 'the file is busy',
  EXDEV: 'the two paths are on different file systems',
  EFBIG: 'the file is too large',
  EAGAIN: 'the resource is temporarily unavailable',
};

interface SystemError {
  readonly code: string;
  readonly syscall: string;
  readonly path?: string;
  readonly dest?: string;
}

function isSystemError(e: unknown): e is SystemError {
  if (typeof e !== 'object' || e === null) return false;
  const { code, syscall } = e as Partial<SystemError>;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && typeof syscall === 'string';
}

/** The message for a fault of the file system or the machine, or undefined when `e` is not one. */
export function environmentMessage(e: unknown): string | undefined {
  if (!isSystemError(e)) return undefined;
  const verb = verbs[e.syscall] ?? e.syscall;
  const where = e.path === undefined ? '' : ` '${e.path}'${e.dest === undefined ? '' : ` to '${e.dest}'`}`;
  const cause = causes[e.code] ?? (e as unknown as Error).message ?? e.code;
  return `error: could not ${verb}${where}: ${cause} (${e.code}); this is the machine's file system or its limits, not a bug in lomoc`;
}
