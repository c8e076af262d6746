// The autodiff oracle: central finite differences on the reference executor in f64.
// checkGradients compares autodiff's gradient with FD along random directions through all params
// at once (catches any wrong coordinate) and at a few single coordinates (catches sign and
// scale errors that a random direction could average away).
import { differentiate } from '../../compiler/autodiff/index.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { verify } from '../../compiler/ir/verify.ts';
import { execute, type Feeds } from '../../compiler/reference/execute.ts';
import { mulberry32 } from '../../compiler/reference/random.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';

export interface GradcheckResult {
  readonly ok: boolean;
  readonly worst: { readonly what: string; readonly fd: number; readonly ad: number; readonly err: number };
}

function perturbed(params: Feeds['params'], dir: Record<string, Float64Array>, eps: number): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(params)) {
    const d = new Float64Array(t.data.length);
    for (let i = 0; i < d.length; i++) d[i] = t.data[i] + eps * dir[name][i];
    out[name] = { shape: t.shape, data: d };
  }
  return out;
}

/** Runs autodiff on `g` and checks its gradients against central differences of the loss. */
export function checkGradients(
  g: Graph,
  feeds: Feeds,
  opts: { seed?: number; directions?: number; coords?: number; eps?: number; rtol?: number; atol?: number } = {},
): GradcheckResult {
  const { seed = 1, directions = 2, coords = 3, eps = 1e-6, rtol = 1e-5, atol = 1e-7 } = opts;
  const dg = verify(differentiate(g), 'differentiate');
  const run = execute(dg, feeds, 'f64');
  const grads: Record<string, HostTensor> = {};
  for (const p of g.params) grads[p.name] = run.values[dg.grads![p.name]]!;

  const rand = mulberry32(seed);
  const lossAt = (dir: Record<string, Float64Array>, e: number) =>
    execute(g, { ...feeds, params: perturbed(feeds.params, dir, e) }, 'f64').loss;
  let worst = { what: 'none', fd: 0, ad: 0, err: -Infinity };
  const compare = (what: string, dir: Record<string, Float64Array>) => {
    const fd = (lossAt(dir, eps) - lossAt(dir, -eps)) / (2 * eps);
    let ad = 0;
    for (const [name, d] of Object.entries(dir)) for (let i = 0; i < d.length; i++) ad += d[i] * grads[name].data[i];
    const err = Math.abs(fd - ad) - (atol + rtol * Math.max(Math.abs(fd), Math.abs(ad)));
    if (err > worst.err) worst = { what, fd, ad, err };
  };
  const zeros = () => Object.fromEntries(g.params.map((p) => [p.name, new Float64Array(feeds.params[p.name].data.length)]));
  for (let k = 0; k < directions; k++) {
    const dir = zeros();
    for (const d of Object.values(dir)) for (let i = 0; i < d.length; i++) d[i] = rand() * 2 - 1;
    compare(`random direction ${k}`, dir);
  }
  for (const p of g.params) {
    for (let k = 0; k < coords; k++) {
      const dir = zeros();
      const i = Math.floor(rand() * dir[p.name].length);
      dir[p.name][i] = 1;
      compare(`${p.name}[${i}]`, dir);
    }
  }
  return { ok: worst.err <= 0, worst };
}
