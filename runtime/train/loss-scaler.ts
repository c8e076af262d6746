// The host side of dynamic loss scaling (contract/loss-scale.ts has the rule): the scale each
// step reads and, from the factor the step reports back, the next one. Both trainers (WebGPU and
// the reference executor) keep one of these; a checkpoint stores its state.
import { initialLossScale, lossScaleDefaults, nextLossScale, overflowed, type LossScaleSpec, type LossScaleState } from '../../contract/loss-scale.ts';

/** A step's scalars as far as the scaler cares: a scale given for the step (evaluation) bypasses it. */
interface GivenScale {
  readonly lossScale?: number;
}

/** The loss scaling a trainer keeps on the host, for a program compiled with it. */
export interface LossScaler {
  readonly spec: LossScaleSpec;
  /** The scale the next step uses, its clean-step count, the steps skipped so far. */
  readonly state: LossScaleState;
  /** Whether the last step run without a given lossScale overflowed (and skipped its updates). */
  readonly lastOverflow: boolean;
  /** Sets the state (a resume). */
  restore(s: LossScaleState): void;
}

/** The host side of loss scaling: the scale each step reads, and the rule that moves it. */
export function createLossScaler(spec: LossScaleSpec): LossScaler & { scaleFor(hyper: GivenScale): number; after(hyper: GivenScale, factor: number): void } {
  let state = initialLossScale(spec);
  let lastOverflow = false;
  return {
    spec,
    get state() {
      return state;
    },
    get lastOverflow() {
      return lastOverflow;
    },
    restore(s) {
      state = s;
    },
    scaleFor: (hyper) => hyper.lossScale ?? state.scale,
    after(hyper, factor) {
      if (hyper.lossScale !== undefined) return;
      lastOverflow = overflowed(factor);
      state = nextLossScale(spec, state, lastOverflow);
    },
  };
}

/** GradScaler's defaults, for a program compiled with loss scaling and no spec given. */
export const defaultLossScale: LossScaleSpec = { kind: 'dynamic', init: lossScaleDefaults.init, interval: lossScaleDefaults.interval };
