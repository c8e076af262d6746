// What a training checkpoint records about its run, the same in Node (`lomoc train`) and in a page,
// so that a checkpoint saved in one resumes in the other: the format tag, the prefix of optimizer
// state tensors, and the run's identity, which a resumed run must share for the continuation to be
// exact.

export const checkpointFormat = 'lomoc-checkpoint/1';
/** Optimizer state tensors are stored as `optimizer.<state name>` beside the params. */
export const statePrefix = 'optimizer.';

export interface RunFields {
  readonly model: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly optimizer: string;
  /** The activation-checkpointing policy as recorded (e.g. 'none', 'blocks'). */
  readonly checkpoint: string;
  readonly clipNorm?: number | null;
  readonly clipValue?: number | null;
  readonly dtype?: string;
  readonly lr: number;
  readonly schedule: string;
  readonly warmup: number;
  readonly weightDecay: number;
  readonly data: string;
  readonly tokenizer: string;
  readonly seed: number;
  readonly steps: number;
  /** The optimizer's hyper-parameters given with --opt (absent or empty: the descriptor's defaults). */
  readonly hyper?: Readonly<Record<string, number>>;
  /** --rounding, only where it overrode the default. */
  readonly rounding?: string;
  /** --accumulate K (micro-batches per update); absent or 1: none. */
  readonly accumulate?: number;
  /** --clip-mode, only where not exact. */
  readonly clipMode?: string;
  /** --loss-scale as JSON text, only where given. */
  readonly lossScale?: string;
}

/** The identity of a run: every field a resumed run must share with its checkpoint. */
export function runIdentity(r: RunFields): Record<string, string> {
  return {
    model: r.model, config: JSON.stringify(r.config), optimizer: r.optimizer, checkpoint: r.checkpoint,
    // Only when --opt was given, so checkpoints written before it existed still resume.
    ...(r.hyper && Object.keys(r.hyper).length ? { opt: JSON.stringify(r.hyper) } : {}),
    'clip-norm': String(r.clipNorm ?? ''), 'clip-value': String(r.clipValue ?? ''), lr: String(r.lr), 'lr-schedule': r.schedule,
    // Absent for f32, so checkpoints written before --dtype existed still resume.
    ...(r.dtype && r.dtype !== 'f32' ? { dtype: r.dtype } : {}),
    'weight-decay': String(r.weightDecay), data: r.data, tokenizer: r.tokenizer, seed: String(r.seed),
    // A decaying schedule runs over --steps; a constant one may be resumed to train for longer.
    ...(r.schedule === 'constant' ? {} : { steps: String(r.steps) }),
    // Absent when 0, so checkpoints written before --warmup existed still resume.
    ...(r.warmup ? { warmup: String(r.warmup) } : {}),
    // Only where --rounding overrode the default, so checkpoints written before it existed still resume.
    ...(r.rounding ? { rounding: r.rounding } : {}),
    // Only above 1, so checkpoints written before --accumulate existed still resume.
    ...(r.accumulate && r.accumulate > 1 ? { accumulate: String(r.accumulate) } : {}),
    ...(r.clipMode ? { 'clip-mode': r.clipMode } : {}),
    ...(r.lossScale ? { 'loss-scale': r.lossScale } : {}),
  };
}

/** Each field where `ours` differs from the checkpoint's identity, as "key ours (the checkpoint's: theirs)". */
export function identityDiff(ours: Readonly<Record<string, string>>, theirs: Readonly<Record<string, string>>): string[] {
  return [...new Set([...Object.keys(ours), ...Object.keys(theirs)])]
    .filter((k) => theirs[k] !== ours[k])
    .map((k) => `${k} ${ours[k] || '(none)'} (the checkpoint's: ${theirs[k] || '(none)'})`);
}
