// The bundle's page (index.html): runtime/page/ bundled by esbuild into page.js with uPlot, its
// style with uPlot's, and the sample text, so that the folder served by any static file server
// trains in a browser with nothing fetched from elsewhere. page.js imports the bundle's own
// index.js at run time. GPT-2's BPE is bundled only into the pages of bundles whose vocabulary is
// GPT-2's (it is most of a page's weight).
import { buildSync } from 'esbuild';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Manifest } from '../../contract/manifest.ts';

const require = createRequire(import.meta.url);
const pageDir = new URL('../../runtime/page/', import.meta.url);
const cache = new Map<boolean, string>();

function pageScript(gpt2: boolean): string {
  const hit = cache.get(gpt2);
  if (hit !== undefined) return hit;
  const result = buildSync({
    entryPoints: [fileURLToPath(new URL('main.ts', pageDir))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
    // A bytes bundle never tokenises with BPE: leave the import unresolved (it is never reached).
    external: gpt2 ? [] : ['gpt-tokenizer/*'],
    banner: { js: '// The lomoc page (runtime/page/ and uPlot), bundled by esbuild.' },
  });
  const js = result.outputFiles[0].text;
  cache.set(gpt2, js);
  return js;
}

/** The page's files by name: index.html, page.js, page.css and, when given, the sample text. */
export function pageFiles(m: Manifest, sample?: string): Record<string, string> {
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  return {
    'index.html': readFileSync(new URL('index.html', pageDir), 'utf8'),
    'page.js': pageScript(m.config.vocab === 50257),
    'page.css': `${uplotCss}\n${readFileSync(new URL('page.css', pageDir), 'utf8')}`,
    ...(sample === undefined ? {} : { 'data/moby-dick.txt': sample }),
  };
}
