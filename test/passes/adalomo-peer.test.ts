// AdaLomo's update as lomoc compiles it (one optimizerUpdate node on the reference executor, f64)
// equals the published optimizer's update written in PyTorch (test/peers/adalomo_peer.py, after
// OpenLMLab/LOMO's lomo_optim/adalomo.py), on random shapes (vectors, matrices, rank 3), states,
// steps, weight decay and hyper-parameters. Needs Debian's python3-torch for /usr/bin/python3.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ValueId } from '../../compiler/ir/types.ts';
import { adalomoRule } from '../../compiler/optimizers/adalomo.ts';
import { matrixShape } from '../../compiler/optimizers/descriptor.ts';
import { updateAttrs, updateInputs } from '../../compiler/optimizers/update-layout.ts';
import { execute } from '../../compiler/reference/execute.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import { loc, TestGraph } from '../reference/graphs.ts';

interface Job {
  readonly shape: number[];
  readonly w: number[];
  readonly g: number[];
  readonly row: number[];
  readonly col: number[];
  readonly step: number;
  readonly lr: number;
  readonly wd: number;
  readonly eps1: number;
  readonly eps2: number;
  readonly clipThreshold: number;
  readonly decayRate: number;
}
interface Out { readonly w: number[]; readonly row: number[] | null; readonly col: number[] }

const size = fc.constantFrom(1, 2, 3, 5, 8, 13, 33);
const normal = fc.double({ min: -3, max: 3, noNaN: true });
const job: fc.Arbitrary<Job> = fc
  .record({
    shape: fc.oneof(fc.array(size, { minLength: 1, maxLength: 1 }), fc.array(size, { minLength: 2, maxLength: 3 })),
    step: fc.constantFrom(1, 2, 5, 100),
    lr: fc.constantFrom(1e-3, 0.05),
    wd: fc.constantFrom(0, 0.1),
    hyper: fc.constantFrom(
      { eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, decayRate: -0.8 },
      { eps1: 1e-20, eps2: 0.5, clipThreshold: 0.05, decayRate: -0.5 },
    ),
    zeroRows: fc.boolean(),
    seed: fc.integer(),
  })
  .chain(({ shape, hyper, zeroRows, ...rest }) => {
    const { rows, cols } = matrixShape(shape);
    const n = rows * cols;
    const moment = (k: number) => fc.array(fc.double({ min: 1e-6, max: 2, noNaN: true }), { minLength: k, maxLength: k });
    return fc.record({ w: fc.array(normal, { minLength: n, maxLength: n }), g: fc.array(normal, { minLength: n, maxLength: n }), row: moment(rows), col: moment(cols) })
      .map((t) => ({ ...rest, ...hyper, shape, ...t, g: zeroRows ? t.g.map((x, k) => (Math.floor(k / cols) % 2 ? x : 0)) : t.g }));
  });

/** One update node run on the reference executor in f64. */
function lomocUpdate(j: Job): { w: ArrayLike<number>; row: ArrayLike<number>; col: ArrayLike<number> } {
  const t = new TestGraph('adalomo');
  const p = t.param('w', j.shape, { kind: 'zeros' });
  const { rows, cols } = matrixShape(j.shape);
  const attrs = updateAttrs(adalomoRule, { clipValue: null, scaled: false, master: false, hyper: { eps1: j.eps1, eps2: j.eps2, clipThreshold: j.clipThreshold, decayRate: j.decayRate } });
  const named: Record<string, ValueId> = {
    p, g: t.input('g', j.shape), lr: t.input('lr', []), wd: t.input('weightDecay', []), step: t.input('step', []),
    row: t.input('row', [rows]), col: t.input('col', [cols]),
  };
  const outs = t.b.node('optimizerUpdate', updateInputs(attrs, named), attrs, loc, 'update', ['update', 'optstate', 'optstate']);
  const g = { ...t.finish(t.input('zero', [])), updates: { w: outs[0] } };
  const tensor = (shape: readonly number[], data: readonly number[]): HostTensor => ({ shape, data: Float64Array.from(data) });
  const s = (x: number) => tensor([], [x]);
  const run = execute(g, {
    inputs: { g: tensor(j.shape, j.g), lr: s(j.lr), weightDecay: s(j.wd), step: s(j.step), row: tensor([rows], j.row), col: tensor([cols], j.col), zero: s(0) },
    params: { w: tensor(j.shape, j.w) },
  }, 'f64');
  const [w, row, col] = outs.map((o) => run.values[o]!.data);
  return { w, row, col };
}

function relErr(a: ArrayLike<number>, b: readonly number[]): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return s === 0 ? d : d / s;
}

describe('AdaLomo against the published optimizer in PyTorch', () => {
  it('each update, its row and column moments (its full moment for a vector) agree within 1e-12', async () => {
    const jobs = fc.sample(job, { numRuns: 60, seed: 20231016 });
    const dir = mkdtempSync(path.join(tmpdir(), 'lomoc-adalomo-peer-'));
    writeFileSync(path.join(dir, 'jobs.json'), JSON.stringify(jobs));
    const run = promisify(execFile);
    await run('/usr/bin/python3', [path.join(import.meta.dirname, '../peers/adalomo_peer.py'), path.join(dir, 'jobs.json'), path.join(dir, 'out.json')], { maxBuffer: 1 << 24 });
    const peer = JSON.parse(readFileSync(path.join(dir, 'out.json'), 'utf8')) as Out[];
    jobs.forEach((j, k) => {
      const mine = lomocUpdate(j);
      const what = `job ${k}: shape ${JSON.stringify(j.shape)} step ${j.step}`;
      expect(relErr(mine.w, peer[k].w), `${what}: w`).toBeLessThan(1e-12);
      expect(relErr(mine.col, peer[k].col), `${what}: col`).toBeLessThan(1e-12);
      if (peer[k].row) expect(relErr(mine.row, peer[k].row!), `${what}: row`).toBeLessThan(1e-12);
    });
  }, 60_000);
});
