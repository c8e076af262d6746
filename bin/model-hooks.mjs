// Module resolution hooks for users' model files, registered after tsx (so they run before it):
//
// 1. `import ... from 'lomoc'` is the DSL of the lomoc that is running, wherever the model file
//    lives (a folder with its own node_modules/lomoc, one without, a global install). The DSL
//    records calls in module state, so the model and the compiler must share one instance of it.
// 2. A .ts/.tsx file imported from ESM loads as ESM even where no package.json says
//    "type": "module". tsx would load it as CommonJS there, and its `import` of lomoc's ESM
//    sources then fails with "Cannot require() ES Module ... in a cycle" (or, once that is
//    avoided, gets a second copy of the DSL). Model files use `import`/`export` anyway.
// Plain JS: this file runs in Node's hooks thread, where nothing compiles TypeScript for it.
const dsl = new URL('../compiler/dsl/index.ts', import.meta.url).href;
const typescript = /\.tsx?$/;
const commonjs = new Set(['commonjs', 'commonjs-typescript']);

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'lomoc') return nextResolve(dsl, context);
  const resolved = await nextResolve(specifier, context);
  const fromImport = context.conditions?.includes('import') ?? true;
  const { url } = resolved;
  if (fromImport && url.startsWith('file:') && !url.includes('/node_modules/') && typescript.test(new URL(url).pathname)
    && (resolved.format == null || commonjs.has(resolved.format)))
    return { ...resolved, format: 'module' };
  return resolved;
}
