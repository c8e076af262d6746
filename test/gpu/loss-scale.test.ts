// Loss scaling and one-pass clipping on WebGPU: clipFactor's variants against the reference
// executor (an overflow found from the bits, not by a comparison WGSL may fold away), and
// `lomoc train` with --loss-scale (f16) and --clip-mode previous: an overflowed step leaves the
// params bit for bit, the scale recovers, and a resume equals never stopping, bit for bit.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../runtime/checkpoint/node.ts';
import { compareOp } from './kernel-check.ts';
import { run } from '../support/cli.ts';


const tmp = () => mkdtempSync(join(tmpdir(), 'lomoc-scale-'));
const scalar = (x: number) => ({ shape: [], data: Float32Array.of(x) });

describe('clipFactor with loss scaling and a previous norm', () => {
  it('matches the reference: unscaled factor, previous norm, the stored norm, and -1 on an overflow', async () => {
    const tol = { abs: 1e-7, rel: 2e-6 };
    for (const [total, scale] of [[4, 1], [4 * 2 ** 20, 1024], [1e-3, 65536], [Infinity, 65536], [NaN, 8]] as const) {
      await compareOp('clipFactor', [scalar(total), scalar(scale)], { maxNorm: 1, unscale: true }, tol);
      await compareOp('clipFactor', [scalar(total), scalar(scale)], { maxNorm: null, unscale: true }, tol);
    }
    for (const [total, prev] of [[4, 1], [4, 3], [0, 0], [0.01, 0.5]] as const) {
      await compareOp('clipFactor', [scalar(total), scalar(prev)], { maxNorm: 0.5, previous: true }, tol);
      await compareOp('clipFactor', [scalar(total), scalar(prev)], { maxNorm: null, previous: true, result: 'norm' }, tol);
    }
  });
});

describe('lomoc train on WebGPU', () => {
  const gpt = ['train', 'models/gpt.ts', '--preset', 'tiny', '--set', 'vocab=256', '--data', 'moby-dick', '--seed', '3', '--lr', '0.05', '--steps', '6', '--json'];
  const resumeIsExact = async (opts: string[]) => {
    const [a, b] = [tmp(), tmp()];
    const straight = await run(...opts, '--save', a);
    expect(straight.stderr).toBe('');
    expect((await run(...opts, '--save', b, '--stop-at', '3')).stderr).toBe('');
    const resumed = await run(...opts, '--save', b, '--resume', b);
    expect(resumed.stderr).toBe('');
    const [x, y] = [loadCheckpoint(join(a, 'checkpoint.safetensors')), loadCheckpoint(join(b, 'checkpoint.safetensors'))];
    expect(Object.keys(y.tensors).sort()).toEqual(Object.keys(x.tensors).sort());
    for (const [name, t] of Object.entries(x.tensors)) expect(Buffer.from(y.tensors[name].data).equals(Buffer.from(t.data)), name).toBe(true);
    expect(JSON.parse(y.metadata.losses)).toEqual(JSON.parse(x.metadata.losses));
    return x;
  };

  it('--loss-scale dynamic (f16, LOMO, clip-norm): overflowed steps skipped, the scale recovers, a resume is exact', async () => {
    const x = await resumeIsExact([...gpt, '--dtype', 'f16', '--optimizer', 'lomo', '--clip-norm', '1', '--loss-scale', 'dynamic', '--loss-scale-interval', '2']);
    // 65536 overflows the f16 seed: steps 1 and 4 are skipped at 65536; 32768 is clean and doubles after 2 clean steps.
    expect(JSON.parse(x.metadata.lossScale)).toEqual({ scale: 65536, cleanSteps: 0, skipped: 2 });
  }, 600_000);

  it('--clip-mode previous (LOMO): its norm is state, and a resume is exact', async () => {
    const x = await resumeIsExact([...gpt, '--optimizer', 'lomo', '--clip-norm', '0.5', '--clip-mode', 'previous']);
    const norm = x.tensors['optimizer.clip.norm'];
    expect(norm.shape).toEqual([]);
    expect(new Float32Array(norm.data.buffer.slice(norm.data.byteOffset, norm.data.byteOffset + 4))[0]).toBeGreaterThan(0);
  }, 600_000);
});
