// Fused linear cross-entropy: the LM head and its loss as one op, so the [tokens, vocab] logits
// (and their gradient) are never stored; the kernels visit the vocabulary a chunk at a time.
// Requires: a forward graph (not yet differentiated).
// Ensures: every crossEntropy whose logits are made by matmul(h, W), with W a rank-2 weight in
//   [D, V] or (transB) [V, D] layout and h not transposed, and read by nothing else (the `output`
//   mark of the inference program is not a reader) becomes one linearCrossEntropy node in the
//   crossEntropy's place, making the same loss value and a new f32 lse value; the matmul is gone,
//   the logits value is made by no node (so it has no storage) and leaves `outputs`. The loss and
//   every gradient equal matmul + crossEntropy's up to f32 rounding (the logits are not rounded to
//   storage). Returns its input when nothing matches; a LomocError when even a one-column
//   workspace, or the per-token buffers the kernels bind whole, exceed one storage binding.
//   Cost: O(nodes + values).
import { fmtBytes } from '../../contract/units.ts';
import { LomocError } from '../diagnostics.ts';
import { users } from '../ir/analysis.ts';
import { numel } from '../ir/shape.ts';
import { defaultPlanOptions } from './plan-memory.ts';
import type { Graph, Node, NodeOf, Value } from '../ir/types.ts';

export interface FuseLossOptions {
  /** Vocabulary columns per pass (clamped to the vocabulary); default from `workspaceBytes`. */
  readonly chunk?: number;
  /** The most bytes one [tokens, chunk] f32 logits workspace may take (default 32 MiB, within `maxBindingBytes`). */
  readonly workspaceBytes?: number;
  /** One storage binding's limit (the plan's); the workspace is bound whole. */
  readonly maxBindingBytes?: number;
}

/**
 * 32 MiB: LLaMA-7B's 4096 tokens get 2048 columns a pass (16 passes over 32000), a logits chunk
 * large enough to keep a GPU's matmul busy, at an eighth of the logits' 250 MiB in f16.
 */
export const defaultWorkspaceBytes = 32 * 2 ** 20;

/**
 * Columns per pass: the widest workspace within the budget, then evened out over the passes it
 * takes, then (unless `chunk` is given) up to a multiple of 4 where that still fits, so that the
 * kernels read an untied [D, V] head's chunks as vec4s (emit-linear-ce.ts).
 */
export function lossChunk(tokens: number, vocab: number, opts: FuseLossOptions = {}): number {
  if (vocab <= 1) return 1;
  const budget = Math.min(opts.workspaceBytes ?? defaultWorkspaceBytes, opts.maxBindingBytes ?? Infinity);
  const widest = opts.chunk ?? Math.floor(budget / (Math.max(1, tokens) * 4));
  const most = Math.max(1, Math.min(vocab, widest));
  const even = Math.ceil(vocab / Math.ceil(vocab / most));
  const four = Math.ceil(even / 4) * 4;
  return opts.chunk === undefined && four <= most ? four : even;
}

/**
 * The kernels bind whole: a [tokens, 1] f32 workspace at least, (max, sum, target logit) per token,
 * and with 16-bit storage an f32 [tokens, d] sum of dh (emit-linear-ce.ts's scratch).
 */
function checkBinding(ce: Node, tokens: number, halfWidth: number, limit: number): void {
  const need = Math.max(tokens * 12, tokens * halfWidth * 4);
  if (need > limit)
    throw new LomocError(
      `linearCrossEntropy: the fused loss binds ${fmtBytes(need)} per kernel for ${tokens} tokens, more than one storage binding's ${fmtBytes(limit)}; the smallest workable binding limit is ${need} bytes, or use --fuse-loss off`,
      ce.loc,
    );
}

export function fuseLinearCrossEntropy(g: Graph, opts: FuseLossOptions = {}): Graph {
  const readers = users(g);
  const makers = new Map<number, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => makers.set(o, i)));
  const values: Value[] = [...g.values];
  const fusedAt = new Map<number, Node>();
  const gone = new Set<number>();
  const dropped = new Set<number>();
  for (const ce of g.nodes) {
    if (ce.op !== 'crossEntropy') continue;
    const logits = ce.inputs[0];
    const at = makers.get(logits);
    const mm = at === undefined ? undefined : g.nodes[at];
    if (mm?.op !== 'matmul' || mm.attrs.transA || logits === g.loss) continue;
    const [h, w] = mm.inputs;
    if (values[w].shape.length !== 2 || values[h].shape.length < 2) continue;
    if (readers[logits].length !== 1 || ce.inputs.filter((x) => x === logits).length !== 1) continue;
    const targets = ce.inputs[1];
    const transW = mm.attrs.transB;
    const vocab = values[w].shape[transW ? 0 : 1];
    const tokens = numel(values[targets].shape);
    checkBinding(ce, tokens, values[h].dtype === 'f32' ? 0 : values[h].shape.at(-1)!, opts.maxBindingBytes ?? defaultPlanOptions.maxBindingBytes);
    const chunk = lossChunk(tokens, vocab, opts);
    const lse = values.length;
    values.push({ id: lse, shape: values[targets].shape, dtype: 'f32', role: 'activation', loc: ce.loc });
    const node: NodeOf<'linearCrossEntropy'> = {
      ...ce, op: 'linearCrossEntropy', inputs: [h, w, targets], outputs: [ce.outputs[0], lse], attrs: { transW, chunk },
    };
    fusedAt.set(ce.id, node as Node);
    gone.add(mm.id);
    dropped.add(logits);
  }
  if (!fusedAt.size) return g;
  const nodes = g.nodes.filter((n) => !gone.has(n.id)).map((n, id): Node => ({ ...(fusedAt.get(n.id) ?? n), id }) as Node);
  const outputs = g.outputs && Object.fromEntries(Object.entries(g.outputs).filter(([, v]) => !dropped.has(v)));
  return { ...g, values, nodes, ...(outputs ? { outputs } : {}) };
}
