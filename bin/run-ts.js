#!/usr/bin/env node
// Runs one TypeScript file under tsx: `node bin/run-ts.js bench/index.ts [args...]`.
// Used by `npm run bench`, so scripts need nothing beyond `npm install`.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { registerModelLoader } from './register.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node bin/run-ts.js <file.ts> [args...]\n');
  process.exit(1);
}
registerModelLoader();
process.argv.splice(1, 1); // the script sees itself as argv[1], as it would under `tsx file.ts`
await import(pathToFileURL(path.resolve(file)).href);
