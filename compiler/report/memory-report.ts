// What the plan means in bytes: for each category the most bytes live at one moment (the
// paper's Table 1 columns), the live bytes at every schedule position, and what is live at the peak.
import { categories, type Category, type MemoryPlan } from '../ir/memory-plan.ts';

export type Bytes = Readonly<Record<Category, number>>;

export interface MemoryReport {
  /** The most bytes of each category live at one moment. */
  readonly most: Bytes;
  /** The plan's peak: what the device allocates. */
  readonly total: number;
  readonly lowerBound: number;
  /** Live bytes by category at each schedule position. */
  readonly timeline: readonly Bytes[];
  /** The position with the most live bytes, and the breakdown there. */
  readonly peakAt: number;
  readonly atPeak: Bytes;
}

const zero = (): Record<Category, number> => ({ params: 0, grads: 0, optimizerState: 0, activations: 0, workspace: 0 });

export function memoryReport(plan: MemoryPlan): MemoryReport {
  const steps = Math.max(plan.steps, 1);
  const delta = Array.from({ length: steps + 1 }, zero);
  for (const b of plan.buffers) {
    delta[b.start][b.category] += b.bytes;
    delta[b.end + 1][b.category] -= b.bytes;
  }
  const timeline: Bytes[] = [];
  const live = zero();
  for (let i = 0; i < steps; i++) {
    for (const c of categories) live[c] += delta[i][c];
    timeline.push({ ...live });
  }
  const most = zero();
  let peakAt = 0;
  let peakBytes = -1;
  timeline.forEach((t, i) => {
    let sum = 0;
    for (const c of categories) {
      most[c] = Math.max(most[c], t[c]);
      sum += t[c];
    }
    if (sum > peakBytes) [peakBytes, peakAt] = [sum, i];
  });
  return { most, total: plan.peak, lowerBound: plan.lowerBound, timeline, peakAt, atPeak: timeline[peakAt] ?? zero() };
}
