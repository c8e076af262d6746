// The optimizer step as graph nodes. Requires: a differentiated graph (`grads` set). Ensures: one
// update node per param (phase 'update') whose first output is the param's new value, listed in
// `updates`; optimizer state declared in `state` with its next value; the learning rate, weight
// decay (and AdamW's step count) as scalar inputs, so a schedule changes them without recompiling.
//
// sgd and lomo build the same nodes: they differ only in the schedule (passes/schedule.ts), which
// is what makes "LOMO equals SGD bit for bit" provable. Clipping by norm adds a norm pass: with
// `twoPass` (LOMO) the whole backward is cloned as pass 1, whose gradients only feed the squared
// norm and die at once; pass 2 recomputes them for the updates (paper, section 3.3).
import { CompilerBug } from '../diagnostics.ts';
import { GraphBuilder } from '../ir/builder.ts';
import type { Graph, Node, StateDecl, ValueId } from '../ir/types.ts';
import { hyperInputs as stepInputNames } from '../../contract/program.ts';

export type OptimizerName = 'sgd' | 'adamw' | 'lomo';

export interface StepOptions {
  readonly optimizer: OptimizerName;
  /** Clip each gradient element to [-v, v]. */
  readonly clipValue?: number;
  /** Scale all gradients so their global L2 norm is at most n. */
  readonly clipNorm?: number;
  /** Keep an f32 master copy of f16 weights (the baselines do; LOMO does not). */
  readonly master?: boolean;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
}

export { hyperInputs as stepInputNames } from '../../contract/program.ts';

/** Gradient names in the order their final value is produced by backward. */
function completionOrder(g: Graph): string[] {
  const at = new Map<ValueId, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => at.set(o, i)));
  return Object.keys(g.grads!).sort((a, b) => (at.get(g.grads![a]) ?? -1) - (at.get(g.grads![b]) ?? -1));
}

/** Clones every backward node as a pass-1 (phase 'norm') node; returns the clones' gradient values. */
function cloneBackward(b: GraphBuilder, g: Graph, backward: readonly Node[]): Record<string, ValueId> {
  const map = new Map<ValueId, ValueId>();
  for (const n of backward) {
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
  const backward = g.nodes.filter((n) => n.phase === 'backward');
  const b = new GraphBuilder(g.name, { ...g, nodes: forward });
  const loc = g.values[g.loss].loc;
  const scalar = (name: string) => {
    const v = b.value([], 'f32', 'input', loc, name);
    b.inputs.push({ name, value: v, loc });
    return v;
  };
  const lr = scalar(stepInputNames.lr);
  const wd = scalar(stepInputNames.weightDecay);
  const step = opts.optimizer === 'adamw' ? scalar(stepInputNames.step) : undefined;

  // Clip by norm: the squared norm summed in gradient completion order (the same order in both
  // passes, so the two-pass LOMO step and the plain clipped step compute identical bits).
  let factor: ValueId | undefined;
  const order = completionOrder(g);
  const sumSquares = (grads: Record<string, ValueId>) => {
    let total: ValueId | undefined;
    for (const name of order) {
      const p = g.params.find((q) => q.name === name)!;
      const ss = b.node('sumSquares', [grads[name]], {}, p.loc, 'norm')[0];
      total = total === undefined ? ss : b.node('add', [total, ss], {}, p.loc, 'norm')[0];
    }
    return b.node('clipFactor', [total!], { maxNorm: opts.clipNorm! }, loc, 'norm')[0];
  };
  const twoPass = opts.clipNorm !== undefined && opts.optimizer === 'lomo';
  if (twoPass) factor = sumSquares(cloneBackward(b, g, backward));
  for (const n of backward) b.nodes.push({ ...n, id: b.nodes.length });
  if (opts.clipNorm !== undefined && !twoPass) factor = sumSquares(g.grads);

  const updates: Record<string, ValueId> = {};
  const state: StateDecl[] = [];
  const stateValue = (param: string, kind: string, shape: readonly number[], pLoc: Node['loc']) => {
    const value = b.value(shape, 'f32', 'optstate', pLoc, `${kind}.${param}`);
    return { name: `${kind}.${param}`, param, value };
  };
  const common = { clipValue: opts.clipValue ?? null, scaled: factor !== undefined };
  for (const p of g.params) {
    const pv = g.values[p.value];
    const master = opts.master === true && opts.optimizer !== 'lomo' && (pv.dtype === 'f16' || pv.dtype === 'bf16');
    const ins = [p.value, g.grads[p.name], lr, wd];
    const scale = factor === undefined ? [] : [factor];
    const states = [
      ...(opts.optimizer === 'adamw' ? [stateValue(p.name, 'm', pv.shape, p.loc), stateValue(p.name, 'v', pv.shape, p.loc)] : []),
      ...(master ? [stateValue(p.name, 'master', pv.shape, p.loc)] : []),
    ];
    const outs =
      opts.optimizer === 'adamw'
        ? b.node('adamwUpdate', [...ins, step!, ...scale, ...states.map((s) => s.value)],
            { ...common, master, beta1: opts.beta1 ?? 0.9, beta2: opts.beta2 ?? 0.999, eps: opts.eps ?? 1e-8 },
            p.loc, 'update', ['update', 'optstate', 'optstate', 'optstate'])
        : b.node('sgdUpdate', [...ins, ...scale, ...states.map((s) => s.value)], { ...common, master }, p.loc, 'update',
            ['update', 'optstate']);
    b.setValue(outs[0], { name: `new.${p.name}` });
    updates[p.name] = outs[0];
    states.forEach((s, k) => state.push({ ...s, next: outs[k + 1] }));
  }
  return { ...g, values: b.values, nodes: b.nodes, inputs: b.inputs, updates, state };
}
