// `lomoc serve <bundle-dir> [--port N]`: serves a bundle folder on 127.0.0.1 so its page
// (index.html) opens in a browser: files from inside the folder only (no `..`, no symbolic link
// that leaves it), GET and HEAD only, with the MIME types a browser needs for ES modules and WGSL.
import { createReadStream, realpathSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import { optionChecks, parseCommandArgs, type CommandSpec } from './args.ts';
import type { Io } from './report.ts';

export const serveSpec: CommandSpec = {
  name: 'serve',
  summary: "Serve a bundle folder on 127.0.0.1 and print the address of its page.",
  positionals: [{ name: 'bundle-dir', help: 'a folder written by lomoc compile' }],
  options: {
    port: { type: 'string', value: 'N', help: 'the port to listen on (default 8080; 0 picks a free one)' },
  },
  examples: ['lomoc compile models/gpt.ts --preset small --optimizer lomo --out out/gpt-small', 'lomoc serve out/gpt-small'],
};

const types: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8', '.wgsl': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.safetensors': 'application/octet-stream',
};

export interface Served {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `dir` on 127.0.0.1:`port`; resolves once it listens. */
export function serveBundle(dir: string, port: number): Promise<Served> {
  let root: string;
  try {
    root = realpathSync(dir);
  } catch {
    throw new LomocError(`lomoc serve: '${dir}' does not exist`);
  }
  if (!statSync(root).isDirectory()) throw new LomocError(`lomoc serve: '${dir}' is a file, expected a bundle folder`);
  try {
    statSync(path.join(root, 'index.html'));
  } catch {
    throw new LomocError(`lomoc serve: '${dir}' has no index.html: compile the bundle again with this lomoc (lomoc compile ... --out ${dir})`);
  }
  const server = http.createServer((req, res) => {
    const fail = (code: number, text: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'only GET and HEAD');
    let rel: string;
    try {
      rel = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    } catch {
      return fail(400, 'bad path');
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.join(root, path.normalize(rel));
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      return fail(404, 'not found');
    }
    if (real !== root && !real.startsWith(root + path.sep)) return fail(403, 'outside the bundle folder');
    const st = statSync(real);
    if (!st.isFile()) return fail(404, 'not a file');
    res.writeHead(200, { 'content-type': types[path.extname(real)] ?? 'application/octet-stream', 'content-length': st.size, 'cache-control': 'no-store' });
    if (req.method === 'HEAD') return res.end();
    createReadStream(real).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? new LomocError(`lomoc serve: port ${port} is in use: choose another with --port N (0 picks a free one)`) : e));
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${p}/`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) });
    });
  });
}

export async function runServe(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(serveSpec, argv);
  const port = values.port === undefined ? 8080 : optionChecks('serve').integer(values.port as string, 'port', 0, 65535);
  if (port > 65535) throw new LomocError(`lomoc serve: option '--port' expects a port from 0 to 65535, got '${values.port}'`);
  const s = await serveBundle(positionals[0], port);
  io.out(`serving ${positionals[0]} at ${s.url} (open it in a browser with WebGPU; Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    const stop = () => void s.close().then(resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
