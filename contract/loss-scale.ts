// Dynamic loss scaling for f16 storage, as host-side state: PyTorch's GradScaler rule (start at
// 2^16, halve and skip the step on an overflow, double after `interval` clean steps in a row). The
// LOMO reference code never raises the scale again; here it recovers. The compiled step reads the
// scale as its `lossScale` input and reports back the factor it applied (negative: it overflowed
// and skipped every update), so the rule below is all the host does. Pure functions of plain data:
// the trainer keeps the state, a checkpoint stores it, a resume restores it exactly.

/** `--loss-scale dynamic` (with `--loss-scale-interval`), or a fixed scale N. */
export type LossScaleSpec = { readonly kind: 'dynamic'; readonly init: number; readonly interval: number } | { readonly kind: 'static'; readonly scale: number };

/**
 * The spec as a run's identity records it (`loss-scale`), keys in a fixed order: the same text
 * whether the spec came from the command line, a bundle's manifest or a page.
 */
export const lossScaleText = (spec: LossScaleSpec): string =>
  JSON.stringify(spec.kind === 'dynamic' ? { kind: spec.kind, init: spec.init, interval: spec.interval } : { kind: spec.kind, scale: spec.scale });

/** GradScaler's defaults. */
export const lossScaleDefaults = { init: 65536, interval: 2000, growth: 2, backoff: 0.5 } as const;

export interface LossScaleState {
  readonly scale: number;
  /** Clean steps since the last overflow or growth. */
  readonly cleanSteps: number;
  /** Steps skipped for an overflow, in the whole run. */
  readonly skipped: number;
}

export const initialLossScale = (spec: LossScaleSpec): LossScaleState => ({
  scale: spec.kind === 'dynamic' ? spec.init : spec.scale,
  cleanSteps: 0,
  skipped: 0,
});

/** The state after a step that did (`overflow`) or did not overflow. A fixed scale never changes. */
export function nextLossScale(spec: LossScaleSpec, s: LossScaleState, overflow: boolean): LossScaleState {
  if (spec.kind === 'static') return { ...s, cleanSteps: overflow ? 0 : s.cleanSteps + 1, skipped: s.skipped + (overflow ? 1 : 0) };
  if (overflow) return { scale: s.scale * lossScaleDefaults.backoff, cleanSteps: 0, skipped: s.skipped + 1 };
  const clean = s.cleanSteps + 1;
  return clean >= spec.interval ? { scale: s.scale * lossScaleDefaults.growth, cleanSteps: 0, skipped: s.skipped } : { ...s, cleanSteps: clean };
}

/** A step overflowed when the factor it read back is negative (or not a number at all). */
export const overflowed = (factor: number): boolean => !(factor >= 0);

/** The state as a checkpoint's metadata stores it, and back; undefined when `v` is not one. */
export function lossScaleStateOf(v: unknown): LossScaleState | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { scale, cleanSteps, skipped } = v as Record<string, unknown>;
  const whole = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale) || !whole(cleanSteps) || !whole(skipped)) return undefined;
  return { scale, cleanSteps, skipped };
}
