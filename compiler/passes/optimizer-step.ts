// The optimizer step as graph nodes. Requires: a differentiated graph (`grads` set). Ensures: one
// `optimizerUpdate` node per param (phase 'update') by the optimizer's rule (compiler/optimizers/),
// whose first output is the param's new value, listed in `updates`; each rule state declared in
// `state` with its own shape and its next value; the learning rate, weight decay (and the step
// count, for rules that use it) as scalar inputs, so a schedule changes them without recompiling.
//
// Optimizers with the same rule build the same nodes (sgd and lomo differ only in the schedule),
// which is what makes "LOMO equals SGD bit for bit" provable. Clipping by norm adds a norm pass: for
// a 'twoPass' optimizer (LOMO) the whole backward is cloned as pass 1, whose gradients only feed the
// squared norm and die at once; pass 2 recomputes them for the updates (paper, section 3.3). Pass 1
// clones only the backward nodes some gradient depends on. `share` k > 0 shares the top of the
// backward between the passes: its nodes up to the one completing the k-th gradient (completion
// order) run once, in pass 1 (phase 'norm'), as the ordinary backward: those gradients are stored
// for their updates (which read the clip factor, so they still follow pass 1), their activations die
// there, and pass 1's clones and pass 2 start from the activation gradient at the cut. The same
// nodes on the same inputs give the same bits; k = every gradient is the plain clipped step's one
// backward. passes/norm-share.ts chooses k. clipMode 'previous' (approximate, one pass) gives each
// update its own factor from max(the previous step's norm, the norm of the gradients completed so
// far), the norm kept as state; loss scaling makes the backward seed the
// `lossScale` input and folds 1/scale into the factor, and a non-finite squared norm (an overflow)
// makes the factor -1, which every update reads as "keep the old values" (under LOMO that needs the
// norm pass whether or not it clips: the overflow must be known before the first update).
import { CompilerBug, LomocError } from '../diagnostics.ts';
import { GraphBuilder } from '../ir/builder.ts';
import type { DType, Graph, Node, StateDecl, ValueId } from '../ir/types.ts';
import { optimizerDescriptor, resolveHyper } from '../optimizers/table.ts';
import { updateAttrs, updateInputs } from '../optimizers/update-layout.ts';
import { clipNormState, gradFactorOutput, hyperInputs as stepInputNames } from '../../contract/program.ts';
import type { Rounding } from '../../contract/stochastic-round.ts';

/** A registered optimizer's name (compiler/optimizers/table.ts lists them). */
export type OptimizerName = string;

export const clipModes = ['exact', 'previous'] as const;
export type ClipMode = (typeof clipModes)[number];

/** The state holding the previous step's gradient norm under clipMode 'previous' (named in contract/: a bundle's loader checks it). */
export { clipNormState } from '../../contract/program.ts';

export interface StepOptions {
  readonly optimizer: OptimizerName;
  /** Clip each gradient element to [-v, v]. */
  readonly clipValue?: number;
  /** Scale all gradients so their global L2 norm is at most n. */
  readonly clipNorm?: number;
  /**
   * How the clip-norm factor is found (default exact): 'exact' from this step's norm (LOMO: the
   * two-pass backward); 'previous', approximate and one pass, from max(the previous step's norm,
   * the part of this step's norm known at each update), the norm kept as state `clip.norm`.
   */
  readonly clipMode?: ClipMode;
  /**
   * Dynamic loss scaling: the loss's gradient seed is the scalar input `lossScale`, the gradients
   * are divided by it before use, and a non-finite squared norm (an overflow) skips every update.
   * Under LOMO it needs the norm pass (with or without clipping) to know before the first update.
   */
  readonly lossScale?: boolean;
  /**
   * Two-pass norm only: how many gradients (in completion order) pass 1 computes with the ordinary
   * backward, stored for their updates, so pass 2 need not compute them again (default 0: none).
   */
  readonly share?: number;
  /** Keep an f32 master copy of f16 weights, where the optimizer's descriptor allows one. */
  readonly master?: boolean;
  /** Hyper-parameters by name, checked against the optimizer's descriptor; defaults for the rest. */
  readonly hyper?: Readonly<Record<string, number>>;
  /** How a bf16 or f16 param's new value is stored (default nearest); stochastic reads the step count. */
  readonly rounding?: Rounding;
  /** The stochastic rounding seed (default 0). */
  readonly seed?: number;
}

/**
 * The rounding a step gets when --rounding is not given: stochastic where a bf16 param is updated
 * in place with no master copy (LOMO in bf16: nearest would lose every update under half an ulp),
 * nearest otherwise. f16 rounds stochastically only when asked: its 3 more mantissa bits lose far
 * less (gpt small, Moby Dick, LOMO lr 0.01, 100 steps: validation 3.1885 nearest, 3.1738 stochastic,
 * 3.1720 f32; bf16 3.3320 and 3.1641), and f16 bundles and checkpoints without a recorded rounding
 * were made with nearest.
 */
export function defaultRounding(dtype: 'f32' | 'f16' | 'bf16' | undefined, optimizer: OptimizerName, master: boolean | undefined): Rounding {
  const d = optimizerDescriptor(optimizer);
  return dtype === 'bf16' && d.inBackward && !(d.masterCopy && master !== false) ? 'stochastic' : 'nearest';
}

export { hyperInputs as stepInputNames } from '../../contract/program.ts';

/** Gradient names in the order their final value is produced by backward. */
function completionOrder(g: Graph): string[] {
  const at = new Map<ValueId, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => at.set(o, i)));
  return Object.keys(g.grads!).sort((a, b) => (at.get(g.grads![a]) ?? -1) - (at.get(g.grads![b]) ?? -1));
}

/** The gradients a two-pass norm can share (every one: sharing all is the plain clipped step's order). */
export const shareableGradients = (g: Graph): number => Object.keys(g.grads ?? {}).length;

/**
 * Where the shared top of `backward` ends: right after the node completing the k-th gradient in
 * completion order (0: nothing shared). A prefix of a topological order is closed under its inputs.
 */
function shareCut(g: Graph, backward: readonly Node[], order: readonly string[], k: number): number {
  if (k <= 0) return 0;
  if (k > order.length) throw new CompilerBug(`appendOptimizer: share ${k} of ${order.length} gradients`);
  const want = new Set(order.slice(0, k).map((name) => g.grads![name]));
  let cut = 0;
  backward.forEach((n, i) => { if (n.outputs.some((o) => want.has(o))) cut = i + 1; });
  return cut;
}

/** The backward nodes some gradient depends on (another would be dead work in pass 1). */
function gradientWork(g: Graph, backward: readonly Node[]): Set<Node> {
  const needed = new Set<ValueId>(Object.values(g.grads!));
  const live = new Set<Node>();
  for (let i = backward.length - 1; i >= 0; i--) {
    const n = backward[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    live.add(n);
    for (const x of n.inputs) needed.add(x);
  }
  return live;
}

/**
 * Clones, as pass-1 (phase 'norm') nodes, the backward nodes in `live`; returns the clones'
 * gradient values (a gradient made before `backward`, in the shared top, is itself).
 */
function cloneBackward(b: GraphBuilder, g: Graph, backward: readonly Node[], live: ReadonlySet<Node>): Record<string, ValueId> {
  const map = new Map<ValueId, ValueId>();
  for (const n of backward.filter((m) => live.has(m))) {
    const outs = b.node(n.op, n.inputs.map((x) => map.get(x) ?? x), n.attrs as never, n.loc, 'norm',
      n.outputs.map((o) => g.values[o].role));
    n.outputs.forEach((o, k) => map.set(o, outs[k]));
  }
  return Object.fromEntries(Object.entries(g.grads!).map(([name, v]) => [name, map.get(v) ?? v]));
}

export function appendOptimizer(g: Graph, opts: StepOptions): Graph {
  if (!g.grads) throw new CompilerBug('appendOptimizer: the graph has no gradients; differentiate it first');
  if (g.updates) throw new CompilerBug('appendOptimizer: the graph already has an optimizer step');
  const forward = g.nodes.filter((n) => n.phase === 'forward');
  const grads = g.grads;
  const b = new GraphBuilder(g.name, { ...g, nodes: forward });
  const loc = g.values[g.loss].loc;
  const scalar = (name: string, dtype: DType = 'f32') => {
    const v = b.value([], dtype, 'input', loc, name);
    b.inputs.push({ name, value: v, loc });
    return v;
  };
  const d = optimizerDescriptor(opts.optimizer);
  const mode = opts.clipMode ?? 'exact';
  const previous = mode === 'previous' && opts.clipNorm !== undefined;
  if (mode === 'previous' && opts.clipNorm === undefined) throw new LomocError('--clip-mode previous: it chooses how --clip-norm clips; give --clip-norm too');
  if (previous && opts.lossScale)
    throw new LomocError("--clip-mode previous: loss scaling must find an overflow in the whole gradient before the first update, which a one-pass clip cannot; use --clip-mode exact with --loss-scale");
  // Loss scaling: the seed of backward (d loss / d loss = 1) becomes the loss scale input, stored
  // as the loss is (f16 storage: a scale past 65504 is itself an overflow, and is halved).
  const lossScale = opts.lossScale ? scalar(stepInputNames.lossScale, g.values[g.loss].dtype) : undefined;
  const seed = g.nodes.find((m) => m.phase === 'backward')?.outputs[0];
  const backward = g.nodes.filter((n) => n.phase === 'backward').map((n) => (lossScale === undefined ? n : seeded(g, n, seed, lossScale)));
  const rule = d.rule;
  const hyper = resolveHyper(d, opts.hyper);
  const lr = scalar(stepInputNames.lr);
  const wd = scalar(stepInputNames.weightDecay);
  // Stochastic rounding hashes the step count, so a step input exists wherever a 16-bit param does.
  const half = (d: string) => d === 'bf16' || d === 'f16';
  const stochastic = opts.rounding === 'stochastic' && g.params.some((p) => half(g.values[p.value].dtype));
  const step = rule.usesStep || stochastic ? scalar(stepInputNames.step) : undefined;

  // Clip by norm: the squared norm summed in gradient completion order (the same order in both
  // passes, so the two-pass LOMO step and the plain clipped step compute identical bits).
  let factor: ValueId | undefined;
  const order = completionOrder(g);
  if ((opts.share ?? 0) < 0 || !Number.isInteger(opts.share ?? 0)) throw new CompilerBug(`appendOptimizer: share ${opts.share}`);
  const byName = new Map(g.params.map((q) => [q.name, q]));
  const factorAttrs = { maxNorm: opts.clipNorm ?? null, ...(lossScale === undefined ? {} : { unscale: true }) };
  const factorInputs = (total: ValueId) => [total, ...(lossScale === undefined ? [] : [lossScale])];
  const sumSquares = (grads: Record<string, ValueId>) => {
    let total: ValueId | undefined;
    for (const name of order) {
      const p = byName.get(name)!;
      const ss = b.node('sumSquares', [grads[name]], {}, p.loc, 'norm')[0];
      total = total === undefined ? ss : b.node('add', [total, ss], {}, p.loc, 'norm')[0];
    }
    return b.node('clipFactor', factorInputs(total!), factorAttrs, loc, 'norm')[0];
  };
  const normed = (opts.clipNorm !== undefined && !previous) || lossScale !== undefined;
  const twoPass = normed && d.clipNorm === 'twoPass';
  const cut = twoPass ? shareCut(g, backward, order, opts.share ?? 0) : 0;
  // The shared top runs once, in pass 1; its gradients are not cloned (`map.get(x) ?? x` reads them).
  const live = twoPass ? gradientWork(g, backward) : new Set<Node>();
  for (const n of backward.slice(0, cut)) if (live.has(n)) b.nodes.push({ ...n, id: b.nodes.length, phase: 'norm' });
  if (twoPass) factor = sumSquares(cloneBackward(b, g, backward.slice(cut), live));
  for (const n of backward.slice(cut)) b.nodes.push({ ...n, id: b.nodes.length });
  if (normed && !twoPass) factor = sumSquares(g.grads);
  // One-pass clipping: each update's own factor, from the previous norm and the running sum so far.
  const state: StateDecl[] = [];
  const factorOf: Record<string, ValueId> = {};
  let prevNorm: ValueId | undefined;
  let total: ValueId | undefined;
  if (previous) {
    prevNorm = b.value([], 'f32', 'optstate', loc, clipNormState);
    for (const name of order) {
      const p = byName.get(name)!;
      const ss = b.node('sumSquares', [grads[name]], {}, p.loc, 'norm')[0];
      total = total === undefined ? ss : b.node('add', [total, ss], {}, p.loc, 'norm')[0];
      // Part of the norm chain: the schedule hoists it with the running sum, right after the gradient.
      factorOf[name] = b.node('clipFactor', [total, prevNorm], { maxNorm: opts.clipNorm!, previous: true }, p.loc, 'norm')[0];
    }
  }

  const updates: Record<string, ValueId> = {};
  g.params.forEach((p, paramIndex) => {
    const pv = g.values[p.value];
    const master = opts.master === true && d.masterCopy && (pv.dtype === 'f16' || pv.dtype === 'bf16');
    const rounded = stochastic && half(pv.dtype)
      ? { stochastic: { seed: (opts.seed ?? 0) >>> 0, param: paramIndex, ...(pv.dtype === 'f16' ? { format: 'f16' as const } : {}) } }
      : {};
    const scale = factor ?? factorOf[p.name];
    const attrs = updateAttrs(rule, { clipValue: opts.clipValue ?? null, scaled: scale !== undefined, master, hyper, ...rounded });
    const shapes: Record<string, readonly number[]> = Object.fromEntries(rule.states.map((s) => [s.name, s.shape(pv.shape)]));
    const states = attrs.states.map((kind) => {
      const name = `${kind}.${p.name}`;
      return { name, param: p.name, value: b.value(shapes[kind] ?? pv.shape, 'f32', 'optstate', p.loc, name) };
    });
    const named: Record<string, ValueId> = {
      p: p.value, g: grads[p.name], lr, wd,
      ...(step === undefined ? {} : { step }),
      ...(scale === undefined ? {} : { scale }),
      ...Object.fromEntries(attrs.states.map((kind, k) => [kind, states[k].value])),
    };
    const outs = b.node('optimizerUpdate', updateInputs(attrs, named), attrs, p.loc, 'update', ['update', ...states.map(() => 'optstate' as const)]);
    b.setValue(outs[0], { name: `new.${p.name}` });
    updates[p.name] = outs[0];
    states.forEach((s, k) => state.push({ ...s, next: outs[k + 1] }));
  });
  // This step's norm, for the next step: after every update, as it overwrites the previous norm.
  if (prevNorm !== undefined) {
    const next = b.node('clipFactor', [total!, prevNorm], { maxNorm: null, previous: true, result: 'norm' }, loc, 'norm')[0];
    state.push({ name: clipNormState, param: '', value: prevNorm, next });
  }
  // With loss scaling the host reads the factor back: an overflow (negative) halves the scale.
  const outputs = lossScale === undefined ? g.outputs : { ...g.outputs, [gradFactorOutput]: factor! };
  return { ...g, values: b.values, nodes: b.nodes, inputs: b.inputs, updates, state, ...(outputs ? { outputs } : {}) };
}

/** The backward seed `fill 1` (a scalar) as `lossScale * 1`: every gradient then carries the scale. */
function seeded(g: Graph, n: Node, seed: ValueId | undefined, lossScale: ValueId): Node {
  if (n.op !== 'fill' || n.outputs[0] !== seed) return n;
  const v = g.values[n.outputs[0]];
  if (v.shape.length !== 0) throw new CompilerBug(`loss scaling: the backward seed has shape [${v.shape.join(', ')}], expected a scalar`);
  return { ...n, op: 'scale', inputs: [lossScale], attrs: { c: 1 } } as Node;
}
