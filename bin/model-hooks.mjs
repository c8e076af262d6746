// Module resolution hooks for users' model files, registered after tsx (so they run before it):
//
// 1. `import ... from 'lomoc'` is the DSL of the lomoc that is running, wherever the model file
//    lives (a folder with its own node_modules/lomoc, one without, a global install). The DSL
//    records calls in module state, so the model and the compiler must share one instance of it.
// 2. A .ts/.tsx file imported from ESM loads as ESM even where no package.json says
//    "type": "module". tsx would load it as CommonJS there, and its `import` of lomoc's ESM
//    sources then fails with "Cannot require() ES Module ... in a cycle" (or, once that is
//    avoided, gets a second copy of the DSL). Model files use `import`/`export` anyway.
// 3. Importing the DSL of another copy of lomoc (by path) is an error naming both copies: its DSL
//    calls would land in that copy's state, and fail later as "called outside a model".
// Plain JS: this file runs in Node's hooks thread, where nothing compiles TypeScript for it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dsl = new URL('../compiler/dsl/index.ts', import.meta.url).href;
const dslEntry = /\/compiler\/dsl\/index\.ts$/;
const typescript = /\.tsx?$/;
const commonjs = new Set(['commonjs', 'commonjs-typescript']);

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'lomoc') return nextResolve(dsl, context);
  const resolved = await nextResolve(specifier, context);
  const fromImport = context.conditions?.includes('import') ?? true;
  const { url } = resolved;
  if (url !== dsl && url.startsWith('file:') && dslEntry.test(new URL(url).pathname) && isLomoc(new URL('../../package.json', url)))
    throw new Error(`the model imports the DSL of another copy of lomoc (${fileURLToPath(url)}), `
      + `but the lomoc running is ${path.resolve(fileURLToPath(new URL('..', import.meta.url)))}: import the DSL as 'lomoc'`);
  if (fromImport && url.startsWith('file:') && !url.includes('/node_modules/') && typescript.test(new URL(url).pathname)
    && (resolved.format == null || commonjs.has(resolved.format)))
    return { ...resolved, format: 'module' };
  return resolved;
}

function isLomoc(packageJson) {
  try {
    return JSON.parse(readFileSync(packageJson, 'utf8')).name === 'lomoc';
  } catch {
    return false;
  }
}
