// The reference executor (compiler/reference/) behind the same face as the WebGPU trainer, so
// `lomoc run` and `lomoc train` take `--device cpu` with every other option unchanged. Params start
// from the same seeded inits (runtime/webgpu/init.ts), optimizer state at zero (master copies as
// the params), as createTrainer does; each step executes the whole scheduled graph in f32.
import type { Graph } from '../compiler/ir/types.ts';
import { execute } from '../compiler/reference/execute.ts';
import type { HostTensor } from '../compiler/reference/tensor.ts';
import { numel } from '../contract/units.ts';
import { initialParams } from '../runtime/webgpu/init.ts';
import type { HostArray } from '../runtime/webgpu/host-data.ts';
import type { Hyper, Trainer } from '../runtime/webgpu/trainer.ts';
import { createLossScaler, defaultLossScale } from '../runtime/train/loss-scaler.ts';
import { gradFactorOutput, isHyperInput } from '../contract/program.ts';
import type { LossScaleSpec } from '../contract/loss-scale.ts';

/** What `run` and `train` use of a trainer, on either device. deviceBytes is null off the device. */
export type StepRunner = Pick<Trainer, 'step' | 'readParams' | 'readState' | 'writeParams' | 'writeState' | 'planBytes' | 'stepMs' | 'setupMs' | 'destroy' | 'lossScaler'> & {
  readonly deviceBytes: number | null;
};

export interface SlotDecl {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The graph's params, optimizer state and data inputs as the trainer's slots name them. */
export function graphSlots(g: Graph) {
  return {
    params: g.params.map((p) => ({ name: p.name, shape: g.values[p.value].shape, init: p.init })),
    state: (g.state ?? []).map((s) => ({ name: s.name, shape: g.values[s.value].shape })),
    inputs: g.inputs.filter((d) => !isHyperInput(d.name)).map((d) => ({ name: d.name, shape: g.values[d.value].shape, dtype: g.values[d.value].dtype })),
  };
}

export const referenceAdapter = 'cpu: reference executor (f32, one node at a time)';

/** A trainer that runs `g` (a scheduled training step) on the reference executor. */
export function referenceTrainer(g: Graph, seed: number, planBytes: number, lossScale?: LossScaleSpec): StepRunner {
  const t0 = performance.now();
  const factor = g.outputs?.[gradFactorOutput];
  const scaler = factor === undefined ? undefined : createLossScaler(lossScale ?? defaultLossScale);
  const slots = graphSlots(g);
  const init = initialParams({ params: slots.params }, seed);
  const tensor = (shape: readonly number[], data: ArrayLike<number>): HostTensor => ({ shape, data: Float32Array.from(data) });
  let params: Record<string, HostTensor> = Object.fromEntries(slots.params.map((p) => [p.name, tensor(p.shape, init[p.name])]));
  let state: Record<string, HostTensor> = Object.fromEntries(
    (g.state ?? []).map((s, i) => [s.name, s.name.startsWith('master.') ? params[s.param] : tensor(slots.state[i].shape, new Float32Array(numel(slots.state[i].shape)))]),
  );
  const stepMs: number[] = [];
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float64Array.of(x) });
  const read = (ts: Record<string, HostTensor>) => Object.fromEntries(Object.entries(ts).map(([k, t]) => [k, Float32Array.from(t.data)]));
  const write = (ts: Record<string, HostTensor>, from: Readonly<Record<string, ArrayLike<number>>>) => {
    const out = { ...ts };
    for (const [k, v] of Object.entries(from)) if (out[k]) out[k] = tensor(out[k].shape, v);
    return out;
  };
  const setupMs = performance.now() - t0;
  return {
    async step(batch: Readonly<Record<string, HostArray>>, hyper: Hyper) {
      const s0 = performance.now();
      const inputs: Record<string, HostTensor> = {
        lr: scalar(hyper.lr), weightDecay: scalar(hyper.weightDecay), step: scalar(hyper.step ?? stepMs.length + 1), lossScale: scalar(scaler?.scaleFor(hyper) ?? 1),
      };
      for (const d of slots.inputs) inputs[d.name] = { shape: d.shape, data: batch[d.name] };
      const run = execute(g, { inputs, params, state }, 'f32');
      params = Object.fromEntries(Object.entries(g.updates!).map(([name, v]) => [name, run.values[v]!]));
      state = Object.fromEntries((g.state ?? []).map((s) => [s.name, run.values[s.next]!]));
      if (scaler) scaler.after(hyper, run.values[factor!]!.data[0]);
      stepMs.push(performance.now() - s0);
      return run.loss;
    },
    readParams: async () => read(params),
    readState: async () => read(state),
    writeParams: (p) => void (params = write(params, p)),
    writeState: (s) => void (state = write(state, s)),
    deviceBytes: null,
    ...(scaler ? { lossScaler: scaler } : {}),
    planBytes,
    stepMs,
    setupMs,
    destroy: () => {},
  };
}
