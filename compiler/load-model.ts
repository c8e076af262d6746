// Loads a user's model file: imports it (the CLI runs under tsx, so .ts files import directly and
// their stack traces map back to the user's lines) and checks that its default export is a model.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LomocError } from './diagnostics.ts';
import type { Loc } from './ir/types.ts';
import { isModelDef, type ModelDef } from './dsl/model.ts';
import { userFrame } from './dsl/location.ts';
import { describe } from './dsl/trace.ts';

const fileLoc = (file: string): Loc => ({ file, line: 1, col: 1 });
const lomocRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// esbuild (used by both tsx and vitest) reports syntax errors as `file:line:col: ERROR: text`, col 0-based.
const esbuildError = /^(.+?):(\d+):(\d+): ERROR: (.+)$/m;

/** Where an error thrown while importing the model points: the user's frame, never lomoc's CLI. */
function importErrorLoc(err: Error, shown: string): Loc {
  const loc = userFrame(err.stack);
  const abs = loc && path.resolve(loc.file);
  const inLomoc = abs && ['cli', 'bin', 'node_modules'].some((d) => abs.startsWith(path.join(lomocRoot, d) + path.sep));
  return loc && !inLomoc ? loc : fileLoc(shown);
}

function importError(e: unknown, shown: string): LomocError {
  const err = e instanceof Error ? e : new Error(String(e));
  const syntax = esbuildError.exec(err.message);
  if (syntax) {
    const file = path.relative(process.cwd(), syntax[1]) || syntax[1];
    const loc = { file, line: Number(syntax[2]), col: Number(syntax[3]) + 1 };
    return new LomocError(`cannot load model: syntax error: ${syntax[4]}`, loc);
  }
  return new LomocError(`cannot load model: importing the file threw: ${err.message}`, importErrorLoc(err, shown));
}

function describeExports(mod: Record<string, unknown>): string {
  const names = Object.keys(mod);
  if (!('default' in mod)) return names.length ? `no default export (exports: ${names.join(', ')})` : 'no exports';
  return `a default export that is ${describe(mod.default)}`;
}

/** Imports `file` (relative to the working directory) and returns its default-exported model. */
export async function loadModel(file: string): Promise<ModelDef> {
  const abs = path.resolve(file);
  const shown = path.relative(process.cwd(), abs) || file;
  if (!existsSync(abs) || !statSync(abs).isFile())
    throw new LomocError(`cannot load model: expected a model file (.ts), found no file at '${shown}'`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    // A DSL call at the top level of the module already says where; anything else the module
    // threw (or a syntax error) is pointed at the user's line.
    if (e instanceof LomocError) throw e;
    throw importError(e, shown);
  }
  if (!isModelDef(mod.default))
    throw new LomocError(
      `cannot load model: expected a default export made by model(name, build, { presets }), found ${describeExports(mod)}`,
      fileLoc(shown),
      [{ message: "write `export default model('name', (cfg) => loss, { presets: { tiny: {...} } })`" }],
    );
  return mod.default;
}
