// A compiled training step run for a few steps on WebGPU and on the reference executor (f32,
// every node in the step's order), from the same initial params and the same batches, feeding
// each side's updated params and optimizer state into its next step. `stepMismatches` is the
// checker: empty when the two agree within the stated tolerance.
import type { Graph } from '../../compiler/ir/types.ts';
import type { StepProgram } from '../../contract/program.ts';
import type { HostTensor } from '../../compiler/reference/tensor.ts';
import type { Acquired } from '../../runtime/webgpu/device.ts';
import { randomBatch } from '../../runtime/webgpu/init.ts';
import { createTrainer, isHyperInput } from '../../runtime/webgpu/trainer.ts';
import { plainStep } from '../support/step.ts';

export interface Run {
  readonly losses: number[];
  readonly params: Record<string, ArrayLike<number>>;
  readonly state: Record<string, ArrayLike<number>>;
}

export interface Compared {
  readonly gpu: Run;
  readonly ref: Run;
  readonly arenaBytes: number;
}

export interface CompareOptions {
  readonly steps?: number;
  readonly lr?: number;
  readonly weightDecay?: number;
  readonly seed?: number;
  /** Exclusive bound of each i32 input's ids. */
  readonly vocab: Readonly<Record<string, number>>;
}

const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });

export async function runBoth(acq: Acquired, c: { program: StepProgram; step: Graph }, o: CompareOptions): Promise<Compared> {
  const { steps = 3, lr = 0.1, weightDecay = 0.01, seed = 1 } = o;
  const t = await createTrainer({ device: acq, program: c.program, seed });
  try {
    const shapes = new Map([...c.program.params, ...c.program.state].map((s) => [s.name, s.shape]));
    const host = (rec: Record<string, ArrayLike<number>>): Record<string, HostTensor> =>
      Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, { shape: shapes.get(k)!, data: Float32Array.from(v) }]));
    const start = await t.readParams();
    const zeros = (s: { shape: readonly number[] }) => new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    let params = host(start);
    let state = host(Object.fromEntries(c.program.state.map((s) => [s.name, s.name.startsWith('master.') ? start[s.name.slice(7)] : zeros(s)])));
    // Every declared input for the reference; the program stores only those some kernel reads.
    const data = c.step.inputs.filter((d) => !isHyperInput(d.name)).map((d) => ({ name: d.name, shape: c.step.values[d.value].shape, dtype: c.step.values[d.value].dtype }));
    const stored = new Set(c.program.inputs.map((s) => s.name));
    const gpuLosses: number[] = [];
    const refLosses: number[] = [];
    for (let k = 1; k <= steps; k++) {
      const batch = randomBatch(data, o.vocab, seed * 1000 + k);
      gpuLosses.push((await t.step(Object.fromEntries(Object.entries(batch).filter(([k]) => stored.has(k))), { lr, weightDecay }))!);
      const inputs = Object.fromEntries(data.map((s) => [s.name, { shape: s.shape, data: batch[s.name] }]));
      const r = plainStep(c.step, { inputs: { ...inputs, lr: scalar(lr), weightDecay: scalar(weightDecay), step: scalar(k) }, params, state });
      refLosses.push(r.loss);
      params = r.params;
      state = r.state;
    }
    const data_ = (rec: Record<string, HostTensor>) => Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, v.data]));
    return {
      gpu: { losses: gpuLosses, params: await t.readParams(), state: await t.readState() },
      ref: { losses: refLosses, params: data_(params), state: data_(state) },
      arenaBytes: t.arenaBytes,
    };
  } finally {
    t.destroy();
  }
}

/**
 * The tolerance, stated once: each loss within 1e-4 relative; each param and state element within
 * `rel` of its tensor's largest magnitude. The GPU sums in f32 where the reference sums in f64 and
 * rounds once (GPU reductions differ by about 4e-7 relative), which after 3 steps leaves params
 * about 1e-6 of their scale apart under SGD and LOMO: `rel` 1e-4 (defaultTolerance).
 * AdamW divides each gradient by its own RMS, which turns the rounding of small, cancelling
 * gradients into visible steps: `rel` 1e-3 (measured: llama tiny, clip-norm 0.5, lr 0.1 leaves
 * the GPU 7e-4 and the f32 reference 7e-5 away from an f64 run). Where the true gradient is zero
 * and only rounding noise is left (sqrt(v̂) < 1e-6, e.g. attention's key bias) AdamW takes a
 * full step of noise: there the two sides may differ by up to lr per step.
 */
export const toleranceFor = (optimizer: string): number => (optimizer === 'adamw' ? 1e-3 : 1e-4);

/**
 * `rel`: of each tensor's largest |reference|; `lossRel`: of max(1, |loss|); `noiseFloor`: AdamW
 * moves a param by about lr whatever its gradient's size, so where the gradient's RMS is below
 * this the two sides' rounding may flip its sign and the param may differ by up to 2 lr a step.
 * `noiseRel`: the same, relative to the tensor's largest gradient RMS. With f16 storage a gradient
 * is a sum of f16-rounded terms, so its rounding noise scales with the tensor's largest gradients
 * (measured: llama tiny's tok_embeddings, gradients up to 6.5, differ by 2 f16 steps, 0.0078,
 * between the sides, where one element's f32 gradient is 0.004). `relOf`: `rel` for the named
 * tensors (params, or state by its own name) where a test states a wider bound and why.
 */
export function stepMismatches(
  c: Compared,
  o: { rel?: number; relOf?: Readonly<Record<string, number>>; lossRel?: number; noiseFloor?: number; noiseRel?: number; lr?: number; steps?: number } = {},
): string[] {
  const { rel = 1e-4, lossRel = 1e-4, noiseFloor = 1e-6, noiseRel = 0, lr = 0.1, steps = 3 } = o;
  const out: string[] = [];
  c.gpu.losses.forEach((l, i) => {
    const want = c.ref.losses[i];
    if (!(Math.abs(l - want) <= lossRel * Math.max(1, Math.abs(want)))) out.push(`loss of step ${i + 1}: ${l} on the GPU, ${want} on the reference`);
  });
  const floors = new Map<string, number>();
  const floorOf = (name: string, v: ArrayLike<number>) => {
    if (!floors.has(name)) floors.set(name, Math.max(noiseFloor, noiseRel * Math.sqrt(Math.max(0, ...Array.from(v)) / (1 - 0.999 ** steps))));
    return floors.get(name)!;
  };
  const noisy = (name: string, i: number) => {
    const v = c.ref.state[`v.${name}`];
    return v !== undefined && Math.sqrt(v[i] / (1 - 0.999 ** steps)) < floorOf(name, v);
  };
  for (const [kind, gpu, ref] of [['param', c.gpu.params, c.ref.params], ['state', c.gpu.state, c.ref.state]] as const) {
    for (const [name, want] of Object.entries(ref)) {
      const got = gpu[name];
      if (!got || got.length !== want.length) {
        out.push(`${kind} ${name}: missing or of another size on the GPU`);
        continue;
      }
      let scale = 0;
      for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
      let worst = -1;
      let excess = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i] - want[i]);
        const param = kind === 'param' ? name : name.startsWith('master.') ? name.slice(7) : undefined;
        const allowed = param !== undefined && noisy(param, i) ? 2 * lr * steps * 1.01 + 1e-6 : (o.relOf?.[name] ?? rel) * scale + 1e-7;
        if (!(d <= allowed) && (worst < 0 || d / allowed > excess)) [worst, excess] = [i, d / allowed];
      }
      if (worst >= 0) out.push(`${kind} ${name}[${worst}]: ${got[worst]} on the GPU, ${want[worst]} on the reference (${excess.toFixed(1)}x the tolerance)`);
    }
  }
  return out;
}
