// The child of the SIGKILL test (test/checkpoint/checkpoint.test.ts): saves checkpoints to
// argv[2] in a loop, each one's step one past the file's current step, all of whose values equal
// that step, and prints "saved N" after each save completes.
import { existsSync } from 'node:fs';
import { loadCheckpoint, saveCheckpoint } from '../../runtime/checkpoint/node.ts';

const file = process.argv[2];
let step = existsSync(file) ? Number(loadCheckpoint(file).metadata.step) : 0;
for (;;) {
  step++;
  const a = new Float32Array(256 * 1024).fill(step);
  const b = new Int32Array(1000).fill(-step);
  saveCheckpoint(file, { a: { shape: [512, 512], data: a }, b: { shape: [1000], data: b } }, { step: String(step) });
  process.stdout.write(`saved ${step}\n`);
}
