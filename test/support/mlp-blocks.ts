// Random residual FFN blocks for the FFN-splitting passes' property tests (token chunks, width
// slices): blocks of x + ffn(rmsNorm(x)), then a squared loss.
import * as L from '../../compiler/dsl/index.ts';
import type { Graph } from '../../compiler/ir/types.ts';
import { traceFn } from './trace.ts';

export interface MlpBlocksRecipe {
  readonly batch: number;
  readonly seq: number;
  readonly width: number;
  readonly ffn: number;
  readonly blocks: number;
  readonly act: 'gelu' | 'silu' | 'relu' | 'swiglu';
  readonly bias: boolean;
  /** Every block's w1 is one param (tied): its gradient sums the blocks' contributions. */
  readonly tied?: boolean;
}

/** Blocks of x + ffn(norm(x)), an MLP-like FFN of `act` (swiglu: silu(x w1) * (x w3)), then a squared loss. */
export function mlpBlocks(r: MlpBlocksRecipe): Graph {
  return traceFn(() => {
    let x = L.input('x', [r.batch, r.seq, r.width]);
    const shared = r.tied ? L.param('b0.w1.w', [r.width, r.ffn], L.fanIn()) : undefined;
    for (let i = 0; i < r.blocks; i++) {
      const lin = (name: string, t: L.Tensor, from: number, to: number) => {
        const y = L.matmul(t, name === 'w1' && shared ? shared : L.param(`b${i}.${name}.w`, [from, to], L.fanIn()));
        return r.bias ? L.add(y, L.param(`b${i}.${name}.b`, [to], L.zeros())) : y;
      };
      const xi = x;
      x = L.block(`b${i}`, () => {
        const m = L.rmsNorm(xi, L.param(`b${i}.norm`, [r.width], L.ones()));
        const h = r.act === 'swiglu' ? L.mul(L.silu(lin('w1', m, r.width, r.ffn)), lin('w3', m, r.width, r.ffn)) : L[r.act](lin('w1', m, r.width, r.ffn));
        return L.add(xi, lin('w2', h, r.ffn, r.width));
      });
    }
    return L.mean(L.mul(x, x));
  }, 'blocks');
}
