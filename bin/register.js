// Registers what lomoc needs to import TypeScript: tsx's ESM hooks, then model-hooks.mjs (which
// therefore runs first: `from 'lomoc'` is this lomoc, and .ts files anywhere load as ESM).
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

export function registerModelLoader() {
  registerTsx();
  register('./model-hooks.mjs', import.meta.url);
}
