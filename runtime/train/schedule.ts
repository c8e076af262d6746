// The learning-rate schedule of a training run, the same in Node (`lomoc train`) and in a page.

export type Schedule = 'constant' | 'linear' | 'cosine';
export const schedules: readonly Schedule[] = ['constant', 'linear', 'cosine'];

export interface ScheduleOptions {
  readonly lr: number;
  readonly schedule: Schedule;
  readonly steps: number;
  readonly warmup?: number;
}

/**
 * The learning rate of step s (1-based) of n: with warmup w, lr * s / w for s <= w (reaching the
 * peak at step w), then the schedule over the remaining n - w steps as if they were the whole run.
 */
export function lrAt(req: ScheduleOptions, s: number): number {
  const w = req.warmup ?? 0;
  if (s <= w) return s === w ? req.lr : (req.lr * s) / w; // lr * w / w may round off lr
  const t = (s - 1 - w) / (req.steps - w);
  if (req.schedule === 'linear') return req.lr * (1 - t);
  if (req.schedule === 'cosine') return req.lr * 0.5 * (1 + Math.cos(Math.PI * t));
  return req.lr;
}
