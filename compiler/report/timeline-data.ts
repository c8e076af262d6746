// What the memory timeline page draws, as compact plain data: live bytes by category over the
// schedule (sampled to at most `maxColumns` positions, each column the position with the most bytes
// in its bin, so the peak survives), every buffer's pieces with a label naming the value and where
// the model made it, and what is live at the peak grouped by what made it. Columnar arrays keep
// LLaMA-7B (about 3,000 buffers and 2,600 positions per plan) near 250 KB per plan.
import { fmtLoc } from '../diagnostics.ts';
import { categories, type MemoryPlan } from '../ir/memory-plan.ts';
import type { Graph, Node, Phase, ValueId } from '../ir/types.ts';
import type { MemoryReport } from './memory-report.ts';

export interface TimelineSection {
  readonly optimizer: string;
  readonly step: Graph;
  readonly plan: MemoryPlan;
  readonly report: MemoryReport;
}

export const phases: readonly Phase[] = ['forward', 'backward', 'update', 'recompute', 'norm'];

export interface SectionData {
  readonly optimizer: string;
  readonly steps: number;
  readonly peak: number;
  readonly lowerBound: number;
  readonly peakAt: number;
  /** Bytes live at `peakAt` (unaligned), and the node there: "matmul (backward) at file:line:col". */
  readonly peakLive: number;
  readonly peakNode: string;
  readonly arenas: readonly number[];
  /** Sampled columns: [position, ...live bytes in `categories` order], and each column's node label. */
  readonly live: readonly (readonly number[])[];
  readonly liveNode: readonly number[];
  /** Runs of one phase: [index in `phases`, first position, last position]. */
  readonly phaseRuns: readonly (readonly number[])[];
  /** One entry per buffer; `pieces` holds [y, bytes] pairs, y counted with the arenas stacked. */
  readonly buffers: {
    readonly start: readonly number[];
    readonly end: readonly number[];
    readonly category: readonly number[];
    readonly bytes: readonly number[];
    readonly name: readonly string[];
    readonly what: readonly number[];
    readonly pieces: readonly (readonly number[])[];
  };
  /** Deduplicated label texts that `liveNode` and `buffers.what` index. */
  readonly labels: readonly string[];
}

export interface PeakGroup {
  readonly category: string;
  readonly what: string;
  readonly count: number;
  readonly bytes: number;
}

const maxColumns = 1600;

function producers(g: Graph): Map<ValueId, Node> {
  const made = new Map<ValueId, Node>();
  for (const n of g.nodes) for (const o of n.outputs) made.set(o, n);
  return made;
}

/** "matmul [8, 512, 11008] f16 at models/llama.ts:19:3": the op (or role) that made the value. */
function describeValue(g: Graph, made: Map<ValueId, Node>, v: ValueId): string {
  const val = g.values[v];
  const n = made.get(v);
  // Optimizer state is named `m.<param>`, `v.<param>`, `master.<param>`: say which kind.
  const kind = val.role === 'optstate' && val.name ? ` ${val.name.slice(0, val.name.indexOf('.'))}` : '';
  const again = n?.phase === 'recompute' ? ' (recomputed)' : '';
  return `${n ? n.op : val.role}${kind}${again} [${val.shape.join(', ')}] ${val.dtype} at ${fmtLoc(val.loc)}`;
}

export function sectionData(s: TimelineSection): SectionData {
  const { step: g, plan, report } = s;
  const labels: string[] = [];
  const labelIndex = new Map<string, number>();
  const label = (text: string) => {
    if (!labelIndex.has(text)) labelIndex.set(text, labels.push(text) - 1);
    return labelIndex.get(text)!;
  };
  const made = producers(g);
  const nodeLabel = (i: number) => {
    const n = g.nodes[i];
    return n ? `${n.op} (${n.phase}) at ${fmtLoc(n.loc)}` : '';
  };

  const total = (i: number) => categories.reduce((a, c) => a + report.timeline[i][c], 0);
  const bin = Math.max(1, Math.ceil(report.timeline.length / maxColumns));
  const live: number[][] = [];
  const liveNode: number[] = [];
  for (let b = 0; b < report.timeline.length; b += bin) {
    let best = b;
    for (let i = b + 1; i < Math.min(b + bin, report.timeline.length); i++) if (total(i) > total(best)) best = i;
    live.push([best, ...categories.map((c) => report.timeline[best][c])]);
    liveNode.push(label(nodeLabel(best)));
  }

  const phaseRuns: number[][] = [];
  g.nodes.forEach((n, i) => {
    const p = phases.indexOf(n.phase);
    const last = phaseRuns[phaseRuns.length - 1];
    if (last && last[0] === p && last[2] === i - 1) last[2] = i;
    else phaseRuns.push([p, i, i]);
  });

  const base = plan.arenas.map((_, a) => plan.arenas.slice(0, a).reduce((x, y) => x + y, 0));
  const buffers = { start: [] as number[], end: [] as number[], category: [] as number[], bytes: [] as number[],
    name: [] as string[], what: [] as number[], pieces: [] as number[][] };
  for (const b of plan.buffers) {
    buffers.start.push(b.start);
    buffers.end.push(b.end);
    buffers.category.push(categories.indexOf(b.category));
    buffers.bytes.push(b.bytes);
    buffers.pieces.push(b.pieces.flatMap((p) => [base[p.arena] + p.offset, p.bytes]));
    if (b.values.length === 0) {
      // A kernel's scratch (row statistics and the like), live while its kernel runs.
      buffers.name.push('scratch');
      buffers.what.push(label(`scratch of ${nodeLabel(b.start)}`));
      continue;
    }
    const first = b.values[0];
    const named = g.values[first].name;
    const shared = b.values.length > 1 ? ` (+${b.values.length - 1} sharing it)` : '';
    const block = made.get(first)?.block;
    const inBlock = block !== undefined && g.blocks?.[block] ? ` in block ${g.blocks[block].name}` : '';
    buffers.name.push(`${named ? `'${named}'` : `%${first}`}${inBlock}${shared}`);
    buffers.what.push(label(describeValue(g, made, first)));
  }

  return {
    optimizer: s.optimizer,
    steps: plan.steps,
    peak: plan.peak,
    lowerBound: plan.lowerBound,
    peakAt: report.peakAt,
    peakLive: total(report.peakAt),
    peakNode: nodeLabel(report.peakAt),
    arenas: plan.arenas,
    live,
    liveNode,
    phaseRuns,
    buffers,
    labels,
  };
}

/** What is live at the peak, grouped by category and by what made it, largest first. */
export function peakGroups(s: TimelineSection): PeakGroup[] {
  const { step: g, plan, report } = s;
  const made = producers(g);
  const groups = new Map<string, { category: string; what: string; count: number; bytes: number }>();
  for (const b of plan.buffers) {
    if (b.start > report.peakAt || b.end < report.peakAt) continue;
    const what = b.values.length ? describeValue(g, made, b.values[0]) : 'kernel scratch';
    const key = `${b.category} ${what}`;
    const e = groups.get(key) ?? { category: b.category, what, count: 0, bytes: 0 };
    e.count++;
    e.bytes += b.bytes;
    groups.set(key, e);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes || a.what.localeCompare(b.what));
}
