// fast-check's runs are random on a developer's machine (more cases seen over time) and fixed in
// CI (CI=true), so a landing run cannot fail on a case nobody has seen; FC_SEED=n replays a seed.
import fc from 'fast-check';

const seed = process.env.FC_SEED ?? (process.env.CI ? '20261126' : undefined);
if (seed !== undefined) fc.configureGlobal({ seed: Number(seed) });

// Every test file gets its own temporary root (TMPDIR, which os.tmpdir() and the CLI processes a
// test starts both read), removed when the file ends: a test that forgets to remove its own
// folders leaves nothing behind in /tmp.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const outer = process.env.TMPDIR;
const root = mkdtempSync(join(tmpdir(), 'lomoc-test-'));
process.env.TMPDIR = root;
afterAll(() => {
  if (outer === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = outer;
  rmSync(root, { recursive: true, force: true, maxRetries: 5 });
});
