// Kernels for the groups passes/fuse.ts forms; one dispatch each.
//   elementwise:    one thread per element evaluates the whole chain in registers; operands read
//                   through the same broadcast index walks as the single-op kernels (wgsl-index.ts).
//   matmulEpilogue: the matmul kernel (emit-matmul.ts), each finished output element run through
//                   the chain before it is stored.
//   matmulUpdate:   LOMO. The matmul kernel computes a block of the weight gradient in registers
//                   and applies the update rule (SGD) to those elements of the param in place: the gradient is
//                   never stored (the planner gives it no bytes). The param and its new value
//                   share storage, so they are bound once, read_write.
//   lossUpdate:     LOMO, the fused LM head (emit-linear-ce.ts): each chunk's dW matmul applies
//                   the update to its rows or columns of W in the same way (several dispatches).
//   matmulNorm:     a gradient matmul writing one sum-of-squares partial per workgroup, then the
//                   partials summed in order (emit-matmul-norm.ts), plus the running total.
//   normSum:        a squared norm's reduction storing the running total plus it (emit-reduce.ts).
//   reduceUpdate:   LOMO. The same update applied to each output of a sum (a bias's gradient)
//                   as its last pass finishes it (emit-reduce.ts), in place of storing it.
//   updateBatch:    consecutive updates of one rule as one multi-tensor kernel (emit-update-batch.ts).
// A value is stored when it has storage in the plan (it is read after the group, or shares a
// buffer with one that is); values internal to the group have none and live in registers.
import { CompilerBug } from '../../diagnostics.ts';
import { isElementwiseOp, type ElementwiseOp } from '../../ir/elementwise-ops.ts';
import type { KernelGroup } from '../../ir/fusion.ts';
import { numel, strides } from '../../ir/shape.ts';
import type { Node, NodeOf, Shape, ValueId } from '../../ir/types.ts';
import { grid, type EmitContext, type KernelCall } from './emitter.ts';
import { matmulKernel, type MatmulEpilogue } from './emit-matmul.ts';
import { linearCrossEntropyGradCalls } from './emit-linear-ce.ts';
import { matmulNormGroup } from './emit-matmul-norm.ts';
import { normSumGroup } from './emit-reduce.ts';
import { roundingFunctions, ruleUniform, ruleUniforms, storedValue, updateBody, wgslRuleOf } from './emit-optimizer.ts';
import { updateInput } from '../../optimizers/update-layout.ts';
import { emitUpdateBatch } from './emit-update-batch.ts';
import { reduce } from './emit-reduce.ts';
import { broadcastStrides, coalesce, contiguous, indexCode } from './wgsl-index.ts';
import { Bindings, entryArgs, flatGroup, kernel, Uniforms } from './wgsl-kernel.ts';
import { declareConsts, formulaWgsl, helperCode } from './wgsl-math.ts';

/** Threads per workgroup of the elementwise chain kernel (as the single-op map kernels). */
const chainWorkgroup = 256;

/** The op of a node a fused kernel evaluates: one of the elementwise table's (its consts are uniforms). */
function formulaOp(n: Node): ElementwiseOp {
  if (!isElementwiseOp(n.op)) throw new CompilerBug(`codegen: ${n.op} is not an elementwise op a fused kernel can evaluate`);
  return n.op;
}

/** Whether `v` has storage in the plan (a value always shares storage with itself when it has any). */
const stored = (c: EmitContext, v: ValueId): boolean => c.sameStorage(v, v);

interface Chain {
  /** Key part: the expression DAG and which results are stored. */
  readonly tag: string;
  readonly fns: string;
  /** Statements computing the chain at element `index`, loading operands and storing results. */
  readonly code: string;
}

/**
 * Binds the chain's operands and results and writes its per-element code. `seed` values are
 * already in registers (a matmul's accumulator); every other input is loaded at its broadcast
 * position of flat index `at` in `shape`. Loads come first and stores last, so a result stored
 * over one of its operands (an in-place gradient sum) is safe.
 */
function chain(nodes: readonly Node[], c: EmitContext, b: Bindings, u: Uniforms, shape: Shape, at: string, seed: ReadonlyMap<ValueId, string>, prefix: string): Chain {
  const made = new Set<ValueId>(seed.keys());
  const name = new Map<ValueId, string>(seed);
  const external: ValueId[] = [];
  for (const n of nodes) {
    for (const x of n.inputs) if (!made.has(x) && !external.includes(x)) external.push(x);
    for (const o of n.outputs) made.add(o);
  }
  const bound = external.map((v) => b.value(v, false));
  const results = nodes.flatMap((n) => n.outputs).filter((v) => stored(c, v));
  const outs = results.map((v) => b.value(v, true));
  const space = coalesce(shape, [contiguous(shape), ...external.map((v) => ({ strides: broadcastStrides(c.g.values[v].shape, shape), offset: 0 }))]);
  const index = indexCode(space, [`${prefix}o`, ...external.map((_, k) => `x${k}`)], u, at, prefix);
  const lines = [index.code];
  external.forEach((v, k) => {
    name.set(v, `e${k}`);
    lines.push(`let e${k} = ${bound[k]}[x${k}];`);
  });
  const sig: string[] = [];
  const ref = (v: ValueId) => name.get(v)!;
  nodes.forEach((n, j) => {
    const args = n.inputs.map(ref);
    const op = formulaOp(n);
    declareConsts(op, n.attrs, u, prefix, `${j}`);
    name.set(n.outputs[0], `t${j}`);
    lines.push(`let t${j} = ${formulaWgsl(op, args, prefix, `${j}`)};`);
    sig.push(`${n.op}(${args.join(',')})`);
  });
  results.forEach((v, k) => lines.push(`${outs[k]}[${prefix}o] = ${ref(v)};`));
  const fns = helperCode(nodes.map(formulaOp)) ?? '';
  return { tag: `${sig.join(';')}>${results.map(ref).join(',')}|${index.key}`, fns, code: lines.join('\n') };
}

function elementwiseGroup(nodes: readonly Node[], c: EmitContext): KernelCall {
  const shape = c.g.values[nodes[0].outputs[0]].shape;
  const total = numel(shape);
  const b = new Bindings(c);
  const u = new Uniforms();
  u.u32('n', total);
  const ch = chain(nodes, c, b, u, shape, 'i', new Map(), '');
  const body = `${ch.fns}
@compute @workgroup_size(${chainWorkgroup})
fn main(${entryArgs}) {
  ${flatGroup}
  let i = wg * ${chainWorkgroup}u + lid;
  if (i >= u.n) { return; }
  ${ch.code.split('\n').join('\n  ')}
}`;
  return kernel(`fused:ew:${ch.tag}|wg${chainWorkgroup}`, b, u, body, grid(total, chainWorkgroup, c.limits));
}

/**
 * The matmul's output element goes through the chain; stored too when it has storage of its own.
 * A trailing [reshape,] transpose (fuse.ts's transposeTail) stores the chain's result at its
 * transposed position instead: the walk over the transpose's input whose strides are those of
 * its output, permuted.
 */
function epilogueOf(mm: NodeOf<'matmul'>, rest: readonly Node[], c: EmitContext): MatmulEpilogue {
  const y = mm.outputs[0];
  const tr = rest.at(-1)?.op === 'transpose' ? (rest.at(-1) as NodeOf<'transpose'>) : undefined;
  const ew = tr ? rest.slice(0, rest.length - (rest.at(-2)?.op === 'reshape' ? 2 : 1)) : rest;
  return {
    bind: (b, u) => {
      const keep = stored(c, y) ? b.value(y, true) : undefined;
      const ch = chain(ew, c, b, u, c.g.values[y].shape, 'o', new Map([[y, 'acc']]), 'e');
      let moved = '';
      let tag = '';
      if (tr) {
        const from = c.g.values[tr.inputs[0]].shape;
        const to = strides(c.g.values[tr.outputs[0]].shape);
        const walk = { strides: from.map((_, a) => to[tr.attrs.perm.indexOf(a)]), offset: 0 };
        const at = indexCode(coalesce(from, [walk]), ['trdst'], u, 'o', 'tr');
        const dst = b.value(tr.outputs[0], true);
        moved = `\n  ${at.code.split('\n').join('\n  ')}\n  ${dst}[trdst] = ${ew.length ? `t${ew.length - 1}` : 'acc'};`;
        tag = `|T${at.key}`;
      }
      return {
        tag: `${keep ? 'y' : ''}${ch.tag}${tag}`,
        fns: `${ch.fns}\nfn finish(o: u32, acc: f32) {\n  ${keep ? `${keep}[o] = acc;\n  ` : ''}${ch.code.split('\n').join('\n  ')}${moved}\n}`,
      };
    },
  };
}

/** LOMO: the gradient in registers (a matmul's block, a sum's output), the update rule (a rule without states) applied to the param in place. */
function updateEpilogue(up: NodeOf<'optimizerUpdate'>, c: EmitContext): MatmulEpilogue {
  const a = up.attrs;
  const r = wgslRuleOf(up);
  if (a.states.length) throw new CompilerBug(`codegen: a matmul + update group whose ${a.rule} update has states`);
  const named = (name: string) => updateInput(a, up.inputs, name);
  const [p, lr, wd, step, scale] = (['p', 'lr', 'wd', 'step', 'scale'] as const).map(named);
  return {
    bind: (b, u) => {
      const w = b.value(p!, false);
      const next = b.value(up.outputs[0], true); // the same binding as `w` when in place
      const [rate, decay] = [b.value(lr!, false), b.value(wd!, false)];
      const t = step === undefined ? '0.0' : `${b.value(step, false)}[0]`;
      const factor = scale === undefined ? '1.0' : `${b.value(scale, false)}[0]`;
      u.f32('clip', a.clipValue ?? 0);
      const hyper = ruleUniforms(r, a);
      Object.entries(r.uniforms(a.hyper)).forEach(([k], i) => u.f32(ruleUniform(k), hyper.values[i]));
      if (a.stochastic) u.u32('rseed', a.stochastic.seed >>> 0).u32('rparam', a.stochastic.param);
      const body = updateBody(r, a, {
        grad: 'acc', factor, clip: 'u.clip', weight: `${w}[o]`, lr: `${rate}[0]`, wd: `${decay}[0]`, step: t,
        uniform: (k) => `u.${ruleUniform(k)}`, state: () => { throw new CompilerBug('codegen: a stateless rule read a state'); },
      });
      return {
        tag: `${a.rule}${a.clipValue === null ? '' : 'c'}${scale === undefined ? '' : 's'}${a.stochastic ? 'r' : ''}`,
        fns: `${r.functions ?? ''}\n${roundingFunctions(a)}\nfn finish(o: u32, acc: f32) {\n  ${body.split('\n').join('\n  ')}\n  ${next}[o] = ${storedValue(a, 'w2', 'o', t)};\n}`,
      };
    },
  };
}

export function emitGroup(group: KernelGroup, nodes: readonly Node[], c: EmitContext): KernelCall[] {
  const [first, second] = nodes;
  switch (group.kind) {
    case 'elementwise':
      return [elementwiseGroup(nodes, c)];
    case 'matmulEpilogue':
      if (first.op !== 'matmul') break;
      return [matmulKernel(first, c, epilogueOf(first, nodes.slice(1), c))];
    case 'matmulUpdate':
      if (first.op !== 'matmul' || second?.op !== 'optimizerUpdate' || nodes.length !== 2) break;
      return [matmulKernel(first, c, updateEpilogue(second, c))];
    case 'lossUpdate':
      if (first.op !== 'linearCrossEntropyGrad' || second?.op !== 'optimizerUpdate' || nodes.length !== 2) break;
      return linearCrossEntropyGradCalls(first, c, updateEpilogue(second, c));
    case 'matmulNorm': {
      const third = nodes[2];
      if (first.op !== 'matmul' || second?.op !== 'sumSquares' || (third !== undefined && third.op !== 'add') || nodes.length > 3) break;
      return matmulNormGroup(first, second, third as NodeOf<'add'> | undefined, c);
    }
    case 'normSum':
      if (first.op !== 'sumSquares' || second?.op !== 'add' || nodes.length !== 2) break;
      return normSumGroup(first, second, c);
    case 'reduceUpdate':
      if (first.op !== 'sum' || second?.op !== 'optimizerUpdate' || nodes.length !== 2) break;
      return reduce(first, c, updateEpilogue(second, c));
    case 'updateBatch':
      if (!nodes.every((n) => n.op === 'optimizerUpdate')) break;
      return emitUpdateBatch(nodes as NodeOf<'optimizerUpdate'>[], c);
    case 'single':
      break;
  }
  throw new CompilerBug(`codegen: no fused kernel for a ${group.kind} group of ${nodes.map((n) => n.op).join(', ')}`);
}
