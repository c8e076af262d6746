// Import time and peak host memory of a Hugging Face checkpoint, on a folder this bench writes
// itself (random BF16 weights, sharded at 1 GB as HF does, in GPT-2-124M or a 1B LLaMA shape). The
// read runs in a child process so its peak RSS is the loader's alone: headers, then one tensor at
// a time widened to f32 and split by the family's table, as `lomoc train --init DIR` streams it.
//   node bin/run-ts.js bench/hf-import.ts [124m|1b]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hfParams, openHf } from '../cli/hf-checkpoint.ts';
import type { Config } from '../compiler/dsl/model.ts';
import { hfFamilies } from '../models/hf/index.ts';
import { writeHfFolder } from '../runtime/checkpoint/hf-folder.ts';

const shapes: Readonly<Record<string, { type: 'gpt2' | 'llama'; hf: Record<string, unknown> }>> = {
  '124m': { type: 'gpt2', hf: { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 } },
  // TinyLlama-1.1B's shape: 22 layers, width 2048, GQA 32/4 heads.
  '1b': { type: 'llama', hf: { model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048 } },
};

function write(dir: string, shape: string): number {
  const { type, hf } = shapes[shape];
  const family = hfFamilies[type];
  const cfg: Config = family.fromHf(hf, 'config.json', { batch: 1 });
  let seed = 1;
  const tensors = family.tensors(cfg).map((s) => ({
    name: s.hf, dtype: 'BF16' as const, shape: s.shape,
    data: () => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const out = new Uint16Array(n);
      // Random bf16 values in about [-0.06, 0.06]: exponent 0x3d, random sign and mantissa.
      for (let i = 0; i < n; i++) out[i] = (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16 & 0x807f | 0x3d00;
      return new Uint8Array(out.buffer);
    },
  }));
  writeHfFolder(dir, hf, tensors, 1e9);
  return tensors.reduce((a, t) => a + 2 * t.shape.reduce((x, y) => x * y, 1), 0);
}

function read(dir: string): void {
  const t0 = performance.now();
  const imp = openHf(dir);
  const headers = performance.now() - t0;
  let values = 0;
  for (const group of hfParams(imp)) for (const v of Object.values(group)) values += v.length;
  const ms = performance.now() - t0;
  const u = process.resourceUsage();
  console.log(JSON.stringify({ files: imp.folder.files.length, values, headersMs: headers, ms, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, maxRssBytes: u.maxRSS * 1024 }));
}

if (process.argv[2] === '--read') read(process.argv[3]);
else {
  const shape = process.argv[2] ?? '124m';
  const dir = join(mkdtempSync(join(tmpdir(), 'lomoc-bench-hf-')), 'model');
  try {
    const bytes = write(dir, shape);
    const out = execFileSync(process.execPath, [join(import.meta.dirname, '..', 'bin', 'run-ts.js'), import.meta.filename, '--read', dir], { encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    console.log('| checkpoint | files | BF16 on disk | f32 params | import wall (headers) | CPU time | peak host RSS |');
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    console.log(`| ${shape} (${shapes[shape].type}) | ${r.files} | ${mb(bytes)} | ${mb(r.values * 4)} | ${(r.ms / 1000).toFixed(2)} s (${r.headersMs.toFixed(0)} ms) | ${(r.cpuMs / 1000).toFixed(2)} s | ${mb(r.maxRssBytes)} |`);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}
