// A reusable fast-check arbitrary of random well-formed models: random DAGs of DSL ops over a
// pool of [batch, width] tensors, drawing weights from a small named pool so that the same
// param is often used twice (tied weights). Every later pass is property-tested on these.
import fc from 'fast-check';
import * as L from '../../compiler/dsl/index.ts';
import type { Tensor } from '../../compiler/dsl/tensor.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { traceFn } from './trace.ts';

const unaryOps = ['tanh', 'gelu', 'silu', 'relu', 'neg', 'scale', 'expTanh', 'logSq', 'sqrtSq', 'rsqrtSq'] as const;
type Step =
  | { readonly kind: 'unary'; readonly op: (typeof unaryOps)[number]; readonly src: number }
  | { readonly kind: 'binary'; readonly op: 'add' | 'sub' | 'mul' | 'div'; readonly a: number; readonly b: number }
  | { readonly kind: 'linear'; readonly src: number; readonly w: number; readonly transB: boolean; readonly bias: number | null }
  | { readonly kind: 'norm'; readonly rms: boolean; readonly src: number; readonly g: number }
  | { readonly kind: 'reduce'; readonly op: 'sum' | 'mean' | 'max'; readonly src: number; readonly other: number }
  | { readonly kind: 'softmax'; readonly log: boolean; readonly src: number }
  | { readonly kind: 'attention'; readonly src: number; readonly heads: 1 | 2; readonly rope: boolean; readonly causal: boolean; readonly w: number }
  | { readonly kind: 'rotate'; readonly src: number; readonly cut: number }
  | { readonly kind: 'transposeMix'; readonly src: number; readonly other: number };

export interface ModelRecipe {
  readonly batch: number;
  /** Even, so rope and two heads fit. */
  readonly width: number;
  readonly vocab: number;
  readonly steps: readonly Step[];
  readonly head: 'crossEntropy' | 'meanSquare';
  readonly mix: number;
  /** Steps are traced in blocks of this many (0: no blocks), the units of checkpointing. */
  readonly blockSize: number;
}

const src = fc.nat(1000);
const pick = (n: number) => fc.integer({ min: 0, max: n - 1 });

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('unary' as const), op: fc.constantFrom(...unaryOps), src }),
  fc.record({ kind: fc.constant('binary' as const), op: fc.constantFrom('add' as const, 'sub' as const, 'mul' as const, 'div' as const), a: src, b: src }),
  fc.record({ kind: fc.constant('linear' as const), src, w: pick(3), transB: fc.boolean(), bias: fc.option(pick(2)) }),
  fc.record({ kind: fc.constant('norm' as const), rms: fc.boolean(), src, g: pick(2) }),
  fc.record({ kind: fc.constant('reduce' as const), op: fc.constantFrom('sum' as const, 'mean' as const, 'max' as const), src, other: src }),
  fc.record({ kind: fc.constant('softmax' as const), log: fc.boolean(), src }),
  fc.record({ kind: fc.constant('attention' as const), src, heads: fc.constantFrom(1 as const, 2 as const), rope: fc.boolean(), causal: fc.boolean(), w: pick(3) }),
  fc.record({ kind: fc.constant('rotate' as const), src, cut: src }),
  fc.record({ kind: fc.constant('transposeMix' as const), src, other: src }),
);

export const modelRecipe: fc.Arbitrary<ModelRecipe> = fc.record({
  batch: fc.integer({ min: 1, max: 4 }),
  width: fc.integer({ min: 1, max: 3 }).map((h) => 2 * h),
  vocab: fc.integer({ min: 2, max: 6 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 7 }),
  head: fc.constantFrom('crossEntropy' as const, 'meanSquare' as const),
  mix: src,
  blockSize: fc.integer({ min: 0, max: 3 }),
});

function unary(op: (typeof unaryOps)[number], x: Tensor): Tensor {
  const sq1 = () => L.add(L.mul(x, x), 1);
  switch (op) {
    case 'scale': return L.mul(x, 0.7);
    case 'expTanh': return L.exp(L.tanh(x));
    case 'logSq': return L.log(sq1());
    case 'sqrtSq': return L.sqrt(sq1());
    case 'rsqrtSq': return L.rsqrt(sq1());
    default: return L[op](x);
  }
}

/** Builds the recipe's model with the DSL; returns the scalar loss. */
export function buildRecipe(r: ModelRecipe): Tensor {
  const { batch: b, width: w, vocab: v } = r;
  const emb = L.param('emb', [v, w], L.normal(0.5));
  const weight = (i: number) => L.param(`w${i}`, [w, w], L.fanIn());
  const vec = (name: string, i: number) => L.param(`${name}${i}`, [w], L.ones());
  const pool: Tensor[] = [L.embedding(emb, L.input('tokens', [b], 'i32')), L.input('x', [b, w])];
  const at = (i: number) => pool[i % pool.length];
  const steps = (from: number, to: number) => r.steps.slice(from, to).forEach(step);
  const step = (s: Step) => {
    switch (s.kind) {
      case 'unary': pool.push(unary(s.op, at(s.src))); break;
      case 'binary': {
        const rhs = s.op === 'div' ? L.add(L.mul(at(s.b), at(s.b)), 1) : at(s.b);
        pool.push(L[s.op](at(s.a), rhs));
        break;
      }
      case 'linear': {
        const y = L.matmul(at(s.src), weight(s.w), { transB: s.transB });
        pool.push(s.bias === null ? y : L.add(y, vec('bias', s.bias)));
        break;
      }
      case 'norm':
        pool.push(s.rms ? L.rmsNorm(at(s.src), vec('g', s.g)) : L.layerNorm(at(s.src), vec('g', s.g), vec('beta', s.g)));
        break;
      case 'reduce': pool.push(L.add(at(s.other), L[s.op](at(s.src), -1, true))); break;
      case 'softmax': pool.push(s.log ? L.logSoftmax(at(s.src)) : L.softmax(at(s.src))); break;
      case 'attention': {
        // [b, w] as one sequence of length b: [1, b, w] -> heads [1, h, b, w/h]
        const x = at(s.src);
        const proj = (name: string) => L.splitHeads(L.reshape(L.matmul(x, weight(s.w)), [1, b, w]), s.heads);
        const rope = s.rope && (w / s.heads) % 2 === 0;
        const q = rope ? L.rope(proj('q')) : proj('q');
        const k = rope ? L.rope(proj('k')) : proj('k');
        const out = L.attention(q, k, proj('v'), { causal: s.causal });
        pool.push(L.reshape(L.mergeHeads(out), [b, w]));
        break;
      }
      case 'rotate': {
        const c = 1 + (s.cut % (w - 1 || 1));
        const x = at(s.src);
        pool.push(w > 1 ? L.concat([L.slice(x, 1, c, w), L.slice(x, 1, 0, c)], 1) : x);
        break;
      }
      case 'transposeMix': {
        // [w, b] x [b, w]: mixes positions, then back to [b, w]; tanh keeps repeated mixes bounded.
        const m = L.matmul(L.transpose(at(s.src)), at(s.other));
        pool.push(L.tanh(L.matmul(at(s.other), m)));
        break;
      }
    }
  };
  if (r.blockSize === 0) steps(0, r.steps.length);
  else for (let i = 0; i < r.steps.length; i += r.blockSize) L.block(`b${i}`, () => steps(i, i + r.blockSize));
  const last = L.add(pool[pool.length - 1], at(r.mix));
  if (r.head === 'crossEntropy')
    return L.mean(L.crossEntropy(L.matmul(last, emb, { transB: true }), L.input('targets', [b], 'i32')));
  return L.mean(L.mul(last, last));
}

export const traceRecipe = (r: ModelRecipe): Graph => traceFn(() => buildRecipe(r), 'random');

/** Random models, traced. */
export const arbitraryModel: fc.Arbitrary<{ recipe: ModelRecipe; graph: Graph }> = modelRecipe.map((recipe) => ({
  recipe,
  graph: traceRecipe(recipe),
}));
